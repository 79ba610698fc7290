"""Tests of the pruned exact x_min search, :mod:`alphahat.fit._ks_search`.

The pruned search must pick exactly what the exhaustive computation picks: the same candidate
(the first on ties) and the same D, bit for bit. The exhaustive D vector comes from the
fitter's own ``power_law._ks_distances`` and, for small samples, from a plain per-candidate
numpy loop written here. Samples: Pareto tails above a lognormal bulk, pure Pareto samples,
squared singular values of Gaussian and Student-t matrices, data with many ties, near-constant
data, scaled by 1e-6 … 1e6, of 20 … 3000 points; both fitter conventions; block sizes down to
one element; and a "stress" setting of the search's tuning constants that drives every code
path (long rows, piece order, abandoning, wide tiles, the exact stage) on small samples.

The search itself is also run on tables of arbitrary terms (no structure to exploit), and,
through ``fit_power_law``, under every convention — ``"reference"``, ``"clauset"`` and
``"powerlaw"``, continuous and discrete, with ties, x_min limits and ``min_tail`` — where the
pruned fit must be the exhaustive one (``all_distances=True``) bit for bit, including the
on-demand completion of ``Ds``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alphahat.fit import PowerLawFit, _ks_search, fit_power_law
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


# --------------------------------------------------------------------------------------------
# Any terms: the search on arbitrary tables of terms
# --------------------------------------------------------------------------------------------


class TableTerms(_ks_search.GapTerms):
    """Terms read from a ragged table: row r holds ``values[offsets[r] : offsets[r + 1]]``."""

    def __init__(self, widths: IntArray, values: FloatArray, probe_first: bool) -> None:
        self.widths = widths
        self.offsets = np.concatenate([[0], np.cumsum(widths)]).astype(np.intp)
        self.values = values
        self.probe_first = probe_first

    def params(self, rows: IntArray) -> tuple[IntArray]:
        return (self.offsets[rows],)

    def at(self, params: tuple[IntArray], k: FloatArray) -> FloatArray:
        return np.asarray(self.values[params[0] + k.astype(np.intp)], dtype=np.float64)


@settings(deadline=None, max_examples=60)
@given(
    rows=st.integers(1, 120),
    seed=st.integers(0, 2**32 - 1),
    levels=st.sampled_from([0, 3, 50]),  # 0: continuous values; else few levels (exact ties)
    nan_share=st.sampled_from([0.0, 0.002]),
    stress=st.booleans(),
    subset=st.booleans(),
)
def test_search_terms_finds_the_minimum_row_maximum_of_any_table(
    rows: int, seed: int, levels: int, nan_share: float, stress: bool, subset: bool
) -> None:
    # No structure at all: the branch and bound may only rule a row out by one of its terms.
    rng = np.random.default_rng(seed)
    widths = (rows - np.arange(rows) + rng.integers(0, 40, rows)).astype(np.intp)
    values = rng.random(int(widths.sum()))
    if levels:
        values = np.floor(values * levels) / levels
    values[rng.random(values.size) < nan_share] = np.nan
    terms = TableTerms(widths, values, probe_first=bool(rng.integers(2)))
    chosen = np.arange(rows, dtype=np.intp)
    if subset:
        chosen = chosen[rng.random(rows) < 0.6]
    offsets = terms.offsets
    maxima = np.array([values[offsets[r] : offsets[r + 1]].max() for r in chosen])
    with stress_constants() if stress else contextlib.nullcontext():
        result = _ks_search.search_terms(terms, chosen, chunk_elements=int(rng.integers(1, 500)))
        exhaustive = _ks_search.search_terms(terms, chosen, exhaustive=True)
    assert same_bits(exhaustive.Ds, maxima)
    if np.isnan(maxima).all():
        assert result.index == -1
        return
    assert result.index == int(np.nanargmin(maxima))
    assert same_bits(result.D, np.nanmin(maxima))
    assert same_bits(result.Ds[result.exact], maxima[result.exact])


def test_search_terms_rejects_bad_rows() -> None:
    terms = TableTerms(np.array([3, 2, 1], dtype=np.intp), np.arange(6.0), False)
    with pytest.raises(ValueError, match="increasing row"):
        _ks_search.search_terms(terms, [2, 1])
    with pytest.raises(ValueError, match="increasing row"):
        _ks_search.search_terms(terms, [0, 3])
    with pytest.raises(ValueError, match="chunk_elements"):
        _ks_search.search_terms(terms, chunk_elements=0)


# --------------------------------------------------------------------------------------------
# Every convention: the pruned fit is the exhaustive fit
# --------------------------------------------------------------------------------------------

CASES = [
    ("reference", False),
    ("clauset", False),
    ("clauset", True),
    ("powerlaw", False),
    ("powerlaw", True),
]
DISCRETE_KINDS = ("zipf", "zipf_bulk", "scaled", "geometric", "levels")


def discrete_sample(kind: str, n: int, seed: int) -> FloatArray:
    """Integer samples: heavy tails, bulks, ties; values below and above 128 (both ζ paths)."""
    rng = np.random.default_rng(seed)
    if kind == "zipf":
        x = rng.zipf(rng.uniform(1.6, 3.5), n)
    elif kind == "zipf_bulk":
        x = rng.zipf(rng.uniform(1.6, 3.0), n) + rng.integers(0, 30, n)
    elif kind == "scaled":  # many distinct values: a Pareto tail above a bulk, discretised
        x = np.ceil(sample("pareto_bulk", n, seed) * rng.choice([3.0, 30.0, 300.0]))
    elif kind == "geometric":
        x = rng.geometric(rng.uniform(0.02, 0.5), n)
    else:
        x = rng.choice(rng.integers(1, 400, int(rng.integers(4, 12))), n)
    return np.asarray(x, dtype=np.float64)


def assert_pruned_is_exhaustive(
    x: FloatArray, convention: str, discrete: bool, **options: object
) -> PowerLawFit:
    """Bitwise: the selected candidate and its numbers; every D the search computed; and
    the on-demand completion of ``Ds``."""
    pruned: PowerLawFit = fit_power_law(x, convention=convention, discrete=discrete, **options)  # type: ignore[arg-type]
    exhaustive = fit_power_law(
        x,
        convention=convention,
        discrete=discrete,
        all_distances=True,
        **options,  # type: ignore[arg-type]
    )
    assert pruned.status is exhaustive.status
    assert exhaustive.pending_Ds is None
    if not pruned.fitted:
        return pruned
    for name in ("alpha", "xmin", "D", "sigma", "n_tail", "n", "xmax"):
        assert same_bits(getattr(pruned, name), getattr(exhaustive, name)), name
    assert same_bits(pruned.alphas, exhaustive.alphas)
    searched = np.isfinite(pruned.searched_Ds)
    assert same_bits(pruned.searched_Ds[searched], exhaustive.Ds[searched])
    assert np.isnan(pruned.searched_Ds[np.isnan(exhaustive.Ds)]).all()
    assert same_bits(pruned.Ds, exhaustive.Ds)  # the completion computes the rest exactly
    return pruned


@st.composite
def convention_samples(draw: st.DrawFn) -> tuple[FloatArray, str, bool]:
    convention, discrete = draw(st.sampled_from(CASES))
    n = draw(st.integers(20, 500))
    seed = draw(st.integers(0, 2**32 - 1))
    if discrete:
        x = discrete_sample(draw(st.sampled_from(DISCRETE_KINDS)), n, seed)
    else:
        x = sample(draw(st.sampled_from(KINDS)), n, seed, draw(st.sampled_from([1e-3, 1.0, 1e3])))
    return x, convention, discrete


@settings(deadline=None, max_examples=120)
@given(case=convention_samples(), chunk=st.sampled_from([5, 1000, DEFAULT_CHUNK_ELEMENTS]))
def test_pruned_fit_is_the_exhaustive_fit_under_every_convention(
    case: tuple[FloatArray, str, bool], chunk: int
) -> None:
    x, convention, discrete = case
    assert_pruned_is_exhaustive(x, convention, discrete, chunk_elements=chunk)


@settings(deadline=None, max_examples=60)
@given(
    case=convention_samples(), stress=st.booleans(), limit=st.sampled_from(["xmin_max", "min_tail"])
)
def test_pruned_fit_is_the_exhaustive_fit_with_limits_and_stress_constants(
    case: tuple[FloatArray, str, bool], stress: bool, limit: str
) -> None:
    x, convention, discrete = case
    option = {"xmin_max": float(np.quantile(x, 0.7))} if limit == "xmin_max" else {"min_tail": 15}
    with stress_constants() if stress else contextlib.nullcontext():
        assert_pruned_is_exhaustive(x, convention, discrete, **option)


@pytest.mark.parametrize(("convention", "discrete"), CASES)
def test_pruned_fit_is_the_exhaustive_fit_on_larger_samples(
    convention: str, discrete: bool
) -> None:
    kinds = DISCRETE_KINDS if discrete else ("pareto_bulk", "ties", "student_eigs")
    pruned_some = False
    for i, kind in enumerate(kinds):
        x = discrete_sample(kind, 2500, i) if discrete else sample(kind, 2500, i)
        pruned_some |= assert_pruned_is_exhaustive(x, convention, discrete).pending_Ds is not None
    assert pruned_some  # the search did leave candidates out
    with stress_constants():  # long rows, pieces, abandoning, wide tiles on a mid-size sample
        x = discrete_sample("scaled", 900, 9) if discrete else sample("ties", 900, 9)
        assert_pruned_is_exhaustive(x, convention, discrete)


@pytest.mark.parametrize(("convention", "discrete"), CASES[1:])
def test_conventions_prune_most_of_the_work(convention: str, discrete: bool) -> None:
    from alphahat.fit._conventions import clauset_fits, powerlaw_fits

    x = np.sort(discrete_sample("scaled", 4000, 3) if discrete else sample("pareto_bulk", 4000, 3))
    fits = (clauset_fits if convention == "clauset" else powerlaw_fits)(x, discrete)
    assert fits.terms is not None
    rows = np.flatnonzero(np.isfinite(fits.alphas))
    pruned = _ks_search.search_terms(fits.terms, rows)
    full = int(fits.terms.widths[rows].sum())
    assert pruned.evaluated < full // 10
    assert pruned.index == int(
        np.nanargmin(_ks_search.search_terms(fits.terms, rows, exhaustive=True).Ds)
    )
