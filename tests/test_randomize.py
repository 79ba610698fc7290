"""Randomized spectra, correlation traps, rand_distance and detX: closed forms and the reference."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from alphahat.fit import fit_marchenko_pastur
from alphahat.metrics.detx import detx_condition
from alphahat.metrics.randomization import randomization_columns, spectral_distance
from alphahat.spectrum.randomize import (
    default_replicas,
    layer_seed,
    randomized_spectrum,
    shuffle_entries,
)


def test_shuffle_permutes_entries_and_keeps_the_original() -> None:
    w = np.arange(24, dtype=np.float32).reshape(4, 6)
    before = w.copy()
    shuffled = shuffle_entries(w, np.random.RandomState(1))
    assert shuffled.shape == w.shape and shuffled.dtype == w.dtype
    assert sorted(shuffled.ravel()) == sorted(w.ravel())
    assert not np.array_equal(shuffled, w)
    np.testing.assert_array_equal(w, before)


def test_same_seed_same_spectrum_and_seeds_differ_by_layer() -> None:
    w = np.random.default_rng(0).normal(size=(60, 20))
    a = randomized_spectrum([w], seed=5, replicas=2)
    b = randomized_spectrum([w], seed=5, replicas=2)
    np.testing.assert_array_equal(a.eigenvalues, b.eigenvalues)
    assert len(a.replicas) == 2 and a.eigenvalues.size == 40
    assert layer_seed(0, "a.weight") == layer_seed(0, "a.weight") != layer_seed(0, "b.weight")
    assert layer_seed(1, "a.weight") != layer_seed(0, "a.weight")
    # ‖W‖_F is invariant under shuffling: Σλ equal
    assert a.replicas[0].sum() == pytest.approx(float((w**2).sum()), rel=1e-12)
    assert default_replicas(99) == 5 and default_replicas(100) == 1


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="replicas"):
        randomized_spectrum([np.ones((3, 2))], seed=0, replicas=0)
    with pytest.raises(ValueError, match="seed"):
        randomized_spectrum([np.ones((3, 2))], seed=-1)


def test_matches_weightwatcher_random_eigenvalues_with_the_same_seed() -> None:
    """The reference shuffles with the global NumPy state in the same order: equal draws."""
    ww = pytest.importorskip("weightwatcher")
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    rng = np.random.default_rng(4)
    mats = [rng.normal(size=(40, 16)).astype(np.float32) for _ in range(3)]
    params = {**ww.weightwatcher.DEFAULT_PARAMS, "svd_method": "accurate"}
    np.random.seed(1234)
    reference = ww.WeightWatcher().random_eigenvalues(mats, 48, 5, params)
    ours = randomized_spectrum(mats, seed=1234, replicas=5)
    np.testing.assert_allclose(ours.eigenvalues, reference, rtol=1e-12)


def test_correlation_trap_is_found_and_pure_noise_has_none() -> None:
    rng = np.random.default_rng(9)
    w = rng.normal(size=(400, 200))
    clean = randomized_spectrum([w], seed=1)
    fit = fit_marchenko_pastur(clean.eigenvalues, N=400, M=200)
    cols = randomization_columns(
        np.sort(np.linalg.svd(w, compute_uv=False) ** 2), clean.eigenvalues, fit, 1
    )
    assert cols["num_traps"] == 0 and cols["trap_ratio"] < 1.1
    trapped = w.copy()
    trapped[3, 7] = 80.0  # one huge entry survives any shuffle: a spike of ~6400
    shuffled = randomized_spectrum([trapped], seed=1)
    fit = fit_marchenko_pastur(shuffled.eigenvalues, N=400, M=200)
    evals = np.sort(np.linalg.svd(trapped, compute_uv=False) ** 2)
    cols = randomization_columns(evals, shuffled.eigenvalues, fit, 1)
    assert cols["num_traps"] == 1
    assert cols["trap_ratio"] > 5
    assert cols["max_rand_eval"] == pytest.approx(shuffled.eigenvalues.max())
    assert cols["ww_softrank"] == pytest.approx(shuffled.eigenvalues.max() / evals.max())


def test_spectral_distance_is_the_jensen_shannon_distance_of_log_histograms() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.lognormal(0, 1, 500), rng.lognormal(0.5, 1.2, 800)
    la, lb = np.log10(a), np.log10(b)
    edges = np.linspace(min(la.min(), lb.min()), max(la.max(), lb.max()), 101)
    p, q = np.histogram(la, edges)[0], np.histogram(lb, edges)[0]
    expected = jensenshannon(p / p.sum(), q / q.sum(), base=2)
    assert spectral_distance(a, b) == pytest.approx(expected, rel=1e-12)
    assert spectral_distance(a, a) == 0.0
    assert spectral_distance(a, a * 1e6) == pytest.approx(1.0)  # disjoint supports
    assert spectral_distance(a, b) == pytest.approx(spectral_distance(b, a))
    assert math.isnan(spectral_distance([0.0], a))


def brute_force_detx(evals: np.ndarray) -> tuple[int, float]:
    """The definition with exact rational products (Python fractions), no logs."""
    from fractions import Fraction

    n = evals.size
    total = sum(Fraction(float(v)) for v in evals)
    x = [Fraction(float(v)) * n / total for v in evals]
    for i in range(n - 1, 0, -1):
        product = Fraction(1)
        for v in x[i:]:
            product *= v
        if product < 1:
            return n - i, float(evals[i])
    return n, float(evals[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_detx_matches_the_exact_product_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    evals = np.sort(rng.lognormal(0, 1.5, 60))
    condition = detx_condition(evals)
    assert (condition.num, condition.value) == brute_force_detx(evals)
    assert condition.normalized_value == pytest.approx(
        condition.value * evals.size / evals.sum(), rel=1e-12
    )


def test_detx_does_not_overflow_where_products_do() -> None:
    """1100 eigenvalues 1 and 1900 of 1e-9: the top product is 2.73^1100 ≈ 1e479 (overflows).

    Closed form: x_big = 3000/Σ, x_small = 1e-9·3000/Σ; the crossing is the smallest k with
    1100·log x_big + k·log x_small < 0, so detX_num = 1100 + k.
    """
    evals = np.concatenate([np.full(1900, 1e-9), np.full(1100, 1.0)])
    total = 1100 + 1900e-9
    big, small = 3000 / total, 1e-9 * 3000 / total
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.prod(np.full(1100, big)))
    k = math.floor(-1100 * math.log(big) / math.log(small)) + 1
    condition = detx_condition(evals)
    assert condition.num == 1100 + k
    assert condition.value == pytest.approx(1e-9)


def test_detx_degenerate_input() -> None:
    assert detx_condition([1.0]).num == 0
    assert math.isnan(detx_condition([2.0, 2.0]).value)


def test_eigenvector_metrics_closed_forms() -> None:
    from alphahat.metrics.eigenvectors import eigenvector_columns, vector_metrics

    m = 16
    localized = np.eye(m)[:, :1]
    flat = np.full((m, 1), 1 / math.sqrt(m))
    one = vector_metrics(localized)
    assert (one["loc_ratio"][0], one["part_ratio"][0], one["vec_entropy"][0]) == (1, 1, 0)
    spread = vector_metrics(flat)
    assert spread["loc_ratio"][0] == pytest.approx(m)
    assert spread["part_ratio"][0] == pytest.approx(m)
    assert spread["vec_entropy"][0] == pytest.approx(1.0)
    # a diagonal W: eigenvectors of WᵀW are the basis vectors, all perfectly localized
    w = np.diag(np.arange(1.0, 11.0))
    cols = eigenvector_columns([w], num_tail=3)
    assert cols["tail_mean_part_ratio"] == pytest.approx(1.0)
    assert cols["bulk_mean_loc_ratio"] == pytest.approx(1.0)
    assert cols["tail_var_vec_entropy"] == pytest.approx(0.0, abs=1e-12)
    assert all(math.isnan(v) for v in eigenvector_columns([w], num_tail=None).values())


@pytest.mark.parametrize("shape_kind", ["tall", "wide", "square", "mostly zeros"])
def test_gram_eigenvalues_of_the_shuffles_equal_numpy_svd_of_the_same_draw(shape_kind) -> None:
    """The default (guarded Gram) path and ``exact=True`` (SVD) give the eigenvalues of NumPy's
    SVD of the very matrix RandomState.shuffle draws, in either stored orientation; a matrix
    of mostly equal entries is rank-deficient after any shuffle and takes the SVD fallback."""
    rng = np.random.default_rng(4)
    w = {
        "tall": rng.standard_normal((300, 80)),
        "wide": rng.standard_normal((80, 300)),
        "square": rng.standard_normal((150, 150)),
        "mostly zeros": np.where(rng.random((120, 60)) < 0.02, 1.0, 0.0),
    }[shape_kind]
    flat = w.copy().reshape(-1)
    np.random.RandomState(9).shuffle(flat)
    expected = np.sort(np.linalg.svd(flat.reshape(w.shape), compute_uv=False) ** 2)
    for exact in (False, True):
        got = randomized_spectrum([w], seed=9, exact=exact).eigenvalues
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12 * expected[-1])
