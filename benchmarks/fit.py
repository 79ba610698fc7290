"""Time power-law fits (x_min search included) for n = 1k … 1M points; print one table.

Compared, per fit of one sample:

* ``alphahat exhaustive``: ``alphahat.fit.fit_power_law(x, all_distances=True)`` (every
  candidate's KS distance, O(n²) work); run up to 10k, skipped above (an O(n²) estimate is
  printed).
* ``alphahat pruned``: ``alphahat.fit.fit_power_law(x)``, the default: the exact pruned x_min
  search of ``alphahat.fit._ks_search`` — same x_min, α and D as the exhaustive fit, bit for bit.
* ``powerlaw``: ``powerlaw.Fit(x, parameter_ranges={'alpha': [1, 10]})`` (powerlaw 2.0.0, its
  own x_min search); up to 10k only (about 400 s at 100k).
* ``weightwatcher``: ``weightwatcher.WW_powerlaw.WWFit(x)`` (0.7.7, the reference convention,
  one Python iteration per candidate); up to 10k, and 100k only when the 10k time × 100
  (O(n²)) is under 60 s, or with ``--ww-100k``.

Data (seeded, ``--seed``): n·9/10 points of a lognormal bulk, exp(N(0, 0.5²)), and n/10
points of a Pareto tail above it, x = 10·(1 + Pareto(1.5)), i.e. density ∝ x^−2.5 for x ≥ 10.
With ``--data eigs``: squared singular values of a Student-t (ν = 3) matrix of n × 2n
(heavy-tailed random-matrix spectrum; only up to 10k, the SVD being O(n³)).

Each time is the median of ``--repeat`` runs (fewer for the slow ones; the count is printed).
Also checks that the pruned fit equals the exhaustive one where that runs, and compares with
weightwatcher's α and x_min; and reports the peak memory of the largest pruned fit
(tracemalloc peak of numpy allocations, and the growth of the peak RSS, in a fresh process).

    python benchmarks/fit.py [--sizes 1000,10000,100000,1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from alphahat.fit import fit_power_law

EXHAUSTIVE_MAX_N = 10_000
POWERLAW_MAX_N = 10_000
WW_MAX_N = 10_000
WW_BUDGET_S = 60.0


def sample(n: int, seed: int, data: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if data == "eigs":
        w = rng.standard_t(3, size=(n, 2 * n))
        return np.linalg.svd(w, compute_uv=False) ** 2
    tail = n // 10
    bulk = rng.lognormal(0.0, 0.5, n - tail)
    return np.concatenate([bulk, 10.0 * (1.0 + rng.pareto(1.5, tail))])


def fit_pruned(x: np.ndarray) -> dict[str, float]:
    """The public default: the exact pruned x_min search."""
    f = fit_power_law(x)
    return {"alpha": f.alpha, "xmin": f.xmin, "D": f.D, "n_tail": float(f.n_tail)}


def fit_exhaustive(x: np.ndarray) -> dict[str, float]:
    f = fit_power_law(x, all_distances=True)
    return {"alpha": f.alpha, "xmin": f.xmin, "D": f.D, "n_tail": float(f.n_tail)}


def fit_powerlaw(x: np.ndarray) -> dict[str, float]:
    import powerlaw

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        f = powerlaw.Fit(x, parameter_ranges={"alpha": [1, 10]})
    return {"alpha": float(f.alpha), "xmin": float(f.xmin), "D": float(f.D)}


def fit_ww(x: np.ndarray) -> dict[str, float]:
    from weightwatcher.WW_powerlaw import WWFit

    with contextlib.redirect_stdout(io.StringIO()):
        f = WWFit(x)
    return {"alpha": float(f.alpha), "xmin": float(f.xmin), "D": float(f.D)}


def timed(fn: Callable[[np.ndarray], dict[str, float]], x: np.ndarray, repeat: int) -> Any:
    times = []
    result: dict[str, float] = {}
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times), len(times), result


def ratio(t: float | None, reference: float) -> str:
    return f"{t / reference:.0f}×" if t is not None else "-"


def fmt_time(t: float | None, runs: int = 0) -> str:
    if t is None:
        return "-"
    text = f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s"
    return f"{text} (×{runs})" if runs else text


_MEMORY_PROBE = """
import sys, tracemalloc
sys.path.insert(0, sys.argv[1])
import fit

def high_water_kib():
    # VmHWM: peak RSS of this process image (ru_maxrss would include the parent's, which
    # Linux carries over fork + exec).
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmHWM")).split()[1])

x = fit.sample(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
fit.fit_pruned(x[:1000])  # imports and first-call costs out of the measurement
before = high_water_kib()
tracemalloc.start()
fit.fit_pruned(x)
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
print(peak / 2**20, (high_water_kib() - before) / 1024)
"""


def peak_memory(n: int, seed: int, data: str) -> tuple[float, float]:
    """(tracemalloc peak MiB, peak-RSS growth MiB) of one pruned fit of n points.

    Run in a fresh interpreter (Linux: reads VmHWM from /proc), so that the peak RSS is not
    that of an earlier, larger step.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, here, str(n), str(seed), data],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return float(out[-2]), float(out[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", choices=["pareto", "eigs"], default="pareto")
    parser.add_argument("--ww-100k", action="store_true", help="run WWFit at 100k regardless")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    warnings.filterwarnings("ignore")
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import powerlaw  # noqa: F401  (import noise and one-time costs out of the timings)
        import weightwatcher.WW_powerlaw  # noqa: F401

    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    print(f"data: {args.data} (seed {args.seed}); median of up to {args.repeat} runs\n")
    header = (
        f"{'n':>9} | {'exhaustive':>18} | {'pruned':>14} | {'powerlaw':>14} | "
        f"{'weightwatcher':>16} | {'exh/pr':>7} | {'pl/pr':>7} | {'ww/pr':>7} | checks"
    )
    print(header)
    print("-" * (len(header) + 40))
    ww_10k: float | None = None
    exhaustive_10k: float | None = None
    notes: list[str] = []
    largest = None
    for n in sizes:
        if args.data == "eigs" and n > 10_000:
            print(f"{n:>9} | skipped: SVD of a {n} × {2 * n} matrix")
            continue
        x = sample(n, args.seed, args.data)
        largest = x
        fast_repeat = args.repeat if n <= 100_000 else max(3, args.repeat // 2)
        t_pr, r_pr, pruned = timed(fit_pruned, x, fast_repeat)
        checks = [f"α={pruned['alpha']:.4f} xmin={pruned['xmin']:.4g} tail={pruned['n_tail']:.0f}"]

        t_ex = r_ex = None
        if n <= EXHAUSTIVE_MAX_N:
            t_ex, r_ex, exhaustive = timed(fit_exhaustive, x, max(1, min(3, args.repeat)))
            same = all(exhaustive[k] == pruned[k] for k in ("alpha", "xmin", "D", "n_tail"))
            checks.append("= exhaustive" if same else "≠ EXHAUSTIVE")
            if n == 10_000:
                exhaustive_10k = t_ex
        ex_text = fmt_time(t_ex, r_ex or 0)
        if t_ex is None:
            estimate = exhaustive_10k * (n / 10_000) ** 2 if exhaustive_10k else None
            ex_text = "skip O(n²)" + (f" ~{estimate:.0f}s" if estimate else "")

        t_pl = r_pl = None
        if n <= POWERLAW_MAX_N:
            t_pl, r_pl, _ = timed(fit_powerlaw, x, max(1, min(3, args.repeat)))
        pl_text = fmt_time(t_pl, r_pl or 0) if t_pl is not None else "skipped"

        t_ww = r_ww = None
        ww_estimate = ww_10k * (n / 10_000) ** 2 if ww_10k else None
        affordable = ww_estimate is not None and ww_estimate < WW_BUDGET_S
        run_ww = n <= WW_MAX_N or (n <= 100_000 and (args.ww_100k or affordable))
        if run_ww:
            t_ww, r_ww, ww = timed(fit_ww, x, 1 if n > WW_MAX_N else max(1, min(3, args.repeat)))
            if n == 10_000:
                ww_10k = t_ww
            rel = abs(ww["alpha"] - pruned["alpha"]) / abs(ww["alpha"])
            same_xmin = ww["xmin"] == pruned["xmin"]
            checks.append(f"ww: xmin {'=' if same_xmin else '≠'}, α rel.diff {rel:.1e}")
        ww_text = fmt_time(t_ww, r_ww or 0)
        if t_ww is None:
            ww_text = "skipped" + (f" ~{ww_estimate:.0f}s" if ww_estimate else "")

        ex_r, pl_r, ww_r = (ratio(t, t_pr) for t in (t_ex, t_pl, t_ww))
        print(
            f"{n:>9} | {ex_text:>18} | {fmt_time(t_pr, r_pr):>14} | {pl_text:>14} | "
            f"{ww_text:>16} | {ex_r:>7} | {pl_r:>7} | {ww_r:>7} | " + "; ".join(checks),
            flush=True,
        )

    if largest is not None:
        traced, rss = peak_memory(largest.size, args.seed, args.data)
        notes.append(
            f"peak memory of one pruned fit at n = {largest.size} (fresh process): "
            f"{traced:.0f} MiB traced by tracemalloc (numpy arrays, input included), "
            f"peak-RSS growth {rss:.0f} MiB"
        )
    notes.append(
        "exh = fit_power_law(all_distances=True) (exhaustive O(n²) KS); pr = fit_power_law "
        "(the default exact pruned search); pl = powerlaw.Fit; ww = weightwatcher WWFit. "
        "'~Ns' = O(n²) estimate."
    )
    print()
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
