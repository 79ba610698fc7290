"""Alternative tail distributions and Vuong's test, against closed forms, mpmath and `powerlaw`."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import integrate, special

from alphahat.fit import FitStatus
from alphahat.fit.alternatives import (
    compare_distributions,
    fit_exponential,
    fit_lognormal,
    fit_power_law_tail,
    fit_tail,
    fit_truncated_power_law,
    loglikelihood_ratio,
    truncated_power_law_log_normalizer,
)

mpmath = pytest.importorskip("mpmath")


def truncated_sample(
    rng: np.random.Generator, alpha: float, rate: float, xmin: float, n: int
) -> np.ndarray:
    """x^(−α) e^(−λx) on [xmin, ∞) by rejection from a Pareto(α) proposal."""
    out: list[np.ndarray] = []
    while sum(len(o) for o in out) < n:
        x = xmin * (1.0 - rng.random(4 * n)) ** (-1.0 / (alpha - 1.0))
        out.append(x[rng.random(x.size) < np.exp(-rate * (x - xmin))])
    return np.concatenate(out)[:n]


@pytest.mark.parametrize("alpha", [-0.5, 0.0, 0.7, 1.0, 1.5, 2.0, 3.7, 8.0])
@pytest.mark.parametrize(("rate", "xmin"), [(0.01, 1.0), (0.5, 2.0), (3.0, 0.1), (1e-4, 50.0)])
def test_normalizer_matches_the_incomplete_gamma_function(
    alpha: float, rate: float, xmin: float
) -> None:
    # Z = ∫_{xmin}^∞ t^(−α) e^(−λt) dt = λ^(α−1) Γ(1−α, λ·xmin), evaluated independently by mpmath
    mpmath.mp.dps = 40
    exact = mpmath.log(mpmath.power(rate, alpha - 1) * mpmath.gammainc(1 - alpha, rate * xmin))
    assert truncated_power_law_log_normalizer(alpha, rate, xmin) == pytest.approx(
        float(exact), rel=1e-10, abs=1e-10
    )


@pytest.mark.parametrize(
    "distribution", ["power_law", "truncated_power_law", "exponential", "lognormal"]
)
def test_fitted_densities_integrate_to_one(distribution: str) -> None:
    x = truncated_sample(np.random.default_rng(1), 2.3, 0.02, 1.5, 800)
    fit = fit_tail(x, 1.5, distribution)  # type: ignore[arg-type]
    assert fit.fitted
    p = fit.parameters
    densities = {
        "power_law": lambda t: (p["alpha"] - 1) / 1.5 * (t / 1.5) ** -p["alpha"],
        "exponential": lambda t: p["Lambda"] * math.exp(-p["Lambda"] * (t - 1.5)),
        "lognormal": lambda t: (
            math.exp(-((math.log(t) - p["mu"]) ** 2) / (2 * p["sigma"] ** 2))
            / (t * p["sigma"] * math.sqrt(2 * math.pi))
            / (0.5 * special.erfc((math.log(1.5) - p["mu"]) / (math.sqrt(2) * p["sigma"])))
        ),
        "truncated_power_law": lambda t: (
            t ** -p["alpha"]
            * math.exp(-p["Lambda"] * t)
            / math.exp(truncated_power_law_log_normalizer(p["alpha"], p["Lambda"], 1.5))
        ),
    }
    total, _ = integrate.quad(densities[distribution], 1.5, math.inf, limit=500)
    assert total == pytest.approx(1.0, rel=1e-6)
    # and the pointwise log-likelihoods are the log of that density
    for value, logp in zip(np.sort(x)[:5], fit.pointwise[:5], strict=True):
        assert logp == pytest.approx(math.log(densities[distribution](value)), rel=1e-9, abs=1e-12)


def test_seeded_samples_recover_their_parameters() -> None:
    rng = np.random.default_rng(2)
    n = 5000
    tpl = fit_truncated_power_law(truncated_sample(rng, 2.2, 0.05, 1.0, n), 1.0)
    assert tpl.parameters["alpha"] == pytest.approx(2.2, abs=0.08)
    assert tpl.parameters["Lambda"] == pytest.approx(0.05, rel=0.25)
    exp = fit_exponential(3.0 + rng.exponential(1 / 0.7, n), 3.0)
    assert exp.parameters["Lambda"] == pytest.approx(0.7, abs=4 * 0.7 / math.sqrt(n))
    logn = np.exp(rng.normal(1.0, 0.8, 4 * n))
    ln = fit_lognormal(logn[logn >= 2.0], 2.0)  # truncation keeps the MLE consistent
    assert ln.parameters["mu"] == pytest.approx(1.0, abs=0.1)
    assert ln.parameters["sigma"] == pytest.approx(0.8, abs=0.05)


def test_exponential_and_power_law_mles_are_closed_forms() -> None:
    x = np.random.default_rng(3).pareto(1.5, 300) + 1.0
    exp = fit_exponential(x, 1.0)
    assert exp.parameters["Lambda"] == pytest.approx(1.0 / np.mean(x - 1.0), rel=1e-14)
    pl = fit_power_law_tail(x, 1.0)
    assert pl.parameters["alpha"] == pytest.approx(1.0 + x.size / np.log(x).sum(), rel=1e-14)


def test_maxima_are_at_least_as_high_as_the_powerlaw_package() -> None:
    powerlaw = pytest.importorskip("powerlaw")
    x = truncated_sample(np.random.default_rng(4), 2.4, 0.03, 1.0, 3000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = powerlaw.Fit(x, xmin=1.0, parameter_ranges={"alpha": [0, 10]})
        for name in ("truncated_power_law", "lognormal", "exponential", "power_law"):
            theirs = float(np.sum(getattr(reference, name).loglikelihoods(reference.data)))
            ours = fit_tail(x, 1.0, name)  # type: ignore[arg-type]
            assert ours.loglikelihood >= theirs - 1e-7 * abs(theirs), name
            assert ours.loglikelihood == pytest.approx(theirs, rel=1e-6), name


@pytest.mark.parametrize("nested", [False, True])
def test_vuong_statistic_matches_the_powerlaw_package(nested: bool) -> None:
    statistics = pytest.importorskip("powerlaw.statistics")
    rng = np.random.default_rng(5)
    l1, l2 = rng.normal(-2.0, 1.0, 400), rng.normal(-2.1, 1.2, 400)
    ratio, normalized, p = loglikelihood_ratio(l1, l2, nested=nested)
    ratio_ref, p_ref = statistics.loglikelihood_ratio(l1.copy(), l2.copy(), nested=nested)
    normalized_ref, _ = statistics.loglikelihood_ratio(
        l1.copy(), l2.copy(), nested=nested, normalized_ratio=True
    )
    assert ratio == pytest.approx(ratio_ref, rel=1e-12)
    assert normalized == pytest.approx(normalized_ref, rel=1e-12)
    assert p == pytest.approx(p_ref, rel=1e-9)


def test_compare_prefers_the_true_family() -> None:
    rng = np.random.default_rng(6)
    pure = 1.0 * (1.0 - rng.random(4000)) ** (-1.0 / 1.5)  # Pareto, α = 2.5
    versus_exp = compare_distributions(fit_power_law_tail(pure, 1.0), fit_exponential(pure, 1.0))
    assert versus_exp.R > 0 and versus_exp.p < 1e-6 and versus_exp.preferred == "power_law"
    cut = truncated_sample(rng, 1.8, 0.2, 1.0, 4000)
    nested = compare_distributions(fit_power_law_tail(cut, 1.0), fit_truncated_power_law(cut, 1.0))
    assert nested.nested and nested.R < 0 and nested.preferred == "truncated_power_law"
    # a truncated power law nests the power law: its maximum likelihood is never lower
    assert (
        fit_truncated_power_law(pure, 1.0).loglikelihood
        >= fit_power_law_tail(pure, 1.0).loglikelihood - 1e-6
    )


def test_degenerate_tails_fail_with_a_status() -> None:
    for fitter in (fit_power_law_tail, fit_exponential, fit_lognormal, fit_truncated_power_law):
        few = fitter([5.0, 1.0], 2.0)
        assert few.status is FitStatus.TOO_FEW_POINTS and all(
            math.isnan(v) for v in few.parameters.values()
        )
        flat = fitter([3.0, 3.0, 3.0, 1.0], 2.0)
        assert flat.status is FitStatus.CONSTANT and math.isnan(flat.loglikelihood)
        bad = fitter([1.0, 2.0, 3.0], -1.0)
        assert bad.status is FitStatus.INVALID_VALUES


def test_compare_refuses_different_tails_and_failed_fits() -> None:
    x = np.random.default_rng(7).pareto(2.0, 500) + 1.0
    with pytest.raises(ValueError, match="different tails"):
        compare_distributions(fit_power_law_tail(x, 1.0), fit_exponential(x, 1.5))
    with pytest.raises(ValueError, match="cannot compare"):
        compare_distributions(fit_power_law_tail(x, 1.0), fit_exponential([1.0], 1.0))
    with pytest.raises(ValueError, match="distribution must be one of"):
        fit_tail(x, 1.0, "gamma")  # type: ignore[arg-type]


def test_esd_truncated_power_law_fits_above_the_peak_window(minilm_report) -> None:
    from alphahat.fit import fit_power_law
    from alphahat.fit.alternatives import fit_esd_truncated_power_law

    evals = minilm_report.eigenvalues["encoder.layer.0.intermediate.dense.weight"]
    evals = evals[evals > 1e-5]
    fit = fit_esd_truncated_power_law(evals)
    counts, edges = np.histogram(np.log10(evals), bins=100)
    peak = 10 ** edges[np.argmax(counts)]
    assert fit.fitted and 0.95 * peak <= fit.xmin <= 1.5 * peak
    assert fit.xmin == fit_power_law(evals, xmin="peak").xmin
    assert fit.parameters == fit_truncated_power_law(evals, fit.xmin).parameters
    assert fit.n_tail == int((evals >= fit.xmin).sum())
    failed = fit_esd_truncated_power_law([1.0, 1.0, 1.0])
    assert not failed.fitted and math.isnan(failed.parameters["alpha"])
