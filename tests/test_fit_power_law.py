"""Tests of :func:`alphahat.fit.fit_power_law` (the weightwatcher 0.7.7 ``WWFit`` rule).

The vectorised fitter is checked against a slow scalar re-implementation written here from
the published formulas (plain loops, ``math.log``, no cumulative sums), against the reference
tool's own ``WWFit``, against closed forms worked out by hand, against invariances (scale,
order, chunk size), against the Pareto exponent it should recover, and on degenerate input.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphahat.fit import FitStatus, PowerLawFit
from alphahat.fit import fit_power_law as _fit_power_law

# These tests check every candidate's α and D against a scalar reference, so they ask for the
# full D vector; the default exact pruned search is checked against it at the end of the file.
fit_power_law = functools.partial(_fit_power_law, all_distances=True)

# The reference tool's constants, restated here rather than imported from the code under test.
SMALL_N = 20  # below this many points the small-sample rule applies
SMALL_N_MIN_TAIL = 8
SMALL_N_DEGENERATE_LOG_SUM = 1e-12

RTOL = 1e-9  # agreement asked of the selected fit
TIE = 1e-10  # reference D values this close to the best are accepted as a near-tie
EPS = np.finfo(np.float64).eps
NUMERIC_FIELDS = ("alpha", "xmin", "D", "sigma")
PROPERTY = settings(deadline=None, max_examples=100)


# --------------------------------------------------------------------------------------------
# Scalar reference implementation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    i: int  # index of x_min in the sorted sample
    xmin: float
    n_tail: int
    log_sum: float  # Σ_{j≥i} ln(x_j / x_i)
    alpha: float
    D: float


@dataclass(frozen=True)
class Reference:
    xs: list[float]  # the sorted sample
    status: FitStatus
    candidates: list[Candidate]  # admissible candidates only
    best: Candidate | None


def tail_log_sum(xs: Sequence[float], i: int) -> float:
    total = 0.0
    for j in range(i, len(xs)):
        total += math.log(xs[j] / xs[i])
    return total


def ks_distance(xs: Sequence[float], i: int, alpha: float) -> float:
    n_tail = len(xs) - i
    worst = 0.0
    for k in range(n_tail):
        fitted_cdf = 1.0 - (xs[i + k] / xs[i]) ** (1.0 - alpha)
        worst = max(worst, abs(fitted_cdf - k / n_tail))
    return worst


def small_n_candidate(xs: Sequence[float], i: int, log_sum: float) -> Candidate:
    n_tail = len(xs) - i
    alpha = 1.0 + (n_tail - 1) / log_sum
    return Candidate(i, xs[i], n_tail, log_sum, alpha, ks_distance(xs, i, alpha))


def reference_fit(values: Sequence[float] | np.ndarray) -> Reference:
    """The weightwatcher 0.7.7 rule, one candidate at a time (finite positive input only).

    Below 20 points, WWFit.fit_powerlaw_smallN picks a tail by D − 0.868/√n, but WWFit's
    constructor then re-selects the minimum-D candidate and reports that one (α, x_min, D, σ);
    this reproduces what it reports.
    """
    xs = sorted(float(v) for v in np.ravel(values))
    n = len(xs)
    if n < 3:
        return Reference(xs, FitStatus.TOO_FEW_POINTS, [], None)
    if xs[0] == xs[-1]:
        return Reference(xs, FitStatus.CONSTANT, [], None)
    candidates: list[Candidate] = []
    for i in range(n - 1):
        n_tail = n - i
        log_sum = tail_log_sum(xs, i)
        if n < SMALL_N:
            if n_tail >= SMALL_N_MIN_TAIL and log_sum > SMALL_N_DEGENERATE_LOG_SUM:
                candidates.append(small_n_candidate(xs, i, log_sum))
        elif log_sum > 0.0:
            alpha = 1.0 + n_tail / log_sum
            candidates.append(
                Candidate(i, xs[i], n_tail, log_sum, alpha, ks_distance(xs, i, alpha))
            )
    if not candidates and n < SMALL_N:
        # the small-sample rule falls back to the whole sample as the tail
        log_sum = tail_log_sum(xs, 0)
        if log_sum > SMALL_N_DEGENERATE_LOG_SUM:
            candidates.append(small_n_candidate(xs, 0, log_sum))
    if not candidates:
        return Reference(xs, FitStatus.NO_VALID_XMIN, [], None)
    best = min(candidates, key=lambda c: (c.D, c.i))  # first on ties
    return Reference(xs, FitStatus.FITTED, candidates, best)


def log_spread_error_bound(xs: Sequence[float], c: Candidate) -> float:
    """Relative rounding error the fitter's suffix-sum form of Σ ln(x_j/x_i) may carry.

    The fitter gets Σ_{j≥i} ln(x_j/x_i) as (Σ_{j≥i} ℓ_j) − n_i ℓ_i with ℓ = ln x − ln x_0;
    both terms are at most n_i·L (L = ln(x_max/x_min)) and the running sum of n_i terms of
    size ≤ L is exact to n_i²·L·ε, so the difference is exact to about 2·n_i²·L·ε. That is
    tiny against Σ ln(x_j/x_i) unless a short tail sits far from x_0 with a tiny spread —
    a per-candidate diagnostic, never asked of the selected fit.
    """
    spread = math.log(xs[-1] / xs[0])
    return 2.0 * c.n_tail**2 * spread * EPS / c.log_sum


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def assert_not_fitted(fit: PowerLawFit, status: FitStatus) -> None:
    assert fit.status is status
    assert not fit.fitted
    assert fit.reason
    for name in NUMERIC_FIELDS:
        assert math.isnan(getattr(fit, name)), name
    assert fit.n_tail == 0


def assert_fitted_and_finite(fit: PowerLawFit) -> None:
    assert fit.status is FitStatus.FITTED, fit.reason
    assert fit.fitted
    assert fit.reason == ""
    for name in (*NUMERIC_FIELDS, "xmax"):
        assert math.isfinite(getattr(fit, name)), name
    assert fit.alpha > 1.0
    assert fit.sigma > 0.0
    assert 0.0 <= fit.D <= 1.0
    assert 2 <= fit.n_tail <= fit.n
    assert fit.xmin < fit.xmax


def assert_agrees_with_reference(fit: PowerLawFit, ref: Reference) -> None:
    assert fit.status is ref.status, fit.reason
    assert fit.n == len(ref.xs)
    if ref.best is None:
        for name in NUMERIC_FIELDS:
            assert math.isnan(getattr(fit, name)), name
        return
    assert_fitted_and_finite(fit)
    assert fit.xmax == ref.xs[-1]
    np.testing.assert_array_equal(fit.xmins, ref.xs[:-1])

    # diagnostics: NaN or finite, never ±inf; a KS distance lies in [0, 1]
    assert not np.isinf(fit.alphas).any() and not np.isinf(fit.Ds).any()
    assert ((fit.Ds >= 0.0) & (fit.Ds <= 1.0) | np.isnan(fit.Ds)).all()

    # every admissible candidate, to the rounding the fitter's suffix sums allow
    by_index = {c.i: c for c in ref.candidates}
    for c in ref.candidates:
        slack = RTOL + log_spread_error_bound(ref.xs, c)
        assert fit.alphas[c.i] == pytest.approx(c.alpha, rel=slack), c
        assert fit.Ds[c.i] == pytest.approx(c.D, abs=slack), c
    if fit.n < SMALL_N:  # the small-sample rule leaves the other candidates NaN
        inadmissible = [i for i in range(fit.n - 1) if i not in by_index]
        assert np.isnan(fit.alphas[inadmissible]).all()
        assert np.isnan(fit.Ds[inadmissible]).all()

    # the selected candidate: the reference's best, or one within TIE of it
    chosen = fit.n - fit.n_tail
    near = [c.i for c in ref.candidates if c.D <= ref.best.D + TIE]
    assert chosen in near, f"chose candidate {chosen}; reference best {ref.best.i}, near {near}"
    c = by_index[chosen]
    assert fit.xmin == c.xmin
    assert fit.n_tail == c.n_tail
    assert fit.alpha == pytest.approx(c.alpha, rel=RTOL)
    assert pytest.approx(c.D, rel=RTOL, abs=1e-12) == fit.D
    assert fit.sigma == pytest.approx((c.alpha - 1.0) / math.sqrt(c.n_tail), rel=RTOL)
    # internal consistency: the first minimiser of the fit's own Ds was taken
    assert chosen == int(np.nanargmin(fit.Ds))


def fits_equal(a: PowerLawFit, b: PowerLawFit) -> None:
    assert a == b  # every scalar field (NaN fields compare unequal, so only fitted ones here)
    for name in ("xmins", "alphas", "Ds"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def pareto(rng: np.random.Generator, n: int, alpha: float, xmin: float = 1.0) -> np.ndarray:
    return xmin * (1.0 - rng.random(n)) ** (-1.0 / (alpha - 1.0))


def round_significant(x: np.ndarray, digits: int) -> np.ndarray:
    return np.array([float(f"{v:.{digits - 1}e}") for v in x])


# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------

KINDS = ("pareto", "log_uniform", "lognormal", "few_values", "rounded", "pareto_plus_bulk")


@st.composite
def positive_samples(draw: st.DrawFn, min_size: int = 3, max_size: int = 400) -> np.ndarray:
    """Finite positive samples of varied shape, with and without ties, over 1e-6 … 1e6."""
    n = draw(st.integers(min_size, max_size))
    kind = draw(st.sampled_from(KINDS))
    scale = 10.0 ** draw(st.floats(-6.0, 6.0))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "pareto":
        x = scale * pareto(rng, n, draw(st.floats(1.2, 6.0)))
    elif kind == "log_uniform":  # twelve decades, no scale on top
        x = 10.0 ** rng.uniform(-6.0, 6.0, n)
    elif kind == "lognormal":
        x = scale * rng.lognormal(0.0, draw(st.floats(0.1, 3.0)), n)
    elif kind == "few_values":  # heavy ties: a handful of distinct values
        pool = 10.0 ** rng.uniform(-6.0, 6.0, draw(st.integers(2, 6)))
        x = rng.choice(pool, n)
    elif kind == "rounded":  # ties from rounding to 1-3 significant digits
        x = scale * round_significant(
            pareto(rng, n, draw(st.floats(1.2, 4.0))), draw(st.integers(1, 3))
        )
    else:  # a uniform bulk below a Pareto tail
        bulk = rng.uniform(0.1, 1.0, n // 2)
        x = scale * np.concatenate([bulk, pareto(rng, n - n // 2, draw(st.floats(1.5, 4.0)))])
    return np.asarray(x, dtype=np.float64)


GRID = [10.0 ** (k / 4) for k in range(-24, 25)]  # exact repeats of a few values, shrinkable
grid_samples = st.lists(st.sampled_from(GRID), min_size=3, max_size=45).map(np.array)


# --------------------------------------------------------------------------------------------
# 1. Property tests against the scalar reference
# --------------------------------------------------------------------------------------------


@PROPERTY
@given(positive_samples())
def test_matches_scalar_reference(x: np.ndarray) -> None:
    assert_agrees_with_reference(fit_power_law(x), reference_fit(x))


@PROPERTY
@given(positive_samples(min_size=3, max_size=30))
def test_matches_scalar_reference_around_small_n_switch(x: np.ndarray) -> None:
    assert_agrees_with_reference(fit_power_law(x), reference_fit(x))


@PROPERTY
@given(grid_samples)
def test_matches_scalar_reference_on_tied_grid_values(x: np.ndarray) -> None:
    assert_agrees_with_reference(fit_power_law(x), reference_fit(x))


def test_reference_helpers_on_a_hand_example() -> None:
    # guards the scalar reference itself: [1, e, e²] → Σ ln = 0 + 1 + 2
    xs = [1.0, math.e, math.e**2]
    assert tail_log_sum(xs, 0) == pytest.approx(3.0, rel=1e-15)
    assert ks_distance(xs, 0, 1.0 + 2.0 / 3.0) == pytest.approx(2 / 3 - math.exp(-2 / 3))


# --------------------------------------------------------------------------------------------
# 2. Agreement with weightwatcher's own WWFit
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wwfit():  # type: ignore[no-untyped-def]
    module = pytest.importorskip("weightwatcher.WW_powerlaw")

    def run(x: np.ndarray):  # type: ignore[no-untyped-def]
        # WWFit prints "SMALL N PL FIT" below 20 points
        with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
            return module.WWFit(np.asarray(x, dtype=np.float64))

    return run


def esd(rng: np.random.Generator, rows: int, cols: int, heavy: bool) -> np.ndarray:
    """Eigenvalues of WᵀW/rows, W Gaussian or Student-t (ν = 2.5) entries."""
    w = rng.standard_t(2.5, (rows, cols)) if heavy else rng.standard_normal((rows, cols))
    return np.linalg.eigvalsh(w.T @ w / rows)


WW_CASES = [
    ("pareto", 3, 0),
    ("pareto", 7, 1),
    ("pareto", 8, 2),
    ("pareto", 12, 3),
    ("pareto", 19, 4),
    ("pareto", 20, 5),
    ("pareto", 57, 6),
    ("pareto", 800, 7),
    ("lognormal", 15, 8),
    ("lognormal", 300, 9),
    ("mp", 12, 10),
    ("mp", 19, 11),
    ("mp", 150, 12),
    ("heavy", 16, 13),
    ("heavy", 64, 14),
    ("heavy", 300, 15),
]


@pytest.mark.parametrize(("kind", "n", "seed"), WW_CASES)
def test_matches_weightwatcher_wwfit(wwfit, kind: str, n: int, seed: int) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    if kind == "pareto":
        x = pareto(rng, n, rng.uniform(1.5, 5.0), xmin=rng.uniform(0.01, 100.0))
    elif kind == "lognormal":
        x = rng.lognormal(0.0, 1.5, n)
    else:
        x = esd(rng, 3 * n, n, heavy=kind == "heavy")
    assert x.size == n and (x > 0).all()
    ours = fit_power_law(x)
    theirs = wwfit(x)
    assert ours.status is FitStatus.FITTED
    assert ours.alpha == pytest.approx(float(theirs.alpha), rel=RTOL)
    assert ours.xmin == pytest.approx(float(theirs.xmin), rel=RTOL)
    assert pytest.approx(float(theirs.D), rel=RTOL) == ours.D
    if n < SMALL_N_MIN_TAIL:
        # the whole-sample fallback: WWFit fills its σ array while every α is still 0 and
        # never updates it, so it reports σ = (0 − 1)/√n; ours follows σ = (α − 1)/√n_tail
        assert float(theirs.sigma) == pytest.approx(-1.0 / math.sqrt(n), rel=1e-15)
        assert ours.sigma == pytest.approx((ours.alpha - 1.0) / math.sqrt(n), rel=1e-12)
    else:
        assert ours.sigma == pytest.approx(float(theirs.sigma), rel=RTOL)
    assert ours.n_tail == np.count_nonzero(x >= theirs.xmin)
    assert ours.xmax == float(np.max(x))


def test_wwfit_small_n_reports_the_minimum_d_candidate(wwfit) -> None:  # type: ignore[no-untyped-def]
    # 13 points: D − 0.868/√n would take the 9-point tail, but WWFit reports the minimum-D
    # candidate (the whole sample) for α, x_min, D and σ — only its .data keeps the 9 points.
    x = np.array([2.754, 1.369, 1.043, 1.017, 5.355, 11.46, 2.542, 3.697, 2.191, 15.40, 5.430,
                  1.003, 7.013])  # fmt: skip
    ref = reference_fit(x)
    assert ref.best is not None and ref.best.i == 0
    by_objective = min(ref.candidates, key=lambda c: c.D - 0.868 / math.sqrt(c.n_tail))
    assert by_objective.i != ref.best.i  # the two rules really disagree here
    theirs = wwfit(x)
    assert theirs.xmin == ref.best.xmin and theirs.data.size == by_objective.n_tail
    fit = fit_power_law(x)
    assert_agrees_with_reference(fit, ref)
    assert fit.alpha == pytest.approx(float(theirs.alpha), rel=RTOL)
    assert pytest.approx(float(theirs.D), rel=RTOL) == fit.D


def test_wwfit_degenerate_top_tail_deliberate_difference(wwfit) -> None:  # type: ignore[no-untyped-def]
    # [1, 1, R×18]: the reference takes the all-R tail [R, R] (α = ∞, D = 1/2); we drop
    # constant tails and keep the whole sample. By hand, for the whole sample:
    # Σ ln = 18 ln R, α = 1 + 20/(18 ln R), F(R) = 1 − e^{−10/9}, D = F(R) − 2/20.
    big = 7.5
    x = np.array([1.0, 1.0] + [big] * 18)
    theirs = wwfit(x)
    assert math.isinf(theirs.alpha)
    fit = fit_power_law(x)
    assert_fitted_and_finite(fit)
    assert fit.xmin == 1.0
    assert fit.n_tail == 20
    assert fit.alpha == pytest.approx(1.0 + 20.0 / (18.0 * math.log(big)), rel=1e-12)
    assert pytest.approx(0.9 - math.exp(-10.0 / 9.0), rel=1e-12) == fit.D
    assert fit.sigma == pytest.approx((fit.alpha - 1.0) / math.sqrt(20.0), rel=1e-12)


def test_wwfit_small_n_no_spread_deliberate_difference(wwfit) -> None:  # type: ignore[no-untyped-def]
    # Σ ln(x/x_min) = ln(1 + 1e-13) ≤ 1e-12: no tail has an exponent. The reference sets
    # α = 1, σ = 0, D = 1, then its caller re-selects from the untouched arrays (α = 0, D = 1)
    # and reports α = 0, σ = −1/√3, D = 1.
    x = np.array([1.0, 1.0, 1.0 + 1e-13])
    theirs = wwfit(x)
    assert float(theirs.alpha) in (0.0, 1.0) and float(theirs.D) == 1.0
    assert_not_fitted(fit_power_law(x), FitStatus.NO_VALID_XMIN)


# --------------------------------------------------------------------------------------------
# 3. Closed forms and invariances
# --------------------------------------------------------------------------------------------


def test_three_points_small_n_fallback_by_hand() -> None:
    # n = 3 < 8: no tail qualifies, so the whole sample is the tail.
    # Σ ln(x/1) = 0 + 1 + 2 = 3, α = 1 + (3 − 1)/3 = 5/3, F(x) = 1 − x^(−2/3):
    # gaps 0, |1 − e^(−2/3) − 1/3| = 0.1533, |1 − e^(−4/3) − 2/3| = 0.0697.
    fit = fit_power_law([math.e**2, 1.0, math.e])
    assert_fitted_and_finite(fit)
    assert fit.alpha == pytest.approx(5 / 3, rel=1e-12)
    assert pytest.approx(2 / 3 - math.exp(-2 / 3), rel=1e-12) == fit.D
    assert fit.sigma == pytest.approx((2 / 3) / math.sqrt(3), rel=1e-12)
    assert (fit.xmin, fit.xmax, fit.n_tail, fit.n) == (1.0, math.e**2, 3, 3)


def test_four_points_by_hand() -> None:
    # [1, 2, 4, 8]: Σ ln = (0+1+2+3) ln 2, α = 1 + 3/(6 ln 2), (x/1)^(1−α) = e^(−k/2) at 2^k,
    # gaps 1 − e^(−1/2) − 1/4 = 0.1435, 1 − e^(−1) − 1/2 = 0.1321, 1 − e^(−3/2) − 3/4 = 0.0269.
    fit = fit_power_law([8.0, 4.0, 2.0, 1.0])
    assert fit.alpha == pytest.approx(1.0 + 1.0 / (2.0 * math.log(2.0)), rel=1e-12)
    assert pytest.approx(0.75 - math.exp(-0.5), rel=1e-12) == fit.D
    assert (fit.xmin, fit.n_tail) == (1.0, 4)


def test_tie_inside_tail_by_hand() -> None:
    # [1, 1, 4]: Σ ln = ln 4, α = 1 + 2/ln 4, F(4) = 1 − e^(−2); at the second 1 the fitted
    # CDF is 0 while the empirical one is 1/3 → D = max(1/3, |1 − e^(−2) − 2/3|) = 1/3.
    fit = fit_power_law([1.0, 4.0, 1.0])
    assert fit.alpha == pytest.approx(1.0 + 2.0 / math.log(4.0), rel=1e-12)
    assert pytest.approx(1 / 3, rel=1e-12) == fit.D


@pytest.mark.parametrize("n", [19, 20, 21, 60])
@pytest.mark.parametrize("ratio", [1.05, 2.0, 30.0])
def test_geometric_sample_closed_form(n: int, ratio: float) -> None:
    # x_j = r^j. A tail of m points is r^0 … r^(m−1) times x_min, so Σ ln = ln r · m(m−1)/2 and
    #   n ≥ 20: α_m = 1 + 2/((m−1) ln r),  D_m = max_k |1 − e^(−2k/(m−1)) − k/m|
    #   n < 20: α_m = 1 + 2/(m ln r),      D_m = max_k |1 − e^(−2k/m) − k/m|, m ≥ 8,
    # and the tail of least D_m is chosen.
    x = ratio ** np.arange(n, dtype=np.float64)
    small = n < SMALL_N
    table = []  # (D, m, alpha) per tail size
    for m in range(SMALL_N_MIN_TAIL if small else 2, n + 1):
        rate = 2.0 / m if small else 2.0 / (m - 1)
        d = max(abs(1.0 - math.exp(-rate * k) - k / m) for k in range(m))
        table.append((d, m, 1.0 + rate / math.log(ratio)))
    table.sort()
    assert table[1][0] - table[0][0] > 1e-9  # no near-tie: the answer is unambiguous
    d, m, alpha = table[0]
    fit = fit_power_law(x)
    assert fit.n_tail == m
    assert fit.xmin == x[n - m]
    assert fit.alpha == pytest.approx(alpha, rel=1e-9)
    assert pytest.approx(d, rel=1e-9) == fit.D
    assert fit.sigma == pytest.approx((alpha - 1.0) / math.sqrt(m), rel=1e-9)


@pytest.mark.parametrize(
    ("x", "first", "second", "n_tail"),
    [
        # n = 12: candidate 0 has 4 ones at its start (fitted CDF 0 there, empirical 3/12)
        # and candidate 4 has 3 twos (2/8): both D = 1/4 exactly, attained at those runs.
        pytest.param([1.0] * 4 + [2.0] * 3 + [3.0] * 3 + [5.0, 8.0], 0, 4, 12, id="small-n"),
        # n = 20: the second 5 starts a run of 4 (3/12); the fifth 8 a run of 2 (1/4).
        pytest.param(
            [1.0] + [2.0] * 5 + [3.0] + [5.0] * 5 + [8.0] * 6 + [13.0, 100.0], 8, 16, 12, id="n20"
        ),
    ],
)
def test_exact_tie_in_d_takes_the_first_candidate(
    x: list[float], first: int, second: int, n_tail: int
) -> None:
    ref = reference_fit(x)
    tied = sorted(c.i for c in ref.candidates if c.D == 0.25)
    assert tied == [first, second] and ref.best is not None and ref.best.D == 0.25
    fit = fit_power_law(x[::-1])
    assert fit.D == 0.25
    assert fit.n_tail == n_tail == len(x) - first
    assert fit.xmin == sorted(x)[first]
    assert fit.alpha == pytest.approx(ref.best.alpha, rel=RTOL)


@PROPERTY
@given(positive_samples(max_size=200), st.floats(-6.0, 6.0))
def test_scaling_invariance(x: np.ndarray, log10_c: float) -> None:
    c = 10.0**log10_c
    fit, scaled = fit_power_law(x), fit_power_law(c * x)
    assert scaled.status is fit.status
    if not fit.fitted:
        return
    assert scaled.xmax == pytest.approx(c * fit.xmax, rel=1e-15)
    if scaled.n_tail != fit.n_tail:  # only a near-tie in D may flip the selection
        other = fit.n - scaled.n_tail
        assert fit.Ds[other] == pytest.approx(np.nanmin(fit.Ds), abs=TIE)
        return
    assert scaled.xmin == pytest.approx(c * fit.xmin, rel=1e-15)
    assert scaled.alpha == pytest.approx(fit.alpha, rel=RTOL)
    assert pytest.approx(fit.D, rel=RTOL, abs=1e-12) == scaled.D
    assert scaled.sigma == pytest.approx(fit.sigma, rel=RTOL)


@pytest.mark.parametrize("c", [2.0**-40, 0.5, 8.0, 2.0**60])
def test_scaling_by_power_of_two_keeps_selection(c: float) -> None:
    x = pareto(np.random.default_rng(21), 500, 2.7)
    fit, scaled = fit_power_law(x), fit_power_law(c * x)
    assert scaled.n_tail == fit.n_tail
    assert scaled.xmin == c * fit.xmin
    assert scaled.alpha == pytest.approx(fit.alpha, rel=1e-12)
    assert pytest.approx(fit.D, rel=1e-12) == scaled.D


@PROPERTY
@given(positive_samples(max_size=200), st.integers(0, 2**32 - 1))
def test_permutation_invariance(x: np.ndarray, seed: int) -> None:
    fit = fit_power_law(x)
    for shuffled in (np.random.default_rng(seed).permutation(x), x[::-1], np.sort(x)):
        other = fit_power_law(shuffled)
        if fit.fitted:
            fits_equal(fit, other)
        else:
            assert other.status is fit.status


@pytest.fixture(
    params=["pareto_300", "small_n_15", "ties_250", "fallback_6"],
)
def chunk_sample(request: pytest.FixtureRequest) -> np.ndarray:
    rng = np.random.default_rng(99)
    return {
        "pareto_300": lambda: pareto(rng, 300, 2.2),
        "small_n_15": lambda: pareto(rng, 15, 3.0),
        "ties_250": lambda: round_significant(pareto(rng, 250, 2.0), 1),
        "fallback_6": lambda: pareto(rng, 6, 2.0),
    }[request.param]()


@pytest.mark.parametrize("chunk_elements", [1, 7, 64, 1000])
def test_chunk_size_does_not_change_the_result(
    chunk_sample: np.ndarray, chunk_elements: int
) -> None:
    default = fit_power_law(chunk_sample)
    assert default.fitted
    fits_equal(default, fit_power_law(chunk_sample, chunk_elements=chunk_elements))


def test_input_is_not_kept_by_reference() -> None:
    x = pareto(np.random.default_rng(5), 50, 2.5)
    fit = fit_power_law(x)
    before = (fit.alpha, fit.xmins.copy())
    x[:] = 1.0
    assert (fit.alpha, list(fit.xmins)) == (before[0], list(before[1]))


# --------------------------------------------------------------------------------------------
# 4. Recovering the exponent of Pareto samples
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alpha", "n", "seed"),
    [(1.5, 2000, 11), (2.0, 2750, 12), (2.5, 3500, 13), (3.5, 4250, 14), (5.0, 5000, 15)],
)
def test_recovers_pareto_exponent(alpha: float, n: int, seed: int) -> None:
    # At a fixed x_min the MLE is ≈ N(α, (α−1)²/n_tail); choosing x_min by KS widens that a
    # little, so a 4σ band still leaves a per-case false alarm well under 1%.
    x = pareto(np.random.default_rng(seed), n, alpha, xmin=0.37)
    fit = fit_power_law(x)
    assert_fitted_and_finite(fit)
    assert fit.n == n
    assert abs(fit.alpha - alpha) < 4.0 * fit.sigma
    assert fit.sigma == pytest.approx((fit.alpha - 1.0) / math.sqrt(fit.n_tail), rel=1e-12)
    # the reported σ estimates the true (α−1)/√n_tail: the ratio is (α̂−1)/(α−1)
    # (|α̂ − α| < 4σ again, measured with the true σ rather than the estimate)
    true_sigma = (alpha - 1.0) / math.sqrt(fit.n_tail)
    assert abs(fit.sigma - true_sigma) < 4.0 * true_sigma / math.sqrt(fit.n_tail)
    assert fit.n_tail >= 50  # a pure power law must not be fitted on a handful of points
    assert fit.xmin >= 0.37


# --------------------------------------------------------------------------------------------
# 5. Degenerate input
# --------------------------------------------------------------------------------------------

DEGENERATE = [
    pytest.param([], FitStatus.TOO_FEW_POINTS, id="empty"),
    pytest.param([2.0], FitStatus.TOO_FEW_POINTS, id="one"),
    pytest.param([1.0, 3.0], FitStatus.TOO_FEW_POINTS, id="two"),
    pytest.param([5.0] * 3, FitStatus.CONSTANT, id="three-equal"),
    pytest.param([0.25] * 19, FitStatus.CONSTANT, id="19-equal"),
    pytest.param([7e5] * 500, FitStatus.CONSTANT, id="500-equal"),
    pytest.param([1.0, 2.0, math.nan, 3.0], FitStatus.INVALID_VALUES, id="nan"),
    pytest.param([1.0, 2.0, math.inf, 3.0], FitStatus.INVALID_VALUES, id="inf"),
    pytest.param([1.0, 2.0, -math.inf, 3.0], FitStatus.INVALID_VALUES, id="-inf"),
    pytest.param([0.0, 1.0, 2.0, 3.0], FitStatus.INVALID_VALUES, id="zero"),
    pytest.param([-1.0, 1.0, 2.0, 3.0], FitStatus.INVALID_VALUES, id="negative"),
    pytest.param([-3.0] * 25, FitStatus.INVALID_VALUES, id="all-negative"),
    pytest.param([math.nan], FitStatus.INVALID_VALUES, id="lone-nan"),
    pytest.param([1.0, 1.0, 1.0 + 1e-13], FitStatus.NO_VALID_XMIN, id="small-n-no-spread"),
    pytest.param([2.0] * 9 + [2.0 + 1e-14], FitStatus.NO_VALID_XMIN, id="small-n-no-spread-10"),
]


@pytest.mark.parametrize(("x", "status"), DEGENERATE)
def test_degenerate_input_gets_status_and_nan_fields(x: list[float], status: FitStatus) -> None:
    fit = fit_power_law(x)
    assert_not_fitted(fit, status)
    for name in NUMERIC_FIELDS:
        value = getattr(fit, name)
        assert not math.isinf(value) and value != -1.0, name


@pytest.mark.parametrize(
    ("x", "xmax"),
    [
        ([], math.nan),
        ([2.0], 2.0),
        ([3.0, 1.0], 3.0),
        ([5.0] * 4, 5.0),
        ([1.0, 1.0, 1.0 + 1e-13], 1.0 + 1e-13),
    ],
)
def test_degenerate_valid_input_reports_n_and_xmax(x: list[float], xmax: float) -> None:
    fit = fit_power_law(x)
    assert fit.n == len(x)
    assert fit.xmax == xmax or (math.isnan(xmax) and math.isnan(fit.xmax))


def test_invalid_values_report_the_sample_size() -> None:
    fit = fit_power_law([1.0, 2.0, math.nan])
    assert fit.n == 3
    assert math.isnan(fit.xmax)


def test_two_dimensional_input_is_flattened() -> None:
    x = pareto(np.random.default_rng(3), 60, 2.5)
    fit = fit_power_law(x.reshape(6, 10))
    assert fit.n == 60
    fits_equal(fit, fit_power_law(x))
    assert_agrees_with_reference(fit, reference_fit(x))


@pytest.mark.parametrize("kind", ["logspace", "random"])
def test_values_over_300_decades_fit_finitely(kind: str) -> None:
    if kind == "logspace":
        x = np.logspace(-150, 150, 61)
    else:
        x = 10.0 ** np.random.default_rng(8).uniform(-150.0, 150.0, 120)
    fit = fit_power_law(x)
    assert_fitted_and_finite(fit)
    assert_agrees_with_reference(fit, reference_fit(x))


@pytest.mark.parametrize(
    "x",
    [
        pytest.param([1.0] * 1000 + [2.0, 3.0, 5.0], id="bottom-heavy"),
        pytest.param([1.0, 2.0, 3.0] + [5.0] * 1000, id="top-heavy"),
        pytest.param([0.5] * 500 + [1.5] * 500 + [9.0], id="two-blocks"),
        pytest.param([1.0, 2.0] + [3.0] * 12, id="small-n-top-heavy"),
    ],
)
def test_huge_ties(x: list[float]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by a zero log-spread, no overflow
        fit = fit_power_law(np.random.default_rng(0).permutation(x))
    assert_agrees_with_reference(fit, reference_fit(x))


def test_constant_tails_are_not_admissible_candidates() -> None:
    # Every candidate i ≥ 3 has a tail of identical values: Σ ln(x/x_min) = 0, no exponent.
    fit = fit_power_law([1.0, 2.0, 3.0] + [5.0] * 1000)
    assert np.isnan(fit.alphas[3:]).all()
    assert np.isnan(fit.Ds[3:]).all()


@settings(deadline=None, max_examples=150)
@given(
    st.lists(
        st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.sampled_from([0.0, -0.0, 1.0, 2.0, 1e-300, 1e300, 5e-324]),
        ),
        max_size=40,
    )
)
def test_any_input_gives_fitted_finite_or_nan_status(x: list[float]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_power_law(x)
    valid = [v for v in x if math.isfinite(v) and v > 0]
    if len(valid) < len(x):
        assert_not_fitted(fit, FitStatus.INVALID_VALUES)
    elif fit.fitted:
        assert_fitted_and_finite(fit)
        assert fit.xmin in valid
        assert fit.xmax == max(valid)
    else:
        assert_not_fitted(fit, fit.status)


def test_invalid_convention_raises() -> None:
    with pytest.raises(ValueError, match="convention"):
        fit_power_law([1.0, 2.0, 3.0], convention="plfit")  # type: ignore[arg-type]


@pytest.mark.parametrize("chunk_elements", [0, -1])
def test_non_positive_chunk_elements_raises(chunk_elements: int) -> None:
    with pytest.raises(ValueError, match="chunk_elements"):
        fit_power_law([1.0, 2.0, 3.0], chunk_elements=chunk_elements)


# --------------------------------------------------------------------------------------------
# 6. The result object
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [5, 15, 40])
def test_result_is_frozen_and_arrays_read_only(n: int) -> None:
    fit = fit_power_law(pareto(np.random.default_rng(n), n, 2.5))
    assert fit.fitted
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.alpha = 2.0  # type: ignore[misc]
    for name in ("xmins", "alphas", "Ds"):
        array = getattr(fit, name)
        assert array.shape == (n - 1,), name
        assert array.dtype == np.float64
        assert not array.flags.writeable, name
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0.0


@settings(deadline=None, max_examples=60)
@given(
    st.integers(20, 600),
    st.integers(0, 2**32 - 1),
    st.sampled_from(["pareto", "eigenvalues", "ties"]),
)
def test_default_pruned_search_selects_what_the_exhaustive_search_selects(
    n: int, seed: int, kind: str
) -> None:
    rng = np.random.default_rng(seed)
    if kind == "pareto":
        x = np.concatenate([rng.lognormal(0, 0.5, n), 3 * (1 - rng.random(n // 5)) ** (-1 / 1.7)])
    elif kind == "eigenvalues":
        x = np.linalg.svd(rng.standard_t(3, size=(n, max(n // 3, 20))), compute_uv=False) ** 2
    else:
        x = np.round(rng.pareto(1.5, n) + 1, 1)
    pruned, exhaustive = _fit_power_law(x), _fit_power_law(x, all_distances=True)
    assert (pruned.status, pruned.xmin, pruned.n_tail) == (
        exhaustive.status,
        exhaustive.xmin,
        exhaustive.n_tail,
    )
    assert pruned.D == exhaustive.D and pruned.alpha == exhaustive.alpha
    computed = np.isfinite(pruned.Ds)
    np.testing.assert_array_equal(pruned.Ds[computed], exhaustive.Ds[computed])
