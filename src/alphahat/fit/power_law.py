"""Continuous power-law fit of a distribution tail (Clauset, Shalizi & Newman 2009, §3).

For a sorted positive sample x₁ ≤ … ≤ xₙ and a candidate lower cut-off x_min = xᵢ, the tail
is T = {xⱼ : j ≥ i} with nᵢ = n − i points, and

* the maximum-likelihood exponent is   α̂ᵢ = 1 + nᵢ / Σ_{j≥i} ln(xⱼ / xᵢ)
* its standard error is                σᵢ = (α̂ᵢ − 1) / √nᵢ
* the Kolmogorov–Smirnov distance is   Dᵢ = max_k | F(x_{i+k}) − k / nᵢ |,
  with the fitted CDF F(x) = 1 − (x / xᵢ)^(1 − α̂ᵢ).

x_min is the candidate of smallest D (the first one on ties). All candidates are evaluated at
once with cumulative sums for α̂ and a chunked matrix for D, in float64, so memory stays bounded
(``chunk_elements`` doubles per block) and no Python loop runs per candidate.

``convention="reference"`` reproduces the fitter of the reference tool (weightwatcher 0.7.7,
``pl_package='ww'``) exactly: every sorted point but the last is a candidate (duplicates
kept), the empirical CDF is taken just before each point (k / nᵢ, k = 0 … nᵢ − 1), and for
samples of fewer than 20 points it switches, as that tool does, to its small-sample rule:
the bias-corrected exponent α̂ᵢ = 1 + (nᵢ − 1) / Σ ln(xⱼ / xᵢ), only tails of at least 8 points
(or, when none qualifies, the whole sample), and x_min of minimum D. (That tool's small-sample
code also computes an objective Dᵢ − 0.868/√nᵢ, but its caller then re-selects by minimum D,
which is what it reports; we reproduce what it reports.) Where that tool returns ±∞, −1 or a
made-up α for a degenerate sample, this function returns NaN fields and a non-``fitted``
status instead; and in the whole-sample fallback it reports σ = (α − 1)/√n where that tool
reports −1/√n (it fills σ before α).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

Convention = Literal["reference"]
CONVENTIONS: tuple[str, ...] = ("reference",)

#: Below this many points the reference tool uses its small-sample rule.
REFERENCE_SMALL_N = 20
#: Shortest tail the small-sample rule accepts.
REFERENCE_SMALL_N_MIN_TAIL = 8
#: Below this Σ ln(x/x_min) the small-sample rule treats a tail as degenerate.
REFERENCE_SMALL_N_DEGENERATE_LOG_SUM = 1e-12
#: A fit needs at least this many points.
MIN_POINTS = 3
#: Default bound on the number of float64 elements in one block of the D computation.
DEFAULT_CHUNK_ELEMENTS = 1 << 22


class FitStatus(StrEnum):
    """Outcome of a fit; every status but ``FITTED`` comes with NaN parameters."""

    FITTED = "fitted"
    TOO_FEW_POINTS = "too_few_points"
    CONSTANT = "constant"
    NO_VALID_XMIN = "no_valid_xmin"
    INVALID_VALUES = "invalid_values"


def _empty() -> FloatArray:
    return np.empty(0, dtype=np.float64)


@dataclass(frozen=True)
class PowerLawFit:
    """Result of :func:`fit_power_law`.

    Attributes:
        alpha: fitted exponent α of ρ(x) ∝ x^(−α) (NaN unless ``status`` is ``fitted``).
        xmin: lower cut-off of the power-law tail, in the units of the data.
        xmax: largest value of the sample.
        D: Kolmogorov–Smirnov distance between the tail and the fitted law (0…1).
        sigma: standard error of α, (α − 1)/√n_tail.
        n_tail: number of points ≥ xmin.
        n: number of points in the sample.
        status: :class:`FitStatus` of the fit.
        reason: why the fit is not ``fitted`` (empty when it is).
        convention: the candidate/CDF convention used.
        xmins, alphas, Ds: per-candidate x_min, α and D (for diagnostics plots); NaN where a
            candidate was not admissible.
    """

    alpha: float
    xmin: float
    xmax: float
    D: float
    sigma: float
    n_tail: int
    n: int
    status: FitStatus
    reason: str = ""
    convention: str = "reference"
    xmins: FloatArray = field(default_factory=_empty, repr=False, compare=False)
    alphas: FloatArray = field(default_factory=_empty, repr=False, compare=False)
    Ds: FloatArray = field(default_factory=_empty, repr=False, compare=False)

    @property
    def fitted(self) -> bool:
        """True when the fit succeeded."""
        return self.status is FitStatus.FITTED


def _failed(
    status: FitStatus, reason: str, x: FloatArray, convention: str, n: int | None = None
) -> PowerLawFit:
    """A non-fitted result: NaN parameters; ``xmax`` only when every value is valid."""
    valid = status is not FitStatus.INVALID_VALUES and x.size > 0
    xmax = float(x[-1]) if valid else float("nan")
    nan = float("nan")
    size = int(x.size) if n is None else n
    return PowerLawFit(nan, nan, xmax, nan, nan, 0, size, status, reason, convention)


def _readonly(a: FloatArray) -> FloatArray:
    a.setflags(write=False)
    return a


def _ks_distances(
    log_x: FloatArray,
    candidates: npt.NDArray[np.intp],
    alphas: FloatArray,
    chunk_elements: int,
) -> FloatArray:
    """D for each candidate index i: max_{j ≥ i} |1 − (xⱼ/xᵢ)^(1−αᵢ) − (j − i)/(n − i)|.

    Candidates must be increasing. Computed in blocks of rows so that no block holds more
    than about ``chunk_elements`` float64 values.
    """
    n = log_x.size
    out = np.full(candidates.size, np.nan)
    start = 0
    while start < candidates.size:
        first = int(candidates[start])
        width = n - first
        rows = max(1, chunk_elements // max(width, 1))
        stop = min(candidates.size, start + rows)
        idx = candidates[start:stop]
        offsets = np.arange(width, dtype=np.float64)  # j − first
        # k = j − i for each row; negative k (j < i) are outside the tail and masked out.
        shift = (idx - first).astype(np.float64)[:, None]
        k = offsets[None, :] - shift
        n_tail = (n - idx).astype(np.float64)[:, None]
        dlog = log_x[None, first:] - log_x[idx][:, None]
        with np.errstate(over="ignore", invalid="ignore"):
            fitted_cdf = 1.0 - np.exp((1.0 - alphas[start:stop])[:, None] * dlog)
            gap = np.abs(fitted_cdf - k / n_tail)
        gap[k < 0] = 0.0
        out[start:stop] = gap.max(axis=1)
        start = stop
    return out


def fit_power_law(
    x: npt.ArrayLike,
    *,
    convention: Convention = "reference",
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> PowerLawFit:
    """Fit a continuous power law ρ(x) ∝ x^(−α), x ≥ x_min, to the tail of a sample.

    Args:
        x: 1-D sample of positive finite values (any order; it is sorted here).
        convention: candidate set and empirical-CDF convention; ``"reference"`` is the
            weightwatcher 0.7.7 fitter (see the module docstring).
        chunk_elements: bound on float64 elements per block of the KS computation.

    Returns:
        A :class:`PowerLawFit`; never raises on degenerate data, which gets a status instead.
    """
    if convention not in CONVENTIONS:
        raise ValueError(
            f"convention must be one of {', '.join(map(repr, CONVENTIONS))}; got {convention!r}"
        )
    if chunk_elements < 1:
        raise ValueError(f"chunk_elements must be a positive integer; got {chunk_elements!r}")
    data = np.asarray(x, dtype=np.float64)
    if data.ndim != 1:
        data = data.reshape(-1)
    data = np.sort(data)
    bad = ~np.isfinite(data) | (data <= 0)
    if bad.any():
        return _failed(
            FitStatus.INVALID_VALUES,
            f"{int(bad.sum())} of {data.size} values are not finite and positive",
            data[~bad],
            convention,
            n=int(data.size),
        )
    if data.size < MIN_POINTS:
        return _failed(
            FitStatus.TOO_FEW_POINTS,
            f"{data.size} point(s); a power-law fit needs at least {MIN_POINTS}",
            data,
            convention,
        )
    if data[0] == data[-1]:
        return _failed(FitStatus.CONSTANT, "all values are equal", data, convention)
    if data.size < REFERENCE_SMALL_N:
        return _fit_reference_small_n(data, chunk_elements)
    return _fit_reference(data, chunk_elements)


def _tail_log_sums(log_x: FloatArray) -> FloatArray:
    """s_i = Σ_{j≥i} ln(xⱼ/xᵢ) for every i, by suffix sums of logs shifted to start at 0."""
    shifted = log_x - log_x[0]
    suffix = np.cumsum(shifted[::-1])[::-1]
    n_tail = np.arange(log_x.size, 0, -1, dtype=np.float64)
    return np.asarray(suffix - n_tail * shifted, dtype=np.float64)


def _fit_reference(data: FloatArray, chunk_elements: int) -> PowerLawFit:
    n = data.size
    log_x = np.log(data)
    candidates = np.arange(n - 1)
    n_tail = (n - candidates).astype(np.float64)
    log_sums = _tail_log_sums(log_x)[:-1]
    alphas = np.full(n - 1, np.nan)
    # A tail of identical values (x_i = x_max) has no exponent; test it exactly, not through
    # the rounded log-sum, which can come out a hair above 0.
    admissible = (data[:-1] < data[-1]) & (log_sums > 0)
    alphas[admissible] = 1.0 + n_tail[admissible] / log_sums[admissible]
    Ds = np.full(n - 1, np.nan)
    idx = candidates[admissible]
    if idx.size:
        Ds[admissible] = _ks_distances(log_x, idx, alphas[admissible], chunk_elements)
    return _select(data, candidates, alphas, Ds, n_tail)


def _fit_reference_small_n(data: FloatArray, chunk_elements: int) -> PowerLawFit:
    n = data.size
    log_x = np.log(data)
    candidates = np.arange(n - 1)
    n_tail = (n - candidates).astype(np.float64)
    log_sums = _tail_log_sums(log_x)[:-1]
    admissible = (
        (n_tail >= REFERENCE_SMALL_N_MIN_TAIL)
        & (data[:-1] < data[-1])
        & (log_sums > REFERENCE_SMALL_N_DEGENERATE_LOG_SUM)
    )
    if not admissible.any():
        # The reference tool falls back to the whole sample as the tail.
        admissible = np.zeros(n - 1, dtype=bool)
        admissible[0] = log_sums[0] > REFERENCE_SMALL_N_DEGENERATE_LOG_SUM
        if not admissible[0]:
            return _failed(
                FitStatus.NO_VALID_XMIN, "no tail with a positive log-spread", data, "reference"
            )
    alphas = np.full(n - 1, np.nan)
    alphas[admissible] = 1.0 + (n_tail[admissible] - 1.0) / log_sums[admissible]
    Ds = np.full(n - 1, np.nan)
    Ds[admissible] = _ks_distances(
        log_x, candidates[admissible], alphas[admissible], chunk_elements
    )
    return _select(data, candidates, alphas, Ds, n_tail)


def _select(
    data: FloatArray,
    candidates: npt.NDArray[np.intp],
    alphas: FloatArray,
    Ds: FloatArray,
    n_tail: FloatArray,
) -> PowerLawFit:
    """The candidate of minimum D (the first on ties); NaN D marks inadmissible candidates."""
    xmins = data[candidates]
    if not np.isfinite(Ds).any():
        return _failed(FitStatus.NO_VALID_XMIN, "no admissible x_min candidate", data, "reference")
    best = int(np.nanargmin(Ds))
    alpha = float(alphas[best])
    tail = int(n_tail[best])
    return PowerLawFit(
        alpha=alpha,
        xmin=float(xmins[best]),
        xmax=float(data[-1]),
        D=float(Ds[best]),
        sigma=(alpha - 1.0) / float(np.sqrt(tail)),
        n_tail=tail,
        n=int(data.size),
        status=FitStatus.FITTED,
        convention="reference",
        xmins=_readonly(xmins.copy()),
        alphas=_readonly(alphas),
        Ds=_readonly(Ds),
    )
