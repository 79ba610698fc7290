"""Marchenko–Pastur fit: the closed-form MP law, random matrices, weightwatcher 0.7.7 live."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from scipy import integrate

from alphahat.fit import (
    MarchenkoPasturFit,
    MPFitStatus,
    fit_marchenko_pastur,
    marchenko_pastur_density,
    quarter_circle_density,
)
from alphahat.fit import marchenko_pastur as mp_module


def esd(W: np.ndarray) -> np.ndarray:
    return np.sort(np.linalg.svd(W, compute_uv=False) ** 2)


@pytest.mark.parametrize(("Q", "sigma"), [(1.0, 1.0), (2.0, 1.0), (4.0, 0.7), (10.0, 1.3)])
def test_mp_density_is_a_density_with_the_closed_form_moments(Q: float, sigma: float) -> None:
    lower, upper = (sigma * (1 - Q**-0.5)) ** 2, (sigma * (1 + Q**-0.5)) ** 2
    pts = [lower, upper]
    mass = integrate.quad(lambda x: marchenko_pastur_density(x, Q, sigma), *pts, limit=200)[0]
    mean = integrate.quad(lambda x: x * marchenko_pastur_density(x, Q, sigma), *pts, limit=200)[0]
    second = integrate.quad(lambda x: x * x * marchenko_pastur_density(x, Q, sigma), *pts)[0]
    assert mass == pytest.approx(1.0, abs=1e-6)
    assert mean == pytest.approx(sigma**2, rel=1e-6)  # E x = σ²
    assert second == pytest.approx(sigma**4 * (1 + 1 / Q), rel=1e-6)  # E x² = σ⁴(1 + y)
    assert marchenko_pastur_density(np.array([lower * 0.99, upper * 1.01]), Q, sigma).sum() == 0


@pytest.mark.parametrize("sigma", [0.5, 1.0, 1.7])
def test_quarter_circle_is_a_density_and_the_law_of_sqrt_mp_at_q1(sigma: float) -> None:
    mass = integrate.quad(lambda v: quarter_circle_density(v, sigma), 0, 2 * sigma)[0]
    assert mass == pytest.approx(1.0, abs=1e-9)
    # ν = √x with x ~ MP(Q=1, σ): ρ_ν(ν) = 2ν ρ_MP(ν²)
    nu = np.linspace(0.05, 1.95, 7) * sigma
    np.testing.assert_allclose(
        quarter_circle_density(nu, sigma), 2 * nu * marchenko_pastur_density(nu**2, 1.0, sigma)
    )


@pytest.mark.parametrize(("N", "M"), [(1200, 300), (500, 500)])
def test_pure_noise_fits_sigma_one_no_spikes_and_the_closed_form_edges(N: int, M: int) -> None:
    rng = np.random.default_rng(7)
    evals = esd(rng.normal(scale=0.05, size=(N, M)))
    fit = fit_marchenko_pastur(evals, N=N, M=M)
    assert fit.fitted and fit.law == ("QC" if N == M else "MP")
    assert fit.sigma == pytest.approx(1.0, abs=0.04)
    assert fit.num_spikes == 0
    # in the units of λ: entries of variance s² give λ± ≈ N s² (1 ± 1/√Q)²
    s2, q = 0.05**2, N / M
    assert fit.bulk_max == pytest.approx(N * s2 * (1 + q**-0.5) ** 2, rel=0.08)
    assert fit.bulk_min == pytest.approx(N * s2 * (1 - q**-0.5) ** 2, rel=0.08, abs=1e-12)
    assert fit.softrank == pytest.approx(fit.bulk_max / evals.max(), rel=1e-12)
    assert fit.W_scale == pytest.approx(math.sqrt(evals.size / evals.sum()), rel=1e-12)


def test_planted_spikes_are_counted() -> None:
    """A rank-3 signal well above the BBP threshold gives exactly 3 eigenvalues past the edge."""
    rng = np.random.default_rng(3)
    N, M = 1000, 250
    noise = rng.normal(size=(N, M))
    u = np.linalg.qr(rng.normal(size=(N, 3)))[0]
    v = np.linalg.qr(rng.normal(size=(M, 3)))[0]
    signal = u @ np.diag([4.0, 5.0, 6.0]) @ v.T * math.sqrt(N)
    fit = fit_marchenko_pastur(esd(noise + signal), N=N, M=M)
    assert fit.fitted and fit.num_spikes == 3
    assert fit.spike_edge > fit.bulk_max


def test_density_is_in_the_units_of_the_eigenvalues() -> None:
    rng = np.random.default_rng(11)
    evals = esd(rng.normal(scale=3.0, size=(800, 200)))
    fit = fit_marchenko_pastur(evals, N=800, M=200)
    mass = integrate.quad(fit.density, fit.bulk_min, fit.bulk_max, limit=200)[0]
    assert mass == pytest.approx(1.0, abs=1e-6)
    assert fit.density(np.array([fit.bulk_min * 0.5, fit.bulk_max * 1.5])).tolist() == [0, 0]
    # the same ESD in other units: σ, spikes, soft rank unchanged, edges and density rescaled
    scaled = fit_marchenko_pastur(evals * 1e-4, N=800, M=200)
    assert scaled.sigma == pytest.approx(fit.sigma, rel=1e-9)
    assert scaled.bulk_max == pytest.approx(fit.bulk_max * 1e-4, rel=1e-9)
    mid = 0.5 * (fit.bulk_min + fit.bulk_max)
    assert scaled.density(mid * 1e-4) == pytest.approx(fit.density(mid) * 1e4, rel=1e-9)


def test_one_density_estimate_per_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = mp_module.linear_kernel_density

    def counting(*args: object, **kwargs: object) -> np.ndarray:
        calls.append(1)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(mp_module, "linear_kernel_density", counting)
    fit_marchenko_pastur(esd(np.random.default_rng(0).normal(size=(300, 100))), N=300, M=100)
    assert len(calls) == 1


def test_linear_kernel_density_matches_scikit_learn() -> None:
    neighbors = pytest.importorskip("sklearn.neighbors")
    rng = np.random.default_rng(5)
    x = rng.gamma(2.0, size=700)
    grid = np.linspace(0, x.max() + 0.5, 1000)
    kde = neighbors.KernelDensity(kernel="linear", bandwidth=0.1).fit(x[:, None])
    expected = np.exp(kde.score_samples(grid[:, None]))
    np.testing.assert_allclose(
        mp_module.linear_kernel_density(x, grid, 0.1), expected, rtol=1e-9, atol=1e-12
    )


@pytest.mark.parametrize(
    ("values", "status"),
    [
        ([1.0], MPFitStatus.TOO_FEW_POINTS),
        ([1.0, np.nan, 2.0], MPFitStatus.INVALID_VALUES),
        ([1.0, -2.0, 3.0], MPFitStatus.INVALID_VALUES),
        ([2.0, 2.0, 2.0], MPFitStatus.CONSTANT),
    ],
)
def test_degenerate_input_gets_a_status_and_nan(values: list[float], status: MPFitStatus) -> None:
    fit = fit_marchenko_pastur(values, N=10, M=5)
    assert fit.status is status and not fit.fitted and fit.reason
    assert math.isnan(fit.sigma) and math.isnan(fit.bulk_max) and fit.num_spikes == 0
    assert math.isnan(fit.W_scale)
    assert np.isnan(fit.density([1.0, 2.0])).all()


@pytest.mark.parametrize(
    "kwargs",
    [{"N": 3, "M": 5}, {"N": 0, "M": 0}, {"N": 5, "M": 2, "bandwidth": 0}, {"N": 5, "M": 2.5}],
)
def test_bad_arguments_raise_naming_the_parameter(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"N|M|bandwidth"):
        fit_marchenko_pastur([1.0, 2.0, 3.0], **kwargs)  # type: ignore[arg-type]


def test_fit_is_frozen() -> None:
    fit = fit_marchenko_pastur([1.0, 2.0, 3.0, 5.0], N=8, M=4)
    assert isinstance(fit, MarchenkoPasturFit)
    with pytest.raises(AttributeError):
        fit.sigma = 2.0  # type: ignore[misc]


# --- the reference tool's mp_fit, run live on the same eigenvalues -----------------------------


@pytest.fixture(scope="module")
def reference_watcher():  # type: ignore[no-untyped-def]
    ww = pytest.importorskip("weightwatcher")
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    return ww.WeightWatcher()


def reference_mp_fit(watcher, evals: np.ndarray, N: int, M: int) -> tuple[float, ...]:  # type: ignore[no-untyped-def]
    return watcher.mp_fit(
        evals, N, M, 1, "layer", 0, 0, False, False, "", "b", 0.5, True, evals, randomize=False
    )


@pytest.mark.parametrize(("N", "M", "spikes"), [(400, 100, 0), (600, 200, 3)])
def test_matches_weightwatcher_mp_fit_for_rectangular_matrices(
    reference_watcher, N: int, M: int, spikes: int
) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(N + M)
    W = rng.normal(size=(N, M))
    if spikes:
        u, v = rng.normal(size=(N, spikes)), rng.normal(size=(M, spikes))
        W += u @ v.T * 0.3
    evals = esd(W)
    num_spikes, sigma_mp, softrank, bulk_min, bulk_max, w_scale = reference_mp_fit(
        reference_watcher, evals, N, M
    )
    fit = fit_marchenko_pastur(evals, N=N, M=M)
    assert fit.num_spikes == num_spikes
    for ours, ref in [
        (fit.sigma, sigma_mp),
        (fit.softrank, softrank),
        (fit.bulk_min, bulk_min),
        (fit.bulk_max, bulk_max),
        (fit.W_scale, w_scale),
    ]:
        assert ours == pytest.approx(float(ref), rel=1e-9)


def test_square_matrices_use_the_normalised_quarter_circle(reference_watcher) -> None:  # type: ignore[no-untyped-def]
    """Deliberate: for Q = 1 the reference fits √(4 − ν²)/(πσ²), a density only at σ = 1.

    Ours fits the normalised quarter circle √(4σ² − ν²)/(πσ²). With 4 strong columns the bulk,
    normalised to mean 1 overall, has σ = √N·W_scale (entries of variance 1): ours finds it,
    the reference's σ stays near 1 because its curve's shape cannot change with σ.
    """
    rng = np.random.default_rng(2)
    W = rng.normal(size=(384, 384))
    W[:, :4] *= 6.0  # a few strong columns: σ of the bulk ≠ 1 after normalisation
    evals = esd(W)
    _, sigma_mp, _, _, _, w_scale = reference_mp_fit(reference_watcher, evals, 384, 384)
    fit = fit_marchenko_pastur(evals, N=384, M=384)
    assert fit.law == "QC" and fit.W_scale == pytest.approx(float(w_scale), rel=1e-12)
    true_sigma = math.sqrt(384) * fit.W_scale
    assert fit.sigma == pytest.approx(true_sigma, rel=0.03)
    assert abs(sigma_mp - true_sigma) > 3 * abs(fit.sigma - true_sigma)
    ref_mass = integrate.quad(lambda v: math.sqrt(4 - v * v) / (math.pi * sigma_mp**2), 0, 2)[0]
    assert abs(ref_mass - 1.0) > 1e-3  # theirs is not a density at their σ
    ours_mass = integrate.quad(lambda v: quarter_circle_density(v, fit.sigma), 0, 2 * fit.sigma)
    assert ours_mass[0] == pytest.approx(1.0, abs=1e-9)


# --- spikes that carry most of Σλ: the bulk is fitted alone ---------------------------------


def planted_entries(std: float, seed: int = 0) -> np.ndarray:
    W = np.random.default_rng(seed).normal(scale=std, size=(600, 300))
    W[0, 0] = W[5, 7] = 40.0
    return W


@pytest.mark.parametrize("std", [0.02, 0.01])
def test_huge_planted_entries_fit_the_bulk_alone(std: float) -> None:
    """Two entries of 40 carry most of ‖W‖²: the whole ESD admits no σ, its bulk is still MP."""
    evals = esd(planted_entries(std))
    fit = fit_marchenko_pastur(evals, N=600, M=300)
    assert fit.fitted and fit.trimmed == 2 and fit.num_spikes == 2
    # closed form for entries of variance s²: λ± = N s² (1 ± 1/√Q)²
    q = 2.0
    assert fit.bulk_max == pytest.approx(600 * std**2 * (1 + q**-0.5) ** 2, rel=0.05)
    assert fit.bulk_min == pytest.approx(600 * std**2 * (1 - q**-0.5) ** 2, rel=0.15)
    # reported in the whole ESD's normalisation, like the reference's columns
    assert fit.W_scale == pytest.approx(math.sqrt(evals.size / evals.sum()), rel=1e-12)
    assert fit.variance == pytest.approx(std**2 * 600, rel=0.05)
    assert fit.softrank == pytest.approx(fit.bulk_max / evals.max(), rel=1e-12)


def test_moderate_planted_entries_keep_the_reference_fit() -> None:
    fit = fit_marchenko_pastur(esd(planted_entries(0.1)), N=600, M=300)
    assert fit.fitted and fit.trimmed == 0 and fit.num_spikes == 2


@pytest.mark.parametrize("Q", [1.0, 2.0, 4.0, 10.0])
def test_mp_median_is_the_median_of_the_closed_form_density(Q: float) -> None:
    lower, upper = (1 - Q**-0.5) ** 2, (1 + Q**-0.5) ** 2
    median = mp_module.marchenko_pastur_median(Q)
    below = integrate.quad(lambda x: marchenko_pastur_density(x, Q), lower, median, limit=400)[0]
    assert below == pytest.approx(0.5, abs=1e-6)
    assert lower < median < upper


def test_reference_gives_up_on_the_planted_entries(reference_watcher) -> None:  # type: ignore[no-untyped-def]
    """Deliberate: the reference reports the first σ of its grid there (every σ penalised)."""
    evals = esd(planted_entries(0.02))
    _, sigma_mp, *_ = reference_mp_fit(reference_watcher, evals, 600, 300)
    x_max = evals.max() * evals.size / evals.sum()
    assert sigma_mp == pytest.approx(0.05 * math.sqrt(x_max) / (1 + 2**-0.5), rel=1e-9)


def test_analyze_counts_the_traps_and_a_failed_mp_fit_says_why() -> None:
    import alphahat

    report = alphahat.analyze({"w": planted_entries(0.02)}, randomize=True, mp_fit=True, seed=0)
    row = report.details.iloc[0]
    assert row["num_traps"] == 2 and row["num_spikes"] == 2 and row["reason"] == ""
    assert row["rand_bulk_max"] == pytest.approx(600 * 0.02**2 * (1 + 2**-0.5) ** 2, rel=0.05)
    W = np.random.default_rng(0).normal(size=(200, 100))
    W[:, :60] = 0.0  # most eigenvalues 0: no bulk to fit
    row = alphahat.analyze({"w": W}, mp_fit=True, min_evals=0).details.iloc[0]
    assert math.isnan(row["sigma_mp"])
    assert row["reason"].startswith("MP fit: no_admissible_sigma: ")
