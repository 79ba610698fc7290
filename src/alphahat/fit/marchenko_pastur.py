"""Marchenko–Pastur (MP) fit of the bulk of an ESD: σ, the bulk edges, spikes, MP soft rank.

For an N × M matrix W (N ≥ M, Q = N/M) with i.i.d. entries, the eigenvalues of WᵀW, normalised
to mean 1, follow the MP law with aspect ratio Q and scale σ:

    ρ(x) = √((x₊ − x)(x − x₋)) / (2π σ² x / Q),   x₋ ≤ x ≤ x₊,   x± = σ² (1 ± 1/√Q)²

(mean σ², so σ ≈ 1 for a purely random W). For Q = 1 the law of the singular values ν = √x is
the quarter circle ρ(ν) = √(4σ² − ν²) / (πσ²) on [0, 2σ], which is fitted instead (its density
is bounded, the MP density at Q = 1 is not).

The fit (the reference tool's objective, weightwatcher 0.7.7 ``mp_fit``, computed once):

1. Normalise: ``W_scale`` = √(n / Σλ), x = W_scale² · λ (so mean x = 1); n = number of eigenvalues.
2. One density estimate: a linear-kernel KDE (bandwidth 0.1) of x (of √x when Q = 1) on 1000
   equal points of [0, max + 0.5]; points where the estimate is ≤ 0.01 are left out.
3. σ minimises the sum of squared differences between the MP (quarter-circle) density and that
   estimate: a grid of σ over [0.05 s, 2 s) in steps of 0.01 s, s = √(x_max)/(1 + 1/√Q) (the σ
   that puts x₊ at the largest eigenvalue), then Nelder–Mead from the best grid point. For Q ≠ 1
   a σ whose upper edge x₊ lies left of the estimate's peak or beyond its support, or whose
   lower edge x₋ lies right of the peak, is not admissible.
4. ``bulk_min``, ``bulk_max`` = x₋, x₊ in the units of λ (divided by W_scale²).
5. Spikes: eigenvalues above the edge x₊ + √t, t = x₊^(2/3) M^(−2/3) / √Q the Tracy–Widom
   scale of λ_max fluctuations at the MP edge (the reference tool's margin, √t, is wider than
   t: a conservative spike test). ``softrank`` = x₊ / x_max (the MP soft rank).

The reference tool refits the same density estimate at every grid point and, for Q = 1, uses
√(4 − ν²)/(πσ²), which is a normalised density only at σ = 1; here the estimate is made once
and the quarter circle is the normalised one. For Q ≠ 1 both give the same σ.

Where the fit of the whole ESD has no admissible σ — a few spikes carry most of Σλ, so the
mean-1 normalisation squeezes the bulk below the KDE bandwidth (the reference tool then reports
the first σ of its grid) — the bulk is fitted alone: found from the median eigenvalue, which a
minority of spikes barely moves, and fitted by steps 1–5 with the spikes left out
(``trimmed`` > 0; :func:`_fit_bulk`). The bulk is still Marchenko–Pastur; the spikes are what
is counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: KDE bandwidth, in units of the mean-normalised eigenvalues (or of their square roots).
DEFAULT_BANDWIDTH = 0.1
#: Points of the grid the density estimate is evaluated on.
DEFAULT_GRID_POINTS = 1000
#: Grid points whose estimated density is at or below this are left out of the fit.
DEFAULT_DENSITY_FLOOR = 0.01
#: σ search grid, in units of s = √(x_max)/(1 + 1/√Q): [start, stop) in steps of step.
SIGMA_GRID = (0.05, 2.0, 0.01)
#: Objective value of an inadmissible σ (per grid point of the estimate), as in the reference.
_PENALTY = 1000.0


class MPFitStatus(StrEnum):
    """Outcome of an MP fit; every status but ``FITTED`` comes with NaN numbers."""

    FITTED = "fitted"
    TOO_FEW_POINTS = "too_few_points"
    INVALID_VALUES = "invalid_values"
    CONSTANT = "constant"
    NO_ADMISSIBLE_SIGMA = "no_admissible_sigma"


@dataclass(frozen=True)
class MarchenkoPasturFit:
    """Result of :func:`fit_marchenko_pastur`.

    Attributes:
        sigma: σ of the MP law fitted to the mean-normalised ESD (x = W_scale²·λ, mean 1);
            the reference tool's ``sigma_mp``. In the units of λ the MP scale is
            σ²/W_scale² (:attr:`variance`).
        Q: aspect ratio N/M.
        N, M: matrix shape (N ≥ M); M also sets the Tracy–Widom margin.
        W_scale: √(n/Σλ), the normalisation of step 1.
        bulk_min, bulk_max: MP bulk edges σ²(1 ∓ 1/√Q)², in the units of λ.
        spike_edge: bulk_max plus the Tracy–Widom margin, in the units of λ.
        num_spikes: eigenvalues above ``spike_edge``.
        softrank: MP soft rank bulk_max / λ_max.
        lambda_max: largest eigenvalue, in the units of λ.
        law: ``"MP"`` or ``"QC"`` (quarter circle, Q = 1).
        residual: the minimised sum of squares.
        n: number of eigenvalues.
        status, reason: :class:`MPFitStatus` and why the fit failed (empty when fitted).
        trimmed: 0 for the fit of the whole ESD (the reference tool's); where that had no
            admissible σ, the number of top eigenvalues left out of the fit of the bulk.
    """

    sigma: float
    Q: float
    N: int
    M: int
    W_scale: float
    bulk_min: float
    bulk_max: float
    spike_edge: float
    num_spikes: int
    softrank: float
    lambda_max: float
    law: str
    residual: float
    n: int
    status: MPFitStatus
    reason: str = ""
    trimmed: int = 0

    @property
    def fitted(self) -> bool:
        """True when the fit succeeded."""
        return self.status is MPFitStatus.FITTED

    @property
    def variance(self) -> float:
        """The MP scale in the units of λ: σ² / W_scale²."""
        return self.sigma**2 / self.W_scale**2

    def density(self, x: npt.ArrayLike) -> FloatArray:
        """The fitted MP density of the eigenvalues at ``x``, in the units of λ.

        ρ_λ(x) = W_scale² · ρ_MP(W_scale² · x; Q, σ) (for Q = 1 the MP law at Q = 1, which
        is the quarter circle of the singular values). 0 outside the bulk; NaN everywhere
        when the fit failed. Integrates to 1 over the bulk.
        """
        values = np.asarray(x, dtype=np.float64)
        if not self.fitted:
            return np.full(values.shape, np.nan)
        scale2 = self.W_scale**2
        return scale2 * marchenko_pastur_density(values * scale2, self.Q, self.sigma)


def marchenko_pastur_density(x: npt.ArrayLike, Q: float, sigma: float = 1.0) -> FloatArray:
    """MP density √((x₊ − x)(x − x₋)) / (2π σ² x / Q) on [x₋, x₊], 0 elsewhere (Q ≥ 1)."""
    values = np.asarray(x, dtype=np.float64)
    y = 1.0 / Q
    upper = (sigma * (1.0 + math.sqrt(y))) ** 2
    lower = (sigma * (1.0 - math.sqrt(y))) ** 2
    inside = (values > lower) & (values < upper) & (values > 0)
    out = np.zeros(values.shape)
    v = values[inside]
    out[inside] = np.sqrt((upper - v) * (v - lower)) / (2.0 * math.pi * sigma * sigma * v * y)
    return out


def quarter_circle_density(nu: npt.ArrayLike, sigma: float = 1.0) -> FloatArray:
    """Quarter-circle density √(4σ² − ν²) / (πσ²) of singular values on [0, 2σ], 0 elsewhere."""
    values = np.asarray(nu, dtype=np.float64)
    inside = (values >= 0) & (values < 2.0 * sigma)
    out = np.zeros(values.shape)
    v = values[inside]
    out[inside] = np.sqrt(4.0 * sigma * sigma - v * v) / (math.pi * sigma * sigma)
    return out


def linear_kernel_density(
    sample: npt.ArrayLike, points: npt.ArrayLike, bandwidth: float
) -> FloatArray:
    """Kernel density estimate with the linear kernel K(u) = max(0, 1 − |u|) at ``points``.

    f̂(g) = Σᵢ max(0, 1 − |g − xᵢ|/h) / (n h), from prefix sums of the sorted sample
    (O((n + G) log n), no n × G matrix).
    """
    x = np.sort(np.asarray(sample, dtype=np.float64).reshape(-1))
    g = np.asarray(points, dtype=np.float64).reshape(-1)
    h = float(bandwidth)
    prefix = np.concatenate(([0.0], np.cumsum(x)))
    lo = np.searchsorted(x, g - h, side="right")  # first xᵢ > g − h
    mid = np.searchsorted(x, g, side="right")  # first xᵢ > g
    hi = np.searchsorted(x, g + h, side="left")  # first xᵢ ≥ g + h
    n_left = (mid - lo).astype(np.float64)
    n_right = (hi - mid).astype(np.float64)
    left = n_left - (n_left * g - (prefix[mid] - prefix[lo])) / h
    right = n_right - ((prefix[hi] - prefix[mid]) - n_right * g) / h
    density: FloatArray = np.clip(left + right, 0.0, None) / (x.size * h)
    return density


def _failed(
    status: MPFitStatus,
    reason: str,
    n: int,
    N: int,
    M: int,
    lambda_max: float = math.nan,
    w_scale: float = math.nan,
) -> MarchenkoPasturFit:
    nan = math.nan
    Q = N / M if M else nan
    law = "QC" if Q == 1.0 else "MP"
    return MarchenkoPasturFit(
        nan, Q, N, M, w_scale, nan, nan, nan, 0, nan, lambda_max, law, nan, n, status, reason
    )


def fit_marchenko_pastur(
    eigenvalues: npt.ArrayLike,
    *,
    N: int,
    M: int,
    bandwidth: float = DEFAULT_BANDWIDTH,
    grid_points: int = DEFAULT_GRID_POINTS,
    density_floor: float = DEFAULT_DENSITY_FLOOR,
) -> MarchenkoPasturFit:
    """Fit the Marchenko–Pastur law to the bulk of an ESD (see the module docstring).

    The reference tool's fit of the whole ESD first; where no σ is admissible there (a few
    spikes so large that the mean-1 normalisation squeezes the bulk under the bandwidth),
    the fit of the bulk alone (:func:`_fit_bulk`, ``trimmed`` > 0).

    Args:
        eigenvalues: the ESD, λ ≥ 0 (any order, any positive scale; pooled conv slices too).
        N, M: shape of each matrix, N ≥ M ≥ 1 (Q = N/M; M sets the Tracy–Widom margin).
        bandwidth: KDE bandwidth in mean-normalised units.
        grid_points: points of [0, max + 0.5] at which the density is estimated.
        density_floor: grid points with an estimated density ≤ this are left out.

    Returns:
        A :class:`MarchenkoPasturFit`; degenerate input gets a status, never an exception.

    Raises:
        ValueError: for N < M, M < 1, or non-positive bandwidth / grid_points.
    """
    for name, value in (("N", N), ("M", M)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    if N < M:
        raise ValueError(f"N must be ≥ M (orient the matrix N × M); got N={N}, M={M}")
    if not (isinstance(bandwidth, int | float) and math.isfinite(bandwidth) and bandwidth > 0):
        raise ValueError(f"bandwidth must be a positive number; got {bandwidth!r}")
    if isinstance(grid_points, bool) or not isinstance(grid_points, int) or grid_points < 2:
        raise ValueError(f"grid_points must be an integer ≥ 2; got {grid_points!r}")
    N, M = int(N), int(M)
    evals = np.sort(np.asarray(eigenvalues, dtype=np.float64).reshape(-1))
    n = int(evals.size)
    if n < 2:
        return _failed(MPFitStatus.TOO_FEW_POINTS, f"{n} eigenvalue(s); need at least 2", n, N, M)
    bad = ~np.isfinite(evals) | (evals < 0)
    if bad.any():
        reason = f"{int(bad.sum())} of {n} eigenvalues are negative or not finite"
        return _failed(MPFitStatus.INVALID_VALUES, reason, n, N, M)
    if evals[0] == evals[-1]:
        return _failed(MPFitStatus.CONSTANT, "all eigenvalues are equal", n, N, M, float(evals[-1]))
    settings = _Settings(bandwidth, grid_points, density_floor)
    fit = _fit_normalised(evals, evals, N, M, settings)
    if fit.status is MPFitStatus.NO_ADMISSIBLE_SIGMA:
        return _fit_bulk(evals, N, M, settings, fit)
    return fit


@dataclass(frozen=True)
class _Settings:
    bandwidth: float
    grid_points: int
    density_floor: float


def _fit_normalised(
    evals: FloatArray, fitted: FloatArray, N: int, M: int, settings: _Settings
) -> MarchenkoPasturFit:
    """Steps 1–5 on ``fitted`` (sorted, not constant): its spikes counted among ``evals``.

    ``fitted`` is ``evals`` for the reference tool's fit, the bulk alone for :func:`_fit_bulk`;
    W_scale normalises ``fitted`` to mean 1, and the Tracy–Widom margin is taken in those units.
    """
    n, Q = int(fitted.size), N / M
    lambda_max = float(evals[-1])
    # step 1, in the reference's order of operations
    w_scale = math.sqrt(n) / math.sqrt(float(np.sum(fitted)))
    x = (w_scale * w_scale) * fitted
    x_max = float(np.max(x))
    quarter_circle = Q == 1.0
    sample = np.sqrt(x) if quarter_circle else x
    # step 2: one density estimate
    grid = np.linspace(0.0, float(np.max(sample)) + 0.5, settings.grid_points)
    estimate = linear_kernel_density(sample, grid, settings.bandwidth)
    keep = estimate > settings.density_floor
    xs, ys = grid[keep], estimate[keep]
    n_all = int(evals.size)
    if xs.size == 0:
        reason = f"the density estimate is ≤ {settings.density_floor} everywhere"
        return _failed(MPFitStatus.NO_ADMISSIBLE_SIGMA, reason, n_all, N, M, lambda_max, w_scale)
    peak = float(xs[int(np.argmax(ys))])
    support_end = float(xs[-1])
    inv_sqrt_q = 1.0 / math.sqrt(Q)

    def objective(theta: npt.ArrayLike) -> float:
        sigma = float(np.asarray(theta, dtype=np.float64).reshape(-1)[0])
        if quarter_circle:
            model = quarter_circle_density(xs, sigma)
        else:
            upper = (sigma * (1.0 + math.sqrt(1.0 / Q))) ** 2
            lower = (sigma * (1.0 - math.sqrt(1.0 / Q))) ** 2
            if upper < peak or upper > support_end or lower > peak:
                return _PENALTY * _PENALTY * xs.size
            model = marchenko_pastur_density(xs, Q, sigma)
        return float(np.sum((model - ys) ** 2))

    # step 3: grid over σ, then Nelder–Mead from the best grid point
    s = math.sqrt(x_max / (1.0 + inv_sqrt_q) ** 2)
    start, stop, step = SIGMA_GRID
    sigmas = np.mgrid[slice(start * s, stop * s, step * s)]
    values = np.array([objective(v) for v in sigmas])
    best = int(np.argmin(values))
    if not quarter_circle and values[best] >= _PENALTY * _PENALTY * xs.size:
        reason = "no σ puts the MP bulk edges around the peak of the ESD"
        return _failed(MPFitStatus.NO_ADMISSIBLE_SIGMA, reason, n_all, N, M, lambda_max, w_scale)
    from scipy.optimize import fmin  # scipy.optimize is slow to import; only when fitting

    polished = fmin(objective, np.array([sigmas[best]]), full_output=True, disp=False)
    sigma = float(np.asarray(polished[0]).reshape(-1)[0])
    residual = float(polished[1])
    # steps 4 and 5, in normalised units, then back to the units of λ
    upper = (sigma * (1.0 + inv_sqrt_q)) ** 2
    lower = (sigma * (1.0 - inv_sqrt_q)) ** 2
    tracy_widom = inv_sqrt_q * upper ** (2.0 / 3.0) * M ** (-2.0 / 3.0)
    edge = upper + math.sqrt(tracy_widom)
    scale2 = w_scale * w_scale
    return MarchenkoPasturFit(
        sigma=sigma,
        Q=Q,
        N=N,
        M=M,
        W_scale=w_scale,
        bulk_min=lower / scale2,
        bulk_max=upper / scale2,
        spike_edge=edge / scale2,
        num_spikes=int(np.count_nonzero(scale2 * evals > edge)),
        softrank=upper / (scale2 * lambda_max),
        lambda_max=lambda_max,
        law="QC" if quarter_circle else "MP",
        residual=residual,
        n=n_all,
        status=MPFitStatus.FITTED,
    )


def marchenko_pastur_median(Q: float) -> float:
    """The median of the MP law with aspect ratio Q ≥ 1 and σ = 1 (numerically, to ~1e-9).

    With x = x₋ + (x₊ − x₋)(1 − cos θ)/2 the density times dx is
    ((x₊ − x₋)/2)² sin²θ / (2π x y) dθ (y = 1/Q), smooth on [0, π] (also at x₋ = 0 for Q = 1);
    its cumulative trapezoid sum is inverted by linear interpolation.
    """
    y = 1.0 / Q
    lower, upper = (1.0 - math.sqrt(y)) ** 2, (1.0 + math.sqrt(y)) ** 2
    theta = np.linspace(0.0, math.pi, 20001)
    x = lower + (upper - lower) * (1.0 - np.cos(theta)) / 2.0
    half = (upper - lower) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(x > 0, half * half * np.sin(theta) ** 2 / (2.0 * math.pi * x * y), 0.0)
    if lower == 0.0:  # the limit at θ = 0: sin²θ / x → 4 / x₊
        f[0] = half * half * 4.0 / upper / (2.0 * math.pi * y)
    cdf = np.concatenate(([0.0], np.cumsum((f[1:] + f[:-1]) * np.diff(theta) / 2.0)))
    return float(np.interp(0.5 * cdf[-1], cdf, x))


def _fit_bulk(
    evals: FloatArray, N: int, M: int, settings: _Settings, whole: MarchenkoPasturFit
) -> MarchenkoPasturFit:
    """The MP fit of the bulk alone, where the fit of the whole ESD has no admissible σ.

    A few very large eigenvalues (planted entries, correlation traps) can carry most of Σλ:
    normalised to mean 1, the bulk then lies below the KDE bandwidth and no σ is admissible.
    The bulk is found from the median, which spikes barely move (robust while they are fewer
    than half the eigenvalues): σ̂² = median(λ) / median(MP(Q, 1)); the eigenvalues above
    σ̂²(1 + 1/√Q)² plus the Tracy–Widom margin (in units of σ̂²) are left out, and steps 1–5
    are made on the rest (so W_scale normalises the bulk to mean 1 and the margin is in those
    units). The fit is reported as the whole ESD's would be: ``W_scale`` and ``sigma`` in the
    whole ESD's normalisation (σ = √variance · W_scale), the edges in the units of λ, the
    spikes counted among all the eigenvalues, and ``trimmed`` = the eigenvalues left out.
    """
    Q = N / M
    sigma2 = float(np.median(evals)) / marchenko_pastur_median(Q)
    if not sigma2 > 0:
        reason = f"{whole.reason}; the median eigenvalue is 0, so no bulk can be found"
        return replace(whole, reason=reason)
    upper = (1.0 + 1.0 / math.sqrt(Q)) ** 2
    edge = upper + math.sqrt(upper ** (2.0 / 3.0) * M ** (-2.0 / 3.0) / math.sqrt(Q))
    bulk = evals[evals <= edge * sigma2]
    if bulk.size < 2 or bulk[0] == bulk[-1]:
        reason = f"{whole.reason}; the bulk under the median's MP edge has {bulk.size} values"
        return replace(whole, reason=reason)
    fit = _fit_normalised(evals, bulk, N, M, settings)
    if not fit.fitted:
        return replace(whole, reason=f"{whole.reason}; the bulk alone: {fit.reason}")
    return replace(
        fit,
        sigma=math.sqrt(fit.variance) * whole.W_scale,
        W_scale=whole.W_scale,
        trimmed=int(evals.size - bulk.size),
    )


__all__ = [
    "MPFitStatus",
    "MarchenkoPasturFit",
    "fit_marchenko_pastur",
    "linear_kernel_density",
    "marchenko_pastur_density",
    "marchenko_pastur_median",
    "quarter_circle_density",
]
