"""Alternatives to a pure power law on the same tail, and likelihood-ratio tests between them.

All distributions are continuous, fitted by maximum likelihood to the tail x ≥ x_min (x_min is
given, usually the power-law fit's), with these densities on [x_min, ∞):

* power law:            p(x) = (α − 1)/x_min · (x/x_min)^(−α)
* exponential:          p(x) = λ e^(−λ (x − x_min)),                    λ̂ = 1 / mean(x − x_min)
* log-normal:           p(x) = φ((ln x − μ)/σ) / (σ x · Q),   Q = P(X ≥ x_min) = Φ((μ − ln x_min)/σ)
* truncated power law:  p(x) = x^(−α) e^(−λx) / Z,          Z = ∫_{x_min}^∞ t^(−α) e^(−λt) dt
  (a power law with an exponential cut-off λ > 0; any real α). ``Lambda`` = λ, as the
  reference tool reports it; for ESDs the reference tool's ``E_TPL`` is this fit with x_min at
  the peak of the log-ESD.

Z is computed as x_min^(1−α) e^(−β) ∫_0^∞ (1+u)^(−α) e^(−βu) du with β = λ x_min (a smooth,
bounded integrand) by adaptive quadrature, in log form. Log-normal and truncated power-law
parameters are found by numerical optimisation (Nelder–Mead, then checked against the start).

:func:`compare_distributions` is Vuong's test as Clauset, Shalizi & Newman (2009, §5) use it and as
the ``powerlaw`` package's ``distribution_compare`` computes it: R = Σᵢ (ℓ₁ᵢ − ℓ₂ᵢ), σ² the
(population) variance of ℓ₁ᵢ − ℓ₂ᵢ, the normalised ratio R/(σ√n), and p = erfc(|R| / (σ√(2n))),
or, for nested models (power law inside truncated power law), p = P(χ²₁ ≥ 2|R|).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import integrate, optimize, special, stats

from alphahat.fit.power_law import FitStatus

FloatArray = npt.NDArray[np.float64]
Distribution = Literal["power_law", "truncated_power_law", "exponential", "lognormal"]
DISTRIBUTIONS: tuple[str, ...] = ("power_law", "truncated_power_law", "exponential", "lognormal")
_NESTED = frozenset({("power_law", "truncated_power_law"), ("truncated_power_law", "power_law")})
_HALF_LN_2PI = 0.5 * math.log(2.0 * math.pi)


def _empty() -> FloatArray:
    return np.empty(0, dtype=np.float64)


@dataclass(frozen=True)
class TailFit:
    """A distribution fitted by maximum likelihood to the tail x ≥ ``xmin``.

    Attributes:
        distribution: one of :data:`DISTRIBUTIONS`.
        parameters: the MLE (``alpha``; ``alpha`` and ``Lambda``; ``Lambda``; ``mu`` and
            ``sigma``), NaN when the fit failed.
        xmin: lower end of the tail.
        n_tail: number of tail points.
        loglikelihood: Σ ln p(xᵢ) over the tail (natural log).
        status, reason: as for :class:`~alphahat.fit.PowerLawFit`.
        pointwise: ln p(xᵢ) for each tail point, in sorted order (for likelihood ratios).
    """

    distribution: str
    parameters: Mapping[str, float]
    xmin: float
    n_tail: int
    loglikelihood: float
    status: FitStatus
    reason: str = ""
    pointwise: FloatArray = field(default_factory=_empty, repr=False, compare=False)

    @property
    def fitted(self) -> bool:
        """True when the fit succeeded."""
        return self.status is FitStatus.FITTED


@dataclass(frozen=True)
class LikelihoodRatio:
    """Vuong's likelihood-ratio test between two fits of the same tail.

    ``R`` > 0 favours the first distribution; ``p`` is the significance of the sign of R
    (small p: the sign can be trusted). ``normalized_R`` = R / (σ√n).
    """

    first: str
    second: str
    R: float
    normalized_R: float
    p: float
    nested: bool
    n: int

    @property
    def preferred(self) -> str | None:
        """The favoured distribution when p < 0.1, else None (the data cannot tell)."""
        if not math.isfinite(self.p) or self.p >= 0.1 or self.R == 0:
            return None
        return self.first if self.R > 0 else self.second


def _tail(x: npt.ArrayLike, xmin: float) -> tuple[FloatArray, str]:
    data = np.asarray(x, dtype=np.float64).reshape(-1)
    if not (math.isfinite(xmin) and xmin > 0):
        return _empty(), f"xmin must be finite and positive; got {xmin!r}"
    if not np.isfinite(data).all():
        return _empty(), "values must be finite"
    tail = np.sort(data[data >= xmin])
    if tail.size < 2:
        return tail, f"{tail.size} point(s) ≥ xmin; a tail fit needs at least 2"
    if tail[0] == tail[-1]:
        return tail, "all tail values are equal"
    return tail, ""


def _failed(distribution: str, names: tuple[str, ...], xmin: float, n: int, reason: str) -> TailFit:
    status = FitStatus.TOO_FEW_POINTS if "point" in reason else FitStatus.INVALID_VALUES
    if "equal" in reason:
        status = FitStatus.CONSTANT
    nan = float("nan")
    return TailFit(distribution, {k: nan for k in names}, xmin, n, nan, status, reason)


def _done(
    distribution: str, parameters: dict[str, float], xmin: float, pointwise: FloatArray
) -> TailFit:
    pointwise.setflags(write=False)
    total = float(pointwise.sum())
    if not math.isfinite(total):
        return _failed(
            distribution, tuple(parameters), xmin, pointwise.size, "likelihood not finite"
        )
    return TailFit(
        distribution, parameters, xmin, pointwise.size, total, FitStatus.FITTED, "", pointwise
    )


def fit_power_law_tail(x: npt.ArrayLike, xmin: float, alpha: float | None = None) -> TailFit:
    """Continuous power law on x ≥ xmin: α̂ = 1 + n / Σ ln(x/xmin) unless ``alpha`` is given."""
    tail, problem = _tail(x, xmin)
    if problem:
        return _failed("power_law", ("alpha",), xmin, tail.size, problem)
    log_ratio = np.log(tail / xmin)
    if alpha is None:
        alpha = 1.0 + tail.size / float(log_ratio.sum())
    if not alpha > 1:
        return _failed("power_law", ("alpha",), xmin, tail.size, f"alpha={alpha} ≤ 1")
    pointwise = math.log(alpha - 1.0) - math.log(xmin) - alpha * log_ratio
    return _done("power_law", {"alpha": float(alpha)}, xmin, pointwise)


def fit_exponential(x: npt.ArrayLike, xmin: float) -> TailFit:
    """Exponential on x ≥ xmin (shifted): λ̂ = 1 / mean(x − xmin), in closed form."""
    tail, problem = _tail(x, xmin)
    if problem:
        return _failed("exponential", ("Lambda",), xmin, tail.size, problem)
    excess = tail - xmin
    rate = 1.0 / float(excess.mean())
    pointwise = math.log(rate) - rate * excess
    return _done("exponential", {"Lambda": rate}, xmin, pointwise)


def _lognormal_pointwise(
    log_tail: FloatArray, log_xmin: float, mu: float, sigma: float
) -> FloatArray:
    z = (log_tail - mu) / sigma
    log_q = special.log_ndtr((mu - log_xmin) / sigma)  # ln P(X ≥ xmin), no underflow
    result: FloatArray = -log_tail - _HALF_LN_2PI - math.log(sigma) - 0.5 * z * z - log_q
    return result


def _minimize(objective: Callable[[FloatArray], float], start: FloatArray) -> FloatArray:
    """Nelder–Mead to tight tolerances, restarted once from its own optimum."""
    best = start
    for _ in range(2):
        result = optimize.minimize(
            objective,
            best,
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20_000, "maxfev": 40_000},
        )
        best = np.asarray(result.x, dtype=np.float64)
    return best


def fit_lognormal(x: npt.ArrayLike, xmin: float) -> TailFit:
    """Log-normal truncated to x ≥ xmin: (μ, σ) maximising the likelihood (numerically)."""
    tail, problem = _tail(x, xmin)
    if problem:
        return _failed("lognormal", ("mu", "sigma"), xmin, tail.size, problem)
    log_tail = np.log(tail)
    log_xmin = math.log(xmin)

    def negative_loglikelihood(theta: FloatArray) -> float:
        mu, log_sigma = float(theta[0]), float(theta[1])
        if not -50.0 < log_sigma < 50.0:
            return math.inf
        value = -float(_lognormal_pointwise(log_tail, log_xmin, mu, math.exp(log_sigma)).sum())
        return value if math.isfinite(value) else math.inf

    start = np.array([float(log_tail.mean()), math.log(max(float(log_tail.std()), 1e-3))])
    mu, log_sigma = _minimize(negative_loglikelihood, start)
    sigma = math.exp(float(log_sigma))
    pointwise = _lognormal_pointwise(log_tail, log_xmin, float(mu), sigma)
    return _done("lognormal", {"mu": float(mu), "sigma": sigma}, xmin, pointwise)


def truncated_power_law_log_normalizer(alpha: float, rate: float, xmin: float) -> float:
    """Natural log of Z = ∫_{xmin}^∞ t^(−α) e^(−λt) dt for λ > 0 (any real α), by quadrature.

    Z = xmin^(1−α) e^(−β) ∫_0^∞ (1+u)^(−α) e^(−βu) du with β = λ·xmin.
    """
    beta = rate * xmin

    def integrand(u: float) -> float:
        return math.exp(-alpha * math.log1p(u) - beta * u)

    # split at the e-folding scale of the integrand, where most of the mass lies
    scale = 1.0 / (beta + max(alpha, 0.0) + 1e-300)
    head, _ = integrate.quad(integrand, 0.0, scale, epsabs=0.0, epsrel=1e-12, limit=200)
    rest, _ = integrate.quad(integrand, scale, math.inf, epsabs=0.0, epsrel=1e-12, limit=200)
    total = head + rest
    if not (total > 0 and math.isfinite(total)):
        return math.nan
    return (1.0 - alpha) * math.log(xmin) - beta + math.log(total)


def fit_truncated_power_law(x: npt.ArrayLike, xmin: float) -> TailFit:
    """Power law with exponential cut-off on x ≥ xmin: (α, λ) maximising the likelihood."""
    tail, problem = _tail(x, xmin)
    names = ("alpha", "Lambda")
    if problem:
        return _failed("truncated_power_law", names, xmin, tail.size, problem)
    log_tail = np.log(tail)
    sum_log, sum_x, n = float(log_tail.sum()), float(tail.sum()), tail.size

    def negative_loglikelihood(theta: FloatArray) -> float:
        alpha, log_rate = float(theta[0]), float(theta[1])
        if not -700.0 < log_rate < 700.0:
            return math.inf
        rate = math.exp(log_rate)
        log_z = truncated_power_law_log_normalizer(alpha, rate, xmin)
        if not math.isfinite(log_z):
            return math.inf
        return alpha * sum_log + rate * sum_x + n * log_z

    alpha_pl = 1.0 + n / float(np.log(tail / xmin).sum())
    starts = [np.array([alpha_pl, math.log(0.1 / float(tail.mean()))])]
    starts.append(np.array([max(alpha_pl - 1.0, 0.5), math.log(1.0 / float(tail.mean()))]))
    candidates = [_minimize(negative_loglikelihood, s) for s in starts]
    alpha, log_rate = min(candidates, key=negative_loglikelihood)
    rate = math.exp(float(log_rate))
    log_z = truncated_power_law_log_normalizer(float(alpha), rate, xmin)
    pointwise = -float(alpha) * log_tail - rate * tail - log_z
    return _done("truncated_power_law", {"alpha": float(alpha), "Lambda": rate}, xmin, pointwise)


_FITTERS: dict[str, Callable[[npt.ArrayLike, float], TailFit]] = {
    "power_law": fit_power_law_tail,
    "truncated_power_law": fit_truncated_power_law,
    "exponential": fit_exponential,
    "lognormal": fit_lognormal,
}


def fit_tail(x: npt.ArrayLike, xmin: float, distribution: Distribution) -> TailFit:
    """Fit one of :data:`DISTRIBUTIONS` to the tail x ≥ xmin."""
    if distribution not in _FITTERS:
        raise ValueError(
            f"distribution must be one of {', '.join(map(repr, DISTRIBUTIONS))}; "
            f"got {distribution!r}"
        )
    return _FITTERS[distribution](x, xmin)


def loglikelihood_ratio(
    first: npt.ArrayLike, second: npt.ArrayLike, *, nested: bool = False
) -> tuple[float, float, float]:
    """(R, R/(σ√n), p) of Vuong's test from two arrays of pointwise log-likelihoods."""
    l1 = np.asarray(first, dtype=np.float64)
    l2 = np.asarray(second, dtype=np.float64)
    if l1.shape != l2.shape or l1.ndim != 1:
        raise ValueError("the two log-likelihood arrays must be 1-D and of the same length")
    n = l1.size
    if n == 0:
        return 0.0, 0.0, 1.0
    diff = l1 - l2
    ratio = float(diff.sum())
    variance = float(np.mean((diff - diff.mean()) ** 2))
    if nested:
        p = float(stats.chi2.sf(abs(2.0 * ratio), 1))
    elif variance > 0:
        p = float(special.erfc(abs(ratio) / math.sqrt(2.0 * n * variance)))
    else:
        p = 1.0 if ratio == 0 else 0.0
    normalized = ratio / math.sqrt(n * variance) if variance > 0 else 0.0
    return ratio, normalized, p


def compare_distributions(
    first: TailFit, second: TailFit, *, nested: bool | None = None
) -> LikelihoodRatio:
    """Vuong's test between two fits of the same tail (see the module docstring).

    ``nested`` defaults to True for power law vs truncated power law, else False.

    Raises:
        ValueError: the fits are of different tails, or one of them failed.
    """
    if not (first.fitted and second.fitted):
        raise ValueError(
            f"cannot compare: {first.distribution} is {first.status}, "
            f"{second.distribution} is {second.status}"
        )
    if first.xmin != second.xmin or first.n_tail != second.n_tail:
        raise ValueError(
            "cannot compare fits of different tails "
            f"(xmin {first.xmin} vs {second.xmin}, n {first.n_tail} vs {second.n_tail})"
        )
    if nested is None:
        nested = (first.distribution, second.distribution) in _NESTED
    ratio, normalized, p = loglikelihood_ratio(first.pointwise, second.pointwise, nested=nested)
    return LikelihoodRatio(
        first.distribution, second.distribution, ratio, normalized, p, nested, first.n_tail
    )


def fit_esd_truncated_power_law(
    eigenvalues: npt.ArrayLike, *, peak_bins: int = 100, xmin_max: float | None = None
) -> TailFit:
    """The reference tool's ``E_TPL`` for an ESD: a truncated power law above the ESD's peak.

    x_min is chosen by :func:`~alphahat.fit.fit_power_law` with ``xmin="peak"`` (minimum power-law
    KS distance among candidates in [0.95·p, 1.5·p], p the mode of the log₁₀ histogram), then
    the truncated power law x^(−α) e^(−λx) is fitted to the tail above it by maximum likelihood.
    (The reference tool searches the same window with the truncated law's own KS distance.)
    """
    from alphahat.fit.power_law import fit_power_law

    peak_fit = fit_power_law(eigenvalues, xmin="peak", xmin_max=xmin_max, peak_bins=peak_bins)
    if not peak_fit.fitted:
        nan = float("nan")
        return TailFit(
            "truncated_power_law", {"alpha": nan, "Lambda": nan}, nan, 0, nan,
            peak_fit.status, f"x_min at the ESD peak: {peak_fit.reason}",
        )  # fmt: skip
    return fit_truncated_power_law(eigenvalues, peak_fit.xmin)
