"""Tests of the pruned exact x_min search, :mod:`alphahat.fit._ks_search`.

The pruned search must pick exactly what the exhaustive computation picks: the same candidate
(the first on ties) and the same D, bit for bit. The exhaustive D vector comes from the
fitter's own ``power_law._ks_distances`` and, for small samples, from a plain per-candidate
numpy loop written here. Samples: Pareto tails above a lognormal bulk, pure Pareto samples,
squared singular values of Gaussian and Student-t matrices, data with many ties, near-constant
data, scaled by 1e-6 … 1e6, of 20 … 3000 points; both fitter conventions; block sizes down to
one element; and a "stress" setting of the search's tuning constants that drives every code
path (long rows, piece order, abandoning, wide tiles, the exact stage) on small samples.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphahat.fit import _ks_search
from alphahat.fit._ks_search import ks_distances, ks_search, minimum_ks_candidate
from alphahat.fit.power_law import DEFAULT_CHUNK_ELEMENTS, _ks_distances, _tail_log_sums

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
Inputs = tuple[FloatArray, IntArray, FloatArray]

KINDS = ("pareto_bulk", "pareto", "gaussian_eigs", "student_eigs", "ties", "lognormal", "flat")


# --------------------------------------------------------------------------------------------
# Samples and the fitter's candidate sets
# --------------------------------------------------------------------------------------------


def sample(kind: str, n: int, seed: int, scale: float = 1.0) -> FloatArray:
    rng = np.random.default_rng(seed)
    if kind == "pareto_bulk":  # lognormal bulk with a Pareto tail above it
        tail = max(2, n // 5)
        bulk = rng.lognormal(0.0, 0.5, n - tail)
        x = np.concatenate([bulk, 5.0 * (1.0 + rng.pareto(rng.uniform(0.5, 4.0), tail))])
    elif kind == "pareto":
        x = 1.0 + rng.pareto(rng.uniform(0.3, 5.0), n)
    elif kind in ("gaussian_eigs", "student_eigs"):
        rows = min(n, 200)  # keep the SVDs cheap; tile the spectrum up to n points
        shape = (rows, int(rows * rng.uniform(1.0, 3.0)))
        w = rng.standard_normal(shape) if kind == "gaussian_eigs" else rng.standard_t(3, shape)
        eigs = np.linalg.svd(w, compute_uv=False) ** 2
        x = np.resize(eigs, n) * np.repeat(1.0 + np.arange(-(-n // rows)), rows)[:n]
    elif kind == "ties":  # heavy tail rounded to a coarse grid: long runs of equal values
        x = np.round(1.0 + rng.pareto(1.5, n), int(rng.integers(0, 3)))
    elif kind == "lognormal":
        x = rng.lognormal(0.0, rng.uniform(0.2, 2.0), n)
    elif kind == "flat":  # a tiny relative spread: large exponents, near-degenerate tails
        x = 1.0 + 1e-9 * rng.random(n)
    else:
        raise ValueError(kind)
    return np.asarray(x * scale, dtype=np.float64)


def reference_inputs(x: FloatArray) -> Inputs:
    """(ln x sorted, admissible candidates, α) exactly as ``power_law._fit_reference``."""
    data = np.sort(x)
    n = data.size
    log_x = np.log(data)
    candidates = np.arange(n - 1)
    n_tail = (n - candidates).astype(np.float64)
    log_sums = _tail_log_sums(log_x)[:-1]
    admissible = (data[:-1] < data[-1]) & (log_sums > 0)
    return log_x, candidates[admissible], 1.0 + n_tail[admissible] / log_sums[admissible]


def small_n_inputs(x: FloatArray) -> Inputs:
    """The small-sample convention's candidates: tails of ≥ 8 points, α = 1 + (nᵢ − 1)/sᵢ."""
    data = np.sort(x)
    n = data.size
    log_x = np.log(data)
    candidates = np.arange(n - 1)
    n_tail = (n - candidates).astype(np.float64)
    log_sums = _tail_log_sums(log_x)[:-1]
    admissible = (n_tail >= 8) & (data[:-1] < data[-1]) & (log_sums > 1e-12)
    alphas = 1.0 + (n_tail[admissible] - 1.0) / log_sums[admissible]
    return log_x, candidates[admissible], alphas


def loop_distances(log_x: FloatArray, candidates: IntArray, alphas: FloatArray) -> FloatArray:
    """Every D, one candidate at a time, straight from the formula."""
    out = []
    for i, alpha in zip(candidates, alphas, strict=True):
        n_tail = log_x.size - int(i)
        fitted = 1.0 - np.exp((1.0 - alpha) * (log_x[i:] - log_x[i]))
        out.append(np.max(np.abs(fitted - np.arange(n_tail, dtype=np.float64) / n_tail)))
    return np.array(out, dtype=np.float64)


def same_bits(a: npt.ArrayLike, b: npt.ArrayLike) -> bool:
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    return a64.shape == b64.shape and a64.tobytes() == b64.tobytes()


def check(inputs: Inputs, chunk: int = DEFAULT_CHUNK_ELEMENTS, loop: bool = False) -> None:
    """The pruned search against the exhaustive D vector, bit for bit."""
    log_x, candidates, alphas = inputs
    exhaustive = _ks_distances(log_x, candidates, alphas, chunk)
    if loop:
        assert same_bits(loop_distances(log_x, candidates, alphas), exhaustive)
    assert same_bits(ks_distances(log_x, candidates, alphas, chunk_elements=chunk), exhaustive)

    result = ks_search(log_x, candidates, alphas, chunk_elements=chunk)
    if np.isnan(exhaustive).all():
        assert result.index == -1 and np.isnan(result.D)
        return
    best = int(np.nanargmin(exhaustive))
    assert result.index == best
    assert same_bits(result.D, exhaustive[best])
    index, D = minimum_ks_candidate(log_x, candidates, alphas, chunk_elements=chunk)
    assert index == best and same_bits(D, exhaustive[best])

    # The per-candidate output: exact D where computed, NaN elsewhere, bounds below D.
    exact = result.exact
    assert exact[best]
    assert same_bits(result.Ds[exact], exhaustive[exact])
    assert np.isnan(result.Ds[~exact]).all()
    assert same_bits(result.lower_bounds[exact], exhaustive[exact])
    finite = ~np.isnan(exhaustive)
    assert (result.lower_bounds[finite] <= exhaustive[finite]).all()
    assert int(np.nanargmin(result.lower_bounds)) == best


@contextlib.contextmanager
def stress_constants() -> Iterator[None]:
    """Tiny tuning constants, so that small samples reach every branch of the search."""
    saved = {}
    tiny = {
        "_FIRST_GRID": 2,
        "_REFINE": 2,
        "_SMALL_K": np.array([1.0, 3.0]),
        "_ZOOM": 4,
        "_SEEDS": 1,
        "_SEED_GROUPS": 3,
        "_LONG_ROW": 12,
        "_CACHE_BLOCK": 5,
        "_WIDE_GRID": 3,
    }
    for name, value in tiny.items():
        saved[name] = getattr(_ks_search, name)
        setattr(_ks_search, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(_ks_search, name, value)


# --------------------------------------------------------------------------------------------
# Agreement with the exhaustive computation
# --------------------------------------------------------------------------------------------


@settings(deadline=None, max_examples=80)
@given(
    kind=st.sampled_from(KINDS),
    n=st.integers(20, 400),
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([1e-6, 1e-3, 1.0, 1e3, 1e6]),
    chunk=st.sampled_from([3, 100, 1000, DEFAULT_CHUNK_ELEMENTS]),
)
def test_matches_exhaustive_property(
    kind: str, n: int, seed: int, scale: float, chunk: int
) -> None:
    check(reference_inputs(sample(kind, n, seed, scale)), chunk, loop=n <= 150)


@settings(deadline=None, max_examples=30)
@given(
    kind=st.sampled_from(KINDS),
    n=st.integers(20, 200),
    seed=st.integers(0, 2**32 - 1),
    chunk=st.sampled_from([1, 7, DEFAULT_CHUNK_ELEMENTS]),
)
def test_matches_exhaustive_under_stress_constants(
    kind: str, n: int, seed: int, chunk: int
) -> None:
    with stress_constants():
        check(reference_inputs(sample(kind, n, seed)), chunk, loop=n <= 100)


@settings(deadline=None, max_examples=60)
@given(
    n=st.integers(20, 60),
    levels=st.integers(2, 6),
    seed=st.integers(0, 2**32 - 1),
    stress=st.booleans(),
)
def test_matches_exhaustive_on_small_integer_data(
    n: int, levels: int, seed: int, stress: bool
) -> None:
    # Few distinct values: exactly tied D values between candidates happen here.
    x = np.random.default_rng(seed).integers(1, levels + 1, n).astype(np.float64)
    if x.min() == x.max():
        x[0] = levels + 1.0
    with stress_constants() if stress else contextlib.nullcontext():
        check(reference_inputs(x), loop=True)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [20, 257, 1000, 3000])
def test_matches_exhaustive_seeded(kind: str, n: int) -> None:
    for seed in range(2 if n >= 1000 else 4):
        check(reference_inputs(sample(kind, n, 1000 * n + seed)), loop=n <= 257)


@pytest.mark.parametrize("kind", ["pareto_bulk", "pareto", "ties", "gaussian_eigs"])
def test_matches_exhaustive_seeded_under_stress_constants(kind: str) -> None:
    with stress_constants():
        for n, seed in [(300, 1), (700, 2)]:
            check(reference_inputs(sample(kind, n, seed)))


@pytest.mark.parametrize("kind", KINDS)
def test_matches_exhaustive_small_sample_convention(kind: str) -> None:
    for n in range(9, 20):
        check(small_n_inputs(sample(kind, n, n)), loop=True)


def test_non_contiguous_candidates() -> None:
    rng = np.random.default_rng(7)
    for kind in ("pareto_bulk", "ties", "student_eigs"):
        log_x, candidates, alphas = reference_inputs(sample(kind, 800, 3))
        keep = rng.random(candidates.size) < 0.3
        check((log_x, candidates[keep], alphas[keep]), loop=True)
        with stress_constants():
            check((log_x, candidates[keep], alphas[keep]), 17)


@pytest.mark.parametrize(
    ("counts", "tied"),
    [
        # Samples of 1, 2, 3, 4 with these multiplicities have several candidates of equal
        # minimum D (found by search); the first one must win.
        ((12, 6, 2, 1), (15, 18)),
        ((16, 15, 4), (3, 27)),
        ((14, 15, 4), (1, 25)),
    ],
)
def test_first_of_tied_minima(counts: tuple[int, ...], tied: tuple[int, int]) -> None:
    x = np.repeat(np.arange(1.0, len(counts) + 1.0), counts)
    log_x, candidates, alphas = reference_inputs(x)
    exhaustive = _ks_distances(log_x, candidates, alphas, DEFAULT_CHUNK_ELEMENTS)
    minima = candidates[exhaustive == np.nanmin(exhaustive)]
    assert tuple(minima) == tied  # the data really have a tie
    for constants in (contextlib.nullcontext, stress_constants):
        with constants():
            check((log_x, candidates, alphas), loop=True)
            # The later of the two tied candidates alone, and both: the first still wins.
            pair = np.isin(candidates, minima)
            check((log_x, candidates[pair], alphas[pair]), loop=True)


# --------------------------------------------------------------------------------------------
# Edge cases, input checks, and that it prunes
# --------------------------------------------------------------------------------------------


def test_no_candidates_and_nan_exponents() -> None:
    log_x = np.log(np.arange(1.0, 30.0))
    empty = ks_search(log_x, np.array([], dtype=np.intp), np.array([]))
    assert empty.index == -1 and np.isnan(empty.D) and empty.Ds.size == 0
    candidates = np.arange(5)
    nan = ks_search(log_x, candidates, np.full(5, np.nan))
    assert nan.index == -1 and np.isnan(nan.D)
    alphas = np.array([np.nan, 2.0, np.nan, 3.0, 1.5])
    check((log_x, candidates, alphas), loop=True)
    # Outside the fitter's range (α = ∞ gives a NaN term at k = 0; α < 1 overflows): still
    # the exhaustive answer, quietly.
    many = np.arange(20)
    odd = np.where(many % 3 == 0, np.inf, np.where(many % 3 == 1, 0.5, 2.5))
    with np.errstate(all="raise"):
        check((log_x, many, odd))


def test_rejects_bad_input() -> None:
    log_x = np.log(np.arange(1.0, 30.0))
    with pytest.raises(ValueError, match="chunk_elements"):
        ks_search(log_x, np.arange(3), np.full(3, 2.0), chunk_elements=0)
    with pytest.raises(ValueError, match="increasing"):
        ks_search(log_x, np.array([2, 1, 3]), np.full(3, 2.0))
    with pytest.raises(ValueError, match="increasing"):
        ks_search(log_x, np.array([1, 29]), np.full(2, 2.0))
    with pytest.raises(ValueError, match="shape"):
        ks_search(log_x, np.arange(3), np.full(4, 2.0))


def test_prunes_most_of_the_work() -> None:
    log_x, candidates, alphas = reference_inputs(sample("pareto_bulk", 3000, 11))
    result = ks_search(log_x, candidates, alphas)
    full = int((log_x.size - candidates).sum())
    assert result.evaluated < full // 10
    assert result.exact.sum() < candidates.size // 10


def test_exhaustive_flag_computes_every_distance() -> None:
    inputs = reference_inputs(sample("student_eigs", 500, 5))
    result = ks_search(*inputs, exhaustive=True)
    assert result.exact.all()
    assert same_bits(result.Ds, _ks_distances(*inputs, DEFAULT_CHUNK_ELEMENTS))
    assert result.index == int(np.nanargmin(result.Ds))
