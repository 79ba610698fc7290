"""Trend statistics of accuracy against a metric: OLS, rank correlations, bootstrap intervals.

Pure computation: NumPy arrays in, a frozen :class:`TrendStats` out. For n models with metric
values xᵢ and accuracies yᵢ (x̄, ȳ their means):

* OLS of y on x: slope b = Sxy/Sxx, intercept a = ȳ − b·x̄, with Sxy = Σ(xᵢ−x̄)(yᵢ−ȳ),
  Sxx = Σ(xᵢ−x̄)², Syy = Σ(yᵢ−ȳ)²; residual sum of squares SSR = Σ(yᵢ − a − b·xᵢ)²;
  R² = 1 − SSR/Syy; MSE = SSR/n (the mean squared residual, in accuracy units²; *not*
  statsmodels' ``mse_resid`` = SSR/(n−2)); RMSE = √MSE, in accuracy units; the slope's
  standard error √(SSR/(n−2)/Sxx) and its two-sided t-test p-value (n − 2 degrees of freedom),
  as :func:`scipy.stats.linregress` computes them.
* Kendall τ_b and Spearman ρ with their two-sided p-values (:func:`scipy.stats.kendalltau`,
  :func:`scipy.stats.spearmanr`; ties get average ranks).
* Percentile bootstrap confidence intervals for b, R², τ_b and ρ: B resamples of the n
  (x, y) pairs with replacement (a seeded :class:`numpy.random.Generator`); a resample whose
  x or y is constant has an undefined statistic and is left out; the interval is NaN when
  fewer than half of the resamples are usable.

Fewer than :data:`MIN_MODELS` models, a constant metric or constant accuracies give NaN
statistics with a ``status`` and a ``reason`` (never an exception).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
NAN = float("nan")
#: Fewest models a trend is computed from.
MIN_MODELS = 3
DEFAULT_BOOTSTRAP = 1000
DEFAULT_CONFIDENCE = 0.95
_CHUNK_ELEMENTS = 1 << 21  # bootstrap resamples are processed in chunks of about this size

TrendStatus = Literal["ok", "too-few-models", "undefined"]
Interval = tuple[float, float]


@dataclass(frozen=True)
class TrendStats:
    """How accuracy trends with one metric over a set of models (formulas: module docstring).

    ``*_ci`` are (low, high) percentile-bootstrap intervals at level ``confidence`` from
    ``num_bootstrap`` resamples; NaN where undefined. ``status`` is ``ok``,
    ``too-few-models`` or ``undefined`` (constant metric or accuracy), with the ``reason``.
    """

    n: int
    slope: float
    intercept: float
    r2: float
    mse: float
    rmse: float
    slope_stderr: float
    slope_p_value: float
    kendall_tau: float
    kendall_p_value: float
    spearman_rho: float
    spearman_p_value: float
    slope_ci: Interval
    r2_ci: Interval
    kendall_tau_ci: Interval
    spearman_rho_ci: Interval
    confidence: float
    num_bootstrap: int
    status: TrendStatus = "ok"
    reason: str = ""

    @property
    def ok(self) -> bool:
        """Whether the statistics are defined."""
        return self.status == "ok"

    @property
    def direction(self) -> int:
        """Sign of the OLS slope: +1 (accuracy rises with the metric), −1, or 0 if undefined."""
        if not self.ok or not math.isfinite(self.slope) or self.slope == 0:
            return 0
        return 1 if self.slope > 0 else -1

    def as_dict(self) -> dict[str, float | int | str]:
        """Flat dict (intervals as ``*_low`` / ``*_high``)."""
        out: dict[str, float | int | str] = {}
        for name in (
            "n", "slope", "intercept", "r2", "mse", "rmse", "slope_stderr", "slope_p_value",
            "kendall_tau", "kendall_p_value", "spearman_rho", "spearman_p_value",
        ):  # fmt: skip
            out[name] = getattr(self, name)
        for name in ("slope_ci", "r2_ci", "kendall_tau_ci", "spearman_rho_ci"):
            low, high = getattr(self, name)
            out[f"{name}_low"], out[f"{name}_high"] = low, high
        out.update(
            confidence=self.confidence,
            num_bootstrap=self.num_bootstrap,
            status=self.status,
            reason=self.reason,
        )
        return out


@dataclass(frozen=True)
class LinearFit:
    """OLS of y on x (formulas: module docstring)."""

    slope: float
    intercept: float
    r2: float
    mse: float
    rmse: float
    slope_stderr: float
    slope_p_value: float


def linear_fit(x: npt.ArrayLike, y: npt.ArrayLike) -> LinearFit:
    """OLS fit of y on x; needs n ≥ 3 and x, y each not constant (else ValueError)."""
    from scipy import stats

    xs, ys = _pair(x, y)
    n = xs.size
    if n < 3:
        raise ValueError(f"a linear fit needs at least 3 points; got {n}")
    dx, dy = xs - xs.mean(), ys - ys.mean()
    sxx, syy, sxy = float(dx @ dx), float(dy @ dy), float(dx @ dy)
    if sxx == 0 or syy == 0:
        raise ValueError("a linear fit needs x and y that are not constant")
    slope = sxy / sxx
    intercept = float(ys.mean() - slope * xs.mean())
    residuals = ys - (intercept + slope * xs)
    ssr = float(residuals @ residuals)
    mse = ssr / n
    stderr = math.sqrt(ssr / (n - 2) / sxx)
    # a perfect fit has stderr 0 and p-value 0
    p_value = float(2 * stats.t.sf(abs(slope / stderr), n - 2)) if stderr > 0 else 0.0
    return LinearFit(
        slope=slope,
        intercept=intercept,
        r2=1.0 - ssr / syy,
        mse=mse,
        rmse=math.sqrt(mse),
        slope_stderr=stderr,
        slope_p_value=p_value,
    )


def _pair(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    xs = np.asarray(x, dtype=np.float64).ravel()
    ys = np.asarray(y, dtype=np.float64).ravel()
    if xs.shape != ys.shape:
        raise ValueError(f"x and y must have the same length; got {xs.size} and {ys.size}")
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        raise ValueError("x and y must be finite (drop models with undefined metrics first)")
    return xs, ys


def bootstrap_samples(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    num_bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int | Sequence[int] | np.random.Generator = 0,
) -> dict[str, FloatArray]:
    """Bootstrap replicates of slope, R², Kendall τ_b and Spearman ρ (NaN where undefined).

    Resample i draws n indices uniformly with replacement from one seeded generator; every
    statistic of resample i is computed on the same pairs.
    """
    from scipy.stats import rankdata

    xs, ys = _pair(x, y)
    n = xs.size
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    index = rng.integers(0, n, size=(num_bootstrap, n))
    out = {k: np.full(num_bootstrap, np.nan) for k in ("slope", "r2", "kendall_tau", "spearman")}
    chunk = max(1, _CHUNK_ELEMENTS // max(n * n, 1))
    for start in range(0, num_bootstrap, chunk):
        rows = slice(start, start + chunk)
        xb, yb = xs[index[rows]], ys[index[rows]]
        dx = xb - xb.mean(axis=1, keepdims=True)
        dy = yb - yb.mean(axis=1, keepdims=True)
        sxx, syy, sxy = (dx * dx).sum(axis=1), (dy * dy).sum(axis=1), (dx * dy).sum(axis=1)
        valid = (sxx > 0) & (syy > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["slope"][rows] = np.where(valid, sxy / sxx, np.nan)
            out["r2"][rows] = np.where(valid, sxy * sxy / (sxx * syy), np.nan)
            rx, ry = rankdata(xb, axis=1), rankdata(yb, axis=1)
            rx -= rx.mean(axis=1, keepdims=True)
            ry -= ry.mean(axis=1, keepdims=True)
            rho = (rx * ry).sum(axis=1) / np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
            out["spearman"][rows] = np.where(valid, rho, np.nan)
            # Kendall τ_b = Σ sign(Δx)·sign(Δy) / √(Σ|sign Δx| · Σ|sign Δy|) over pairs
            sx = np.sign(xb[:, :, None] - xb[:, None, :])
            sy = np.sign(yb[:, :, None] - yb[:, None, :])
            concordance = (sx * sy).sum(axis=(1, 2))
            norm = np.sqrt(np.abs(sx).sum(axis=(1, 2)) * np.abs(sy).sum(axis=(1, 2)))
            out["kendall_tau"][rows] = np.where(valid, concordance / norm, np.nan)
    return out


def _interval(samples: FloatArray, confidence: float) -> Interval:
    usable = samples[np.isfinite(samples)]
    if usable.size == 0 or usable.size < samples.size / 2:
        return (NAN, NAN)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(usable, [tail, 100.0 - tail])
    return (float(low), float(high))


def _undefined(n: int, status: TrendStatus, reason: str, confidence: float) -> TrendStats:
    return TrendStats(
        n=n, slope=NAN, intercept=NAN, r2=NAN, mse=NAN, rmse=NAN, slope_stderr=NAN,
        slope_p_value=NAN, kendall_tau=NAN, kendall_p_value=NAN, spearman_rho=NAN,
        spearman_p_value=NAN, slope_ci=(NAN, NAN), r2_ci=(NAN, NAN),
        kendall_tau_ci=(NAN, NAN), spearman_rho_ci=(NAN, NAN), confidence=confidence,
        num_bootstrap=0, status=status, reason=reason,
    )  # fmt: skip


def trend_statistics(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    *,
    num_bootstrap: int = DEFAULT_BOOTSTRAP,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int | Sequence[int] | np.random.Generator = 0,
) -> TrendStats:
    """OLS, Kendall τ_b, Spearman ρ and bootstrap intervals of accuracy ``y`` on metric ``x``.

    ``num_bootstrap`` = 0 skips the bootstrap (NaN intervals). See the module docstring.
    """
    from scipy import stats

    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence!r}")
    if not isinstance(num_bootstrap, int) or num_bootstrap < 0:
        raise ValueError(f"num_bootstrap must be an integer ≥ 0; got {num_bootstrap!r}")
    xs, ys = _pair(x, y)
    n = xs.size
    if n < MIN_MODELS:
        return _undefined(
            n, "too-few-models", f"{n} model(s); a trend needs at least {MIN_MODELS}", confidence
        )
    if np.ptp(xs) == 0:
        return _undefined(
            n, "undefined", "the metric has the same value for every model", confidence
        )
    if np.ptp(ys) == 0:
        return _undefined(n, "undefined", "every model has the same accuracy", confidence)
    fit = linear_fit(xs, ys)
    tau = stats.kendalltau(xs, ys)
    rho = stats.spearmanr(xs, ys)
    if num_bootstrap:
        boot = bootstrap_samples(xs, ys, num_bootstrap=num_bootstrap, seed=seed)
        cis = {k: _interval(v, confidence) for k, v in boot.items()}
    else:
        cis = dict.fromkeys(("slope", "r2", "kendall_tau", "spearman"), (NAN, NAN))
    return TrendStats(
        n=n,
        slope=fit.slope,
        intercept=fit.intercept,
        r2=fit.r2,
        mse=fit.mse,
        rmse=fit.rmse,
        slope_stderr=fit.slope_stderr,
        slope_p_value=fit.slope_p_value,
        kendall_tau=float(tau.statistic),
        kendall_p_value=float(tau.pvalue),
        spearman_rho=float(rho.statistic),
        spearman_p_value=float(rho.pvalue),
        slope_ci=cis["slope"],
        r2_ci=cis["r2"],
        kendall_tau_ci=cis["kendall_tau"],
        spearman_rho_ci=cis["spearman"],
        confidence=confidence,
        num_bootstrap=num_bootstrap,
    )
