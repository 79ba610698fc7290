"""The comparison statistics against scipy.stats and statsmodels on the same numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from alphahat.compare.stats import bootstrap_samples, linear_fit, trend_statistics

sm = pytest.importorskip("statsmodels.api")


def sample(n: int, seed: int, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(3.0, 1.0, size=n)
    if ties:
        x = np.round(x, 1)
    y = 95.0 - 1.5 * x + rng.normal(0, 1.0, size=n)
    if ties:
        y = np.round(y)
    return x, y


@pytest.mark.parametrize(("n", "seed", "ties"), [(5, 0, False), (12, 1, False), (40, 2, True)])
def test_linear_fit_matches_linregress_and_statsmodels(n: int, seed: int, ties: bool) -> None:
    x, y = sample(n, seed, ties)
    fit = linear_fit(x, y)
    ref = stats.linregress(x, y)
    ols = sm.OLS(y, sm.add_constant(x)).fit()
    assert fit.slope == pytest.approx(ref.slope, rel=1e-12)
    assert fit.intercept == pytest.approx(ref.intercept, rel=1e-12)
    assert fit.r2 == pytest.approx(ref.rvalue**2, rel=1e-12)
    assert fit.r2 == pytest.approx(ols.rsquared, rel=1e-12)
    assert fit.slope_stderr == pytest.approx(ref.stderr, rel=1e-10)
    assert fit.slope_p_value == pytest.approx(ref.pvalue, rel=1e-8)
    assert fit.slope_p_value == pytest.approx(ols.pvalues[1], rel=1e-8)
    # MSE is the mean squared residual SSR/n (statsmodels' mse_resid divides by n − 2)
    assert fit.mse == pytest.approx(ols.ssr / n, rel=1e-12)
    assert fit.mse == pytest.approx(ols.mse_resid * (n - 2) / n, rel=1e-12)
    assert fit.rmse == pytest.approx(math.sqrt(ols.ssr / n), rel=1e-12)


def test_rank_correlations_match_scipy_with_ties() -> None:
    x, y = sample(30, 3, ties=True)
    assert len(set(x)) < 30 and len(set(y)) < 30  # there are ties
    result = trend_statistics(x, y, num_bootstrap=0)
    tau, rho = stats.kendalltau(x, y), stats.spearmanr(x, y)
    assert result.kendall_tau == pytest.approx(tau.statistic, rel=1e-12)
    assert result.kendall_p_value == pytest.approx(tau.pvalue, rel=1e-10)
    assert result.spearman_rho == pytest.approx(rho.statistic, rel=1e-12)
    assert result.spearman_p_value == pytest.approx(rho.pvalue, rel=1e-10)
    assert math.isnan(result.slope_ci[0]) and result.num_bootstrap == 0


def test_bootstrap_replicates_equal_scipy_on_each_resample() -> None:
    x, y = sample(15, 4, ties=True)
    boot = bootstrap_samples(x, y, num_bootstrap=60, seed=11)
    index = np.random.default_rng(11).integers(0, 15, size=(60, 15))
    for i in range(60):
        xb, yb = x[index[i]], y[index[i]]
        if np.ptp(xb) == 0 or np.ptp(yb) == 0:
            assert math.isnan(boot["slope"][i])
            continue
        ref = stats.linregress(xb, yb)
        assert boot["slope"][i] == pytest.approx(ref.slope, rel=1e-10)
        assert boot["r2"][i] == pytest.approx(ref.rvalue**2, rel=1e-10)
        assert boot["kendall_tau"][i] == pytest.approx(
            stats.kendalltau(xb, yb).statistic, abs=1e-12
        )
        assert boot["spearman"][i] == pytest.approx(stats.spearmanr(xb, yb).statistic, abs=1e-12)


def test_bootstrap_intervals_are_percentiles_seeded_and_cover() -> None:
    x, y = sample(40, 5)
    a = trend_statistics(x, y, num_bootstrap=400, seed=7, confidence=0.9)
    b = trend_statistics(x, y, num_bootstrap=400, seed=7, confidence=0.9)
    c = trend_statistics(x, y, num_bootstrap=400, seed=8, confidence=0.9)
    assert a == b and a.slope_ci != c.slope_ci
    boot = bootstrap_samples(x, y, num_bootstrap=400, seed=7)
    assert a.slope_ci == pytest.approx(tuple(np.percentile(boot["slope"], [5, 95])), rel=1e-12)
    # the interval contains the point estimate, and the true slope −1.5 here
    assert a.slope_ci[0] < a.slope < a.slope_ci[1]
    assert a.slope_ci[0] < -1.5 < a.slope_ci[1]
    assert -1 <= a.kendall_tau_ci[0] < a.kendall_tau < a.kendall_tau_ci[1] <= 1
    assert 0 <= a.r2_ci[0] < a.r2_ci[1] <= 1


def test_degenerate_inputs_are_statuses_not_exceptions() -> None:
    two = trend_statistics([1.0, 2.0], [3.0, 4.0])
    assert two.status == "too-few-models" and two.n == 2 and math.isnan(two.slope)
    one = trend_statistics([1.0], [3.0])
    assert one.status == "too-few-models" and "at least 3" in one.reason
    flat_x = trend_statistics([1.0, 1.0, 1.0, 1.0], [3.0, 4.0, 5.0, 6.0])
    assert flat_x.status == "undefined" and "metric" in flat_x.reason
    flat_y = trend_statistics([1.0, 2.0, 3.0], [5.0, 5.0, 5.0])
    assert flat_y.status == "undefined" and "accuracy" in flat_y.reason
    assert flat_y.direction == 0
    with pytest.raises(ValueError, match="same length"):
        trend_statistics([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        trend_statistics([1.0, np.nan, 3.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="confidence"):
        trend_statistics([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], confidence=1.5)
