"""Run weightwatcher 0.7.7 in a subprocess whose ``powerlaw`` is shadowed by another version.

Used by ``tests/test_parity_ww_tpl.py``: with powerlaw 2.0.0 the reference tool's TPL, E_TPL and
``xmin_peak`` paths return α = −1, so the test runs them with powerlaw 1.5 put first on
``PYTHONPATH``. Usage: ``python ww_powerlaw15_runner.py STATE_DICT.pt OPTIONS.json OUT.json``
(the state dict of tensors is analysed as the reference tool's ``PyStateDict``; OUT.json gets
``{"powerlaw": version file, "runs": [{"options": ..., "details": [row, ...]}, ...]}``).
"""

from __future__ import annotations

import json
import logging
import math
import sys
from typing import Any


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else value
    return value


def main(state_path: str, options_path: str, out_path: str) -> None:
    import powerlaw
    import torch
    import weightwatcher

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    state = torch.load(state_path, weights_only=True)
    with open(options_path, encoding="utf-8") as handle:
        runs = json.load(handle)
    out: dict[str, Any] = {"powerlaw": powerlaw.__file__, "runs": []}
    for options in runs:
        watcher = weightwatcher.WeightWatcher(model=state)
        details = watcher.analyze(svd_method="accurate", pl_package="powerlaw", **options)
        rows = [
            {key: _plain(value) for key, value in row.items()} for row in details.to_dict("records")
        ]
        out["runs"].append({"options": options, "details": rows})
    with open(out_path, "w", encoding="utf-8") as handle:
        json.dump(out, handle)


if __name__ == "__main__":
    main(*sys.argv[1:4])
