"""Bootstrap goodness of fit and standard errors: calibration, determinism, parallel = serial."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alphahat.fit import fit_power_law
from alphahat.fit.bootstrap import power_law_goodness_of_fit, power_law_standard_errors


def pareto(seed: int, n: int, alpha: float, xmin: float = 1.0) -> np.ndarray:
    return xmin * (1.0 - np.random.default_rng(seed).random(n)) ** (-1.0 / (alpha - 1.0))


def test_power_law_data_is_plausible_and_exponential_data_is_not() -> None:
    good = power_law_goodness_of_fit(pareto(1, 800, 2.5), n_boot=60, seed=1)
    assert good.n_fitted == 60 and good.plausible
    # uniform data have a bounded support: no power-law tail fits them at any x_min
    bad = power_law_goodness_of_fit(
        np.random.default_rng(2).uniform(1, 10, 3000), n_boot=60, seed=1
    )
    assert bad.p_value < 0.05 and not bad.plausible


def test_p_value_is_the_fraction_of_replicates_at_least_as_far() -> None:
    x = pareto(3, 500, 3.0)
    result = power_law_goodness_of_fit(x, n_boot=40, seed=7)
    assert result.D == fit_power_law(x).D
    assert result.p_value == np.mean(result.Ds >= result.D)
    assert result.Ds.shape == (40,) and not result.Ds.flags.writeable


def test_seeded_results_are_reproducible_and_parallel_equals_serial() -> None:
    x = pareto(4, 400, 2.2)
    serial = power_law_goodness_of_fit(x, n_boot=24, seed=11)
    again = power_law_goodness_of_fit(x, n_boot=24, seed=11)
    parallel = power_law_goodness_of_fit(x, n_boot=24, seed=11, workers=2)
    np.testing.assert_array_equal(serial.Ds, again.Ds)
    np.testing.assert_array_equal(serial.Ds, parallel.Ds)
    other = power_law_goodness_of_fit(x, n_boot=24, seed=12)
    assert not np.array_equal(serial.Ds, other.Ds)
    errors = power_law_standard_errors(x, n_boot=16, seed=3)
    errors_parallel = power_law_standard_errors(x, n_boot=16, seed=3, workers=2)
    np.testing.assert_array_equal(errors.alphas, errors_parallel.alphas)


def test_standard_error_of_alpha_matches_its_asymptotic_value() -> None:
    # σ = (α − 1)/√n_tail is the error for a known x_min (Clauset eq. 3.2); the bootstrap also
    # re-estimates x_min, so its error is at least that and of the same order.
    x = pareto(5, 3000, 2.5)
    errors = power_law_standard_errors(x, n_boot=80, seed=5)
    fit = fit_power_law(x)
    assert errors.n_fitted == 80
    assert 0.8 * fit.sigma <= errors.alpha <= 3.0 * fit.sigma
    assert errors.xmin >= 0 and errors.n_tail >= 0
    assert np.nanstd(errors.alphas, ddof=1) == errors.alpha


def test_bad_arguments_and_unfittable_samples() -> None:
    with pytest.raises(ValueError, match="n_boot"):
        power_law_goodness_of_fit(pareto(6, 100, 2.5), n_boot=0)
    with pytest.raises(ValueError, match="workers"):
        power_law_standard_errors(pareto(6, 100, 2.5), workers=0)
    with pytest.raises(ValueError, match="cannot bootstrap"):
        power_law_goodness_of_fit([1.0, 1.0, 1.0, 1.0])
    assert math.isnan(power_law_standard_errors([2.0, 2.0, 2.0], n_boot=5).alpha)


def test_discrete_sampler_draws_the_zeta_law_exactly() -> None:
    # p(x) = x^(−α)/ζ(α, x_min) for x ≥ x_min: frequencies within 5 binomial standard errors
    # at the first values and in the far tail, for several x_min (the D.6 start is crude at 1).
    from scipy import special

    from alphahat.fit._discrete import discrete_power_law_quantile

    rng = np.random.default_rng(8)
    for alpha, xmin in [(2.5, 1.0), (1.7, 3.0), (3.5, 20.0)]:
        x = discrete_power_law_quantile(rng.random(200_000), alpha, xmin)
        assert np.all(x == np.round(x)) and x.min() >= xmin
        values = np.arange(xmin, xmin + 6)
        expected = values**-alpha / special.zeta(alpha, xmin)
        far = 10 * xmin
        expected_far = special.zeta(alpha, far) / special.zeta(alpha, xmin)  # P(X ≥ 10 x_min)
        observed = np.array([np.mean(x == v) for v in values] + [np.mean(x >= far)])
        p = np.append(expected, expected_far)
        assert np.all(np.abs(observed - p) <= 5 * np.sqrt(p * (1 - p) / x.size))
    # r → 1 draws the cap, never inf or NaN
    top = discrete_power_law_quantile(np.array([0.0, 1 - 1e-16]), 1.2, 1.0)
    assert top[0] == 1.0 and top[1] == 2.0**53


@pytest.mark.parametrize("convention", ["clauset", "powerlaw"])
def test_discrete_goodness_of_fit_draws_integers_and_calibrates(convention: str) -> None:
    from alphahat.fit._discrete import discrete_power_law_quantile

    rng = np.random.default_rng(9)
    zeta = discrete_power_law_quantile(rng.random(1500), 2.5, 2.0)
    good = power_law_goodness_of_fit(zeta, n_boot=40, seed=2, discrete=True, convention=convention)
    assert good.n_fitted == 40 and good.plausible  # integer replicates: every one is fitted
    serial = power_law_goodness_of_fit(
        zeta, n_boot=12, seed=4, discrete=True, convention=convention
    )
    parallel = power_law_goodness_of_fit(
        zeta, n_boot=12, seed=4, discrete=True, convention=convention, workers=2
    )
    np.testing.assert_array_equal(serial.Ds, parallel.Ds)
    # a Poisson sample has no power-law tail
    bad = power_law_goodness_of_fit(
        rng.poisson(30, 3000) + 1, n_boot=40, seed=2, discrete=True, convention=convention
    )
    assert bad.p_value < 0.1


@pytest.mark.parametrize("convention", ["clauset", "powerlaw"])
def test_goodness_of_fit_under_the_other_conventions(convention: str) -> None:
    good = power_law_goodness_of_fit(pareto(10, 800, 2.5), n_boot=40, seed=1, convention=convention)
    assert good.n_fitted == 40 and good.plausible
    assert good.D == fit_power_law(pareto(10, 800, 2.5), convention=convention).D  # type: ignore[arg-type]
