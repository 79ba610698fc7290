"""Size and time of the HTML report on a many-layer model (the issue's 500-layer target).

    python benchmarks/html_report.py                      # 500 layers, default (capped) report
    python benchmarks/html_report.py --layers 100 --all   # a figure for every layer

The model: seeded heavy-tailed matrices of a few realistic shapes (Student-t entries), so the
fits and figures look like real layers'. Prints analysis time, report time and file size, and
for ``--all`` the size per layer extrapolated to 500 layers.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import alphahat
from alphahat.html_report import write_html_report

SHAPES = ((256, 128), (384, 128), (512, 256), (128, 128))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=500)
    parser.add_argument("--all", action="store_true", help="diagnostics for every layer")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    weights = {
        f"blocks.{i}.weight": rng.standard_t(2.0 + 4.0 * rng.random(), size=SHAPES[i % 4])
        for i in range(args.layers)
    }
    start = time.perf_counter()
    report = alphahat.analyze(weights, keep_eigenvalues=True)
    analysed = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "report.html"
        start = time.perf_counter()
        write_html_report(report, path, diagnostics="all" if args.all else "auto")
        drawn = time.perf_counter() - start
        size = path.stat().st_size
        base = Path(folder) / "base.html"
        write_html_report(report, base, diagnostics="none")
        base_size = base.stat().st_size
    figures = args.layers if args.all else min(args.layers, 50)
    per_layer = (size - base_size) / max(figures, 1)
    print(
        f"{args.layers} layers: analysis {analysed:.1f} s, report {drawn:.1f} s "
        f"({figures} layers with diagnostics, {drawn / max(figures, 1):.2f} s each)"
    )
    print(
        f"file {size / 1e6:.2f} MB (without diagnostics {base_size / 1e6:.2f} MB; "
        f"{per_layer / 1e3:.1f} kB per layer's figures)"
    )
    print(f"a figure for every one of 500 layers: ≈ {(base_size + 500 * per_layer) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
