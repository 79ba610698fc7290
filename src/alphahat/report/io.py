"""Report output: JSON and CSV text, written atomically (:mod:`alphahat.engine.files`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alphahat.engine.files import write_atomic

if TYPE_CHECKING:
    import pandas as pd


def json_output(data: Any, path: str | Path | None = None) -> str:
    """Indented JSON text of ``data`` (NaN refused: use None); written atomically to ``path``."""
    text = json.dumps(data, indent=2, allow_nan=False, ensure_ascii=False) + "\n"
    if path is not None:
        write_atomic(Path(path), text)
    return text


def csv_output(frame: pd.DataFrame, path: str | Path | None = None) -> str:
    """CSV text of a DataFrame (no index, full precision); written atomically to ``path``."""
    text: str = frame.to_csv(index=False, lineterminator="\n")
    if path is not None:
        write_atomic(Path(path), text)
    return text


__all__ = ["csv_output", "json_output", "write_atomic"]
