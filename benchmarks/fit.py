"""Time power-law fits (x_min search included) under every convention, n = 1k … 1M; one table.

For each convention — ``reference``, ``clauset``, ``powerlaw`` (continuous) and ``clauset``,
``powerlaw`` (discrete) — and each n, per fit of one sample:

* ``pruned``: ``alphahat.fit.fit_power_law(x, convention=…, discrete=…)``, the default: the
  exact pruned x_min search of ``alphahat.fit._ks_search`` — same x_min, α, D and n_tail as
  the exhaustive fit, bit for bit (checked where the exhaustive fit runs);
* ``exhaustive``: the same with ``all_distances=True`` (every candidate's D, O(n·U) work for
  U distinct values); run up to ``--exhaustive-max`` (10k), above that an O(n²) estimate;
* ``powerlaw``: the ``powerlaw`` package 2.0.0, ``powerlaw.Fit(x, discrete=…,
  parameter_ranges={'alpha': [1, 10]})``, its own x_min search on the same sample; run up to
  10k, and beyond only when the estimate from the previous size is under ``--budget`` s;
* ``weightwatcher``: ``weightwatcher.WW_powerlaw.WWFit(x)`` (0.7.7) for the ``reference``
  rows, up to 10k.

Data (seeded, ``--seed``): continuous, n·9/10 points of a lognormal bulk exp(N(0, 0.5²)) and
n/10 of a Pareto tail x = 10·(1 + Pareto(1.5)) (density ∝ x^−2.5 for x ≥ 10); discrete, the
same sample as integers ⌈1000·x⌉ (many distinct values: U ≈ 39 000 at n = 1M).

Also printed: the peak memory of each 1M pruned fit (tracemalloc peak of numpy allocations and
the growth of the peak RSS, each in a fresh process), and the time of Clauset's goodness-of-fit
bootstrap with 1 000 replicates at n = 10k (``power_law_goodness_of_fit``, serial and with
``workers=`` the CPU count).

    python benchmarks/fit.py [--sizes 1000,10000,100000,1000000] [--repeat 5] [--boot 1000]
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

from alphahat.fit import fit_power_law, power_law_goodness_of_fit

CASES = [
    ("reference", False),
    ("clauset", False),
    ("powerlaw", False),
    ("clauset", True),
    ("powerlaw", True),
]
EXHAUSTIVE_MAX_N = 10_000
PACKAGE_MAX_N = 10_000
WW_MAX_N = 10_000
DISCRETE_SCALE = 1000.0
KEYS = ("alpha", "xmin", "D", "n_tail")


def sample(n: int, seed: int, discrete: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tail = n // 10
    bulk = rng.lognormal(0.0, 0.5, n - tail)
    x = np.concatenate([bulk, 10.0 * (1.0 + rng.pareto(1.5, tail))])
    return np.ceil(DISCRETE_SCALE * x) if discrete else x


def ours(convention: str, discrete: bool, exhaustive: bool) -> Callable[[np.ndarray], Any]:
    def run(x: np.ndarray) -> dict[str, float]:
        f = fit_power_law(
            x,
            convention=convention,  # type: ignore[arg-type]
            discrete=discrete,
            all_distances=exhaustive,
        )
        return {"alpha": f.alpha, "xmin": f.xmin, "D": f.D, "n_tail": float(f.n_tail)}

    return run


def package(discrete: bool) -> Callable[[np.ndarray], Any]:
    def run(x: np.ndarray) -> dict[str, float]:
        import powerlaw

        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            f = powerlaw.Fit(x, discrete=discrete, parameter_ranges={"alpha": [1, 10]})
        return {"alpha": float(f.alpha), "xmin": float(f.xmin), "D": float(f.D)}

    return run


def fit_ww(x: np.ndarray) -> dict[str, float]:
    from weightwatcher.WW_powerlaw import WWFit

    with contextlib.redirect_stdout(io.StringIO()):
        f = WWFit(x)
    return {"alpha": float(f.alpha), "xmin": float(f.xmin), "D": float(f.D)}


def timed(fn: Callable[[np.ndarray], Any], x: np.ndarray, repeat: int) -> tuple[float, int, Any]:
    times = []
    result: Any = {}
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times), len(times), result


def fmt_time(t: float | None, runs: int = 0) -> str:
    if t is None:
        return "-"
    text = f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s"
    return f"{text} (×{runs})" if runs else text


def ratio(t: float | None, reference: float) -> str:
    return f"{t / reference:,.0f}×" if t is not None else "-"


_MEMORY_PROBE = """
import sys, tracemalloc
sys.path.insert(0, sys.argv[1])
import fit

def high_water_kib():
    # VmHWM: peak RSS of this process image (ru_maxrss would include the parent's, which
    # Linux carries over fork + exec).
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmHWM")).split()[1])

convention, discrete = sys.argv[4], sys.argv[5] == "1"
x = fit.sample(int(sys.argv[2]), int(sys.argv[3]), discrete)
run = fit.ours(convention, discrete, False)
run(x[:2000])  # imports and first-call costs out of the measurement
before = high_water_kib()
tracemalloc.start()
run(x)
peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
print(peak / 2**20, (high_water_kib() - before) / 1024)
"""


def peak_memory(n: int, seed: int, convention: str, discrete: bool) -> tuple[float, float]:
    """(tracemalloc peak MiB, peak-RSS growth MiB) of one pruned fit, in a fresh process."""
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, here, str(n), str(seed), convention,
         "1" if discrete else "0"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()  # fmt: skip
    return float(out[-2]), float(out[-1])


def bootstrap_times(n: int, n_boot: int, seed: int) -> list[str]:
    """Wall time of ``power_law_goodness_of_fit`` with ``n_boot`` replicates at n points."""
    x = sample(n, seed)
    workers = os.cpu_count() or 1
    lines = []
    for convention in ("reference", "clauset", "powerlaw"):
        cells = []
        for w in sorted({1, workers}):
            start = time.perf_counter()
            result = power_law_goodness_of_fit(
                x, n_boot=n_boot, seed=seed, workers=w, convention=convention
            )
            cells.append(f"workers={w}: {time.perf_counter() - start:.1f} s")
        lines.append(
            f"  {convention:<9} {', '.join(cells)}  (p = {result.p_value:.3f}, "
            f"{result.n_fitted}/{n_boot} replicates fitted)"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exhaustive-max", type=int, default=EXHAUSTIVE_MAX_N)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds a package run may take")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap replicates (0: skip)")
    parser.add_argument("--no-memory", action="store_true", help="skip the 1M memory probes")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    warnings.filterwarnings("ignore")
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import powerlaw  # noqa: F401  (import noise and one-time costs out of the timings)
        import weightwatcher.WW_powerlaw  # noqa: F401

    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    print(f"seed {args.seed}; median of up to {args.repeat} runs (the count is shown)\n")
    header = (
        f"{'convention':<20} | {'n':>9} | {'U':>9} | {'exhaustive':>18} | {'pruned':>15} | "
        f"{'powerlaw pkg':>16} | {'exh/pr':>8} | {'pkg/pr':>7} | checks"
    )
    print(header)
    print("-" * (len(header) + 30))
    package_times: dict[tuple[bool, int], float] = {}
    for convention, discrete in CASES:
        label = f"{convention} {'discrete' if discrete else 'continuous'}"
        exhaustive_last: tuple[int, float] | None = None
        for n in sizes:
            x = sample(n, args.seed, discrete)
            distinct = int(np.unique(x).size)
            repeat = args.repeat if n <= 100_000 else max(3, args.repeat // 2)
            t_pr, r_pr, pruned = timed(ours(convention, discrete, False), x, repeat)
            checks = [f"α={pruned['alpha']:.4f} xmin={pruned['xmin']:.5g}"]

            t_ex = r_ex = None
            if n <= args.exhaustive_max:
                t_ex, r_ex, exhaustive = timed(ours(convention, discrete, True), x, 1)
                same = all(exhaustive[k] == pruned[k] for k in KEYS)
                checks.append("= exhaustive" if same else "≠ EXHAUSTIVE")
                exhaustive_last = (n, t_ex)
            ex_text = fmt_time(t_ex, r_ex or 0)
            if t_ex is None and exhaustive_last is not None:
                n0, t0 = exhaustive_last
                estimate = t0 * (n / n0) ** 2
                ex_text = f"~{estimate:,.0f} s (est.)"

            key = (discrete, n)
            t_pkg = package_times.get(key)
            if t_pkg is None:
                smaller = [m for (d, m) in package_times if d == discrete and m < n]
                estimate = (
                    package_times[(discrete, max(smaller))] * (n / max(smaller)) ** 2
                    if smaller
                    else 0.0
                )
                if n <= PACKAGE_MAX_N or estimate < args.budget:
                    t_pkg, _, theirs = timed(package(discrete), x, 1)
                    package_times[key] = t_pkg
            pkg_text = fmt_time(t_pkg) if t_pkg is not None else "not run"
            if convention == "reference" and n <= WW_MAX_N:
                t_ww, _, ww = timed(fit_ww, x, 1)
                same_xmin = ww["xmin"] == pruned["xmin"]
                checks.append(
                    f"weightwatcher {fmt_time(t_ww)} ({t_ww / t_pr:,.0f}×), "
                    f"x_min {'=' if same_xmin else '≠'}"
                )
            print(
                f"{label:<20} | {n:>9,} | {distinct:>9,} | {ex_text:>18} | "
                f"{fmt_time(t_pr, r_pr):>15} | {pkg_text:>16} | {ratio(t_ex, t_pr):>8} | "
                f"{ratio(t_pkg, t_pr):>7} | " + "; ".join(checks),
                flush=True,
            )

    largest = max(sizes)
    if not args.no_memory:
        print(f"\npeak memory of one pruned fit at n = {largest:,} (fresh process each):")
        for convention, discrete in CASES:
            traced, rss = peak_memory(largest, args.seed, convention, discrete)
            label = f"{convention} {'discrete' if discrete else 'continuous'}"
            print(
                f"  {label:<20} {traced:6.0f} MiB traced (numpy arrays, input included), "
                f"peak-RSS growth {rss:6.0f} MiB"
            )
    if args.boot:
        print(f"\ngoodness-of-fit bootstrap, {args.boot} replicates at n = 10,000 (continuous):")
        for line in bootstrap_times(10_000, args.boot, args.seed):
            print(line, flush=True)
    print(
        "\nexh = all_distances=True (every D); pr = the default exact pruned search; "
        "pkg = powerlaw.Fit on the same sample; U = distinct values; '~ s (est.)' = O(n²) "
        "extrapolation from the last size run."
    )


if __name__ == "__main__":
    main()
