"""Power-law fit of a distribution tail (Clauset, Shalizi & Newman 2009, §3).

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

Two more conventions reproduce two other tools (details and formulas in
:mod:`alphahat.fit._conventions`); both take the distinct values as x_min candidates:

* ``"clauset"`` — Clauset's ``plfit.m`` / the plfit C library (ntamas/plfit) in exhaustive
  mode. Continuous: every distinct value but the largest, α̂ = 1 + n/Σ ln(x/x_min), D over
  every sorted tail point (duplicates included) against k/n, k = 0 … n − 1. Discrete
  (``discrete=True``): the exact discrete MLE (:mod:`alphahat.fit._discrete`), D over the
  distinct tail values of |P̂(X < u) − P(X < u)|, P(X < u) = 1 − ζ(α, u)/ζ(α, x_min), and
  plfit's discrete candidate rule (the two largest distinct values are never candidates).
  σ is (α − 1)/√n_tail for continuous fits and the Fisher-information form
  1/√(n_tail ∂²ln ζ/∂α²) (Clauset et al. eq. 3.6) for discrete ones.
* ``"powerlaw"`` — the ``powerlaw`` package 2.0.0 with ``parameter_ranges={'alpha': [1, 10]}``
  (its default range [0, 3] silently rejects steeper tails): the two largest distinct values
  are never candidates; α is the closed form when it lies in (1.5, 3] (for discrete data the
  approximation 1 + n/Σ ln(x/(x_min − ½)) when x_min ≥ 10), else the stopping point of that
  package's SciPy Nelder–Mead run (replicated iterate by iterate); D compares the left limits
  P(X < u) of the model and of the renormalised empirical CDF at the distinct tail values.
  σ is that package's (α − 1)/√n_tail, for discrete fits too.

``finite_size=True`` reports α = 1 + (n_tail − 1)/Σ ln(x/x_min) for the selected tail
(continuous fits); ``min_tail`` drops candidates with fewer tail points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cached_property
from typing import Literal

import numpy as np
import numpy.typing as npt

from alphahat.fit._conventions import clauset_fits, powerlaw_fits
from alphahat.fit._discrete import discrete_sigma
from alphahat.fit._ks_search import GapTerms, SortedTailTerms, search_terms

FloatArray = npt.NDArray[np.float64]

Convention = Literal["reference", "clauset", "powerlaw"]
CONVENTIONS: tuple[str, ...] = ("reference", "clauset", "powerlaw")

#: Below this many points the reference tool uses its small-sample rule.
REFERENCE_SMALL_N = 20
#: Shortest tail the small-sample rule accepts.
REFERENCE_SMALL_N_MIN_TAIL = 8
#: Below this Σ ln(x/x_min) the small-sample rule treats a tail as degenerate.
REFERENCE_SMALL_N_DEGENERATE_LOG_SUM = 1e-12
XminPolicy = Literal["ks", "peak"]
XMIN_POLICIES: tuple[str, ...] = ("ks", "peak")
XmaxPolicy = Literal["clip"]
#: ``xmax="clip"`` defaults: the reference tool's max_fingers and finger_thresh.
DEFAULT_MAX_FINGERS = 10
DEFAULT_FINGER_THRESHOLD = 1.0
#: ``xmin="peak"``: histogram bins of log₁₀ x and the lower end of the window (× peak).
DEFAULT_PEAK_BINS = 100
PEAK_WINDOW_LOW = 0.95
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
        discrete: whether the discrete power law p(x) = x^(−α)/ζ(α, x_min) was fitted.
        xmins, alphas: per-candidate x_min and α (for diagnostics plots); NaN where a
            candidate was not admissible.
        searched_Ds: per-candidate D where the fit computed it: every admissible candidate
            with ``all_distances=True``; by default only those the exact pruned search did
            not rule out (NaN for the others). See :attr:`Ds` for all of them.
        pending_Ds: what :attr:`Ds` needs to compute the ruled-out candidates' D (``None``
            when ``searched_Ds`` is complete).
        num_clipped: values above x_max left out (``xmax`` policy).
        raw_alpha: α before finger clipping (``xmax="clip"``), else NaN.
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
    discrete: bool = False
    num_clipped: int = 0
    raw_alpha: float = float("nan")
    xmins: FloatArray = field(default_factory=_empty, repr=False, compare=False)
    alphas: FloatArray = field(default_factory=_empty, repr=False, compare=False)
    searched_Ds: FloatArray = field(default_factory=_empty, repr=False, compare=False)
    pending_Ds: PendingDistances | None = field(default=None, repr=False, compare=False)

    @property
    def fitted(self) -> bool:
        """True when the fit succeeded."""
        return self.status is FitStatus.FITTED

    @cached_property
    def Ds(self) -> FloatArray:
        """Every admissible candidate's KS distance D (NaN for inadmissible candidates).

        The candidates the pruned search ruled out are computed on first access, exactly as
        the exhaustive search computes them (bitwise; O(Σ n_tail) work, so minutes for 10⁵
        points). ``searched_Ds`` holds only what the fit itself computed.
        """
        if self.pending_Ds is None:
            return self.searched_Ds
        return self.pending_Ds.complete(self.searched_Ds)


@dataclass(frozen=True)
class PendingDistances:
    """The D values a pruned search did not compute, to compute on demand.

    Attributes:
        terms: the KS gap terms of the candidates.
        rows: terms rows whose D is missing.
        positions: where those D go in the per-candidate vector.
        chunk_elements: block size of the computation.
    """

    terms: GapTerms
    rows: npt.NDArray[np.intp]
    positions: npt.NDArray[np.intp]
    chunk_elements: int

    def complete(self, searched: FloatArray) -> FloatArray:
        """``searched`` with the missing D filled in (a new read-only array)."""
        out = np.array(searched, dtype=np.float64)
        found = search_terms(
            self.terms, self.rows, chunk_elements=self.chunk_elements, exhaustive=True
        )
        out[self.positions] = found.Ds
        return _readonly(out)


def _candidate_distances(
    terms: GapTerms,
    rows: npt.NDArray[np.intp],
    positions: npt.NDArray[np.intp],
    size: int,
    chunk_elements: int,
    all_distances: bool,
) -> tuple[FloatArray, PendingDistances | None]:
    """D of the candidates ``rows`` of ``terms``, placed at ``positions`` of a vector of ``size``.

    Exhaustive with ``all_distances``; else the exact pruned search, whose minimum is the
    exhaustive one bit for bit, with what it left out returned as :class:`PendingDistances`.
    """
    Ds = np.full(size, np.nan)
    if rows.size == 0:
        return Ds, None
    found = search_terms(terms, rows, chunk_elements=chunk_elements, exhaustive=all_distances)
    Ds[positions] = found.Ds  # NaN where the exact search ruled a candidate out
    missing = ~found.exact
    if not missing.any():
        return Ds, None
    return Ds, PendingDistances(terms, rows[missing], positions[missing], chunk_elements)


def _failed(
    status: FitStatus,
    reason: str,
    x: FloatArray,
    convention: str,
    n: int | None = None,
    discrete: bool = False,
) -> PowerLawFit:
    """A non-fitted result: NaN parameters; ``xmax`` only when every value is valid."""
    valid = status is not FitStatus.INVALID_VALUES and x.size > 0
    xmax = float(x[-1]) if valid else float("nan")
    nan = float("nan")
    size = int(x.size) if n is None else n
    return PowerLawFit(nan, nan, xmax, nan, nan, 0, size, status, reason, convention, discrete)


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
    discrete: bool = False,
    convention: Convention = "reference",
    finite_size: bool = False,
    min_tail: int | None = None,
    xmin: float | XminPolicy = "ks",
    xmin_max: float | None = None,
    xmax: float | XmaxPolicy | None = None,
    max_fingers: int = DEFAULT_MAX_FINGERS,
    finger_threshold: float = DEFAULT_FINGER_THRESHOLD,
    peak_bins: int = DEFAULT_PEAK_BINS,
    all_distances: bool = False,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> PowerLawFit:
    """Fit a power law ρ(x) ∝ x^(−α), x ≥ x_min, to the tail of a sample.

    Args:
        x: 1-D sample of positive finite values (any order; it is sorted here); integers
            (stored in any dtype) when ``discrete``.
        discrete: fit the discrete power law p(x) = x^(−α) / ζ(α, x_min) on the integers
            x ≥ x_min (ζ the Hurwitz zeta function) instead of the continuous one.
        convention: candidate set, estimator and KS convention, each reproducing one tool:
            ``"reference"`` the weightwatcher 0.7.7 fitter (module docstring; continuous
            only), ``"clauset"`` Clauset's ``plfit.m`` / the plfit C library in exhaustive
            mode, ``"powerlaw"`` the ``powerlaw`` package 2.0 with
            ``parameter_ranges={'alpha': [1, 10]}`` (see :mod:`alphahat.fit._conventions`).
        finite_size: report the finite-size corrected exponent
            α = 1 + (n_tail − 1) / Σ ln(x / x_min) of the selected tail (plfit's ``finite``
            option, applied after x_min is chosen; continuous fits only). x_min, D and the
            per-candidate diagnostics are those of the uncorrected fits.
        min_tail: if given, candidates whose tail holds fewer points are not admissible.
        xmin: how x_min is chosen. ``"ks"``: the candidate of minimum KS distance D.
            ``"peak"``: minimum D among candidates in [0.95·p, 1.5·p] (upper end ``xmin_max``
            when given), p the left edge of the fullest of ``peak_bins`` equal bins of
            log₁₀ x — the reference tool's ``xmin_peak`` with both bounds in the units of x
            (the reference mixes a log₁₀ lower bound with a linear upper one). A number:
            x_min fixed at the smallest sample value ≥ it.
        xmin_max: with ``"ks"`` or ``"peak"``, candidates above it are not admissible.
        xmax: ``None``: the whole sample. A number: values above it are left out before
            fitting (``num_clipped`` counts them). ``"clip"``: finger clipping — refit without
            the top k = 1, 2, … ``max_fingers`` values and keep the first fit whose α is lower
            than the unclipped α by more than ``finger_threshold``; ``num_clipped`` = k
            values actually dropped (the reference tool reports k − 1 and never tries k = 1),
            ``raw_alpha`` the unclipped α. No such k: the unclipped fit.
        max_fingers, finger_threshold: the limits of ``xmax="clip"``.
        peak_bins: histogram bins of ``xmin="peak"``.
        all_distances: compute D for every admissible candidate (for diagnostics plots).
            By default every convention finds the minimum-D candidate by an exact pruned
            search (:mod:`alphahat.fit._ks_search`: lower bounds from a few
            tail points rule candidates out; the result is bitwise that of the exhaustive
            search); ``searched_Ds`` is NaN where a candidate was ruled out, and ``Ds``
            computes those on first access.
        chunk_elements: bound on float64 elements per block of the KS computation.

    Returns:
        A :class:`PowerLawFit`; never raises on degenerate data, which gets a status instead.

    Raises:
        ValueError: for an unknown ``convention``, a non-positive ``chunk_elements`` or
            ``min_tail``, ``finite_size`` with ``discrete``, or ``discrete`` with the
            ``"reference"`` convention (that tool has no discrete fit).
    """
    if convention not in CONVENTIONS:
        raise ValueError(
            f"convention must be one of {', '.join(map(repr, CONVENTIONS))}; got {convention!r}"
        )
    if isinstance(chunk_elements, bool) or not isinstance(chunk_elements, int | np.integer):
        raise ValueError(f"chunk_elements must be a positive integer; got {chunk_elements!r}")
    if chunk_elements < 1:
        raise ValueError(f"chunk_elements must be a positive integer; got {chunk_elements!r}")
    if not isinstance(discrete, bool | np.bool_):
        raise ValueError(f"discrete must be True or False; got {discrete!r}")
    if not isinstance(all_distances, bool | np.bool_):
        raise ValueError(f"all_distances must be True or False; got {all_distances!r}")
    if not isinstance(finite_size, bool | np.bool_):
        raise ValueError(f"finite_size must be True or False; got {finite_size!r}")
    if min_tail is not None and (
        isinstance(min_tail, bool) or not isinstance(min_tail, int | np.integer) or min_tail < 1
    ):
        raise ValueError(f"min_tail must be None or a positive integer; got {min_tail!r}")
    _check_policies(xmin, xmin_max, xmax, max_fingers, finger_threshold, peak_bins)
    discrete = bool(discrete)
    if discrete and convention == "reference":
        raise ValueError(
            "discrete=True needs convention 'clauset' or 'powerlaw'; the 'reference' tool "
            "(weightwatcher 0.7.7) has no discrete fit"
        )
    if discrete and finite_size:
        raise ValueError("finite_size=True applies to continuous fits only; got discrete=True")
    data = np.sort(np.asarray(x, dtype=np.float64).reshape(-1))
    options = _SampleOptions(
        discrete,
        convention,
        finite_size,
        min_tail,
        xmin,
        xmin_max,
        peak_bins,
        bool(all_distances),
        chunk_elements,
    )
    if xmax is None:
        return _fit_sample(data, options)
    if xmax == "clip":
        return _clip_fingers(data, options, max_fingers, finger_threshold)
    kept = data[~(data > xmax)]  # NaN stays, to be reported by the checks below
    return replace(_fit_sample(kept, options), num_clipped=int(data.size - kept.size))


@dataclass(frozen=True)
class _SampleOptions:
    discrete: bool
    convention: str
    finite_size: bool
    min_tail: int | None
    xmin: float | str
    xmin_max: float | None
    peak_bins: int
    all_distances: bool
    chunk_elements: int


def _check_policies(
    xmin: object,
    xmin_max: object,
    xmax: object,
    max_fingers: object,
    finger_threshold: object,
    peak_bins: object,
) -> None:
    def number(value: object) -> bool:
        return (
            isinstance(value, int | float | np.integer | np.floating)
            and not isinstance(value, bool)
            and math.isfinite(float(value))
            and float(value) > 0
        )

    def count(value: object) -> bool:
        return bool(
            isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= 1
        )

    if not (xmin in XMIN_POLICIES or number(xmin)):
        raise ValueError(
            f"xmin must be one of {', '.join(map(repr, XMIN_POLICIES))} or a positive number; "
            f"got {xmin!r}"
        )
    if xmin_max is not None and not number(xmin_max):
        raise ValueError(f"xmin_max must be None or a positive number; got {xmin_max!r}")
    if not (xmax is None or xmax == "clip" or number(xmax)):
        raise ValueError(f"xmax must be None, 'clip' or a positive number; got {xmax!r}")
    if not count(max_fingers):
        raise ValueError(f"max_fingers must be a positive integer; got {max_fingers!r}")
    if not number(finger_threshold):
        raise ValueError(f"finger_threshold must be a positive number; got {finger_threshold!r}")
    if not count(peak_bins):
        raise ValueError(f"peak_bins must be a positive integer; got {peak_bins!r}")


def esd_peak(x: FloatArray, bins: int = DEFAULT_PEAK_BINS) -> float:
    """Left edge (in the units of x) of the fullest of ``bins`` equal bins of log₁₀ x."""
    counts, edges = np.histogram(np.log10(x), bins=bins)
    return float(10.0 ** edges[int(np.argmax(counts))])


def _xmin_range(data: FloatArray, options: _SampleOptions) -> tuple[float, float, bool]:
    """(low, high, fixed): admissible x_min values; ``fixed`` keeps only the first ≥ low."""
    high = math.inf if options.xmin_max is None else float(options.xmin_max)
    if options.xmin == "peak":
        peak = esd_peak(data, options.peak_bins)
        high = 1.5 * peak if options.xmin_max is None else high
        return PEAK_WINDOW_LOW * peak, high, False
    if options.xmin == "ks":
        return 0.0, high, False
    return float(options.xmin), math.inf, True


def _allowed(xmins: FloatArray, n_tail: FloatArray, limits: _Limits) -> npt.NDArray[np.bool_]:
    """Candidates admissible under ``min_tail`` and the x_min range of the policy."""
    allowed = (xmins >= limits.low) & (xmins <= limits.high)
    if limits.fixed and allowed.any():
        first = int(np.argmax(allowed))
        allowed = np.zeros_like(allowed)
        allowed[first] = True
    if limits.min_tail is not None:
        allowed &= n_tail >= limits.min_tail
    return allowed


@dataclass(frozen=True)
class _Limits:
    low: float
    high: float
    fixed: bool
    min_tail: int | None

    @property
    def restricted(self) -> bool:
        return self.fixed or self.low > 0 or math.isfinite(self.high)

    def describe(self) -> str:
        parts = []
        if self.fixed:
            parts.append(f"x_min fixed at ≥ {self.low:g}")
        elif self.low > 0 or math.isfinite(self.high):
            parts.append(f"x_min in [{self.low:g}, {self.high:g}]")
        if self.min_tail is not None:
            parts.append(f"at least min_tail={self.min_tail} tail points")
        return " with " + " and ".join(parts) if parts else ""


def _clip_fingers(
    data: FloatArray, options: _SampleOptions, max_fingers: int, threshold: float
) -> PowerLawFit:
    first = _fit_sample(data, options)
    if not first.fitted:
        return first
    for k in range(1, min(max_fingers, data.size - MIN_POINTS) + 1):
        fit = _fit_sample(data[: data.size - k], options)
        if not fit.fitted:
            break
        if fit.alpha + threshold < first.alpha:
            return replace(fit, num_clipped=k, raw_alpha=first.alpha)
    return replace(first, raw_alpha=first.alpha)


def _fit_sample(data: FloatArray, options: _SampleOptions) -> PowerLawFit:
    """Fit a sorted sample under validated options (no x_max policy)."""
    discrete, convention = options.discrete, options.convention
    finite_size, chunk_elements = options.finite_size, options.chunk_elements
    bad = ~np.isfinite(data) | (data <= 0)
    if bad.any():
        return _failed(
            FitStatus.INVALID_VALUES,
            f"{int(bad.sum())} of {data.size} values are not finite and positive",
            data[~bad],
            convention,
            n=int(data.size),
            discrete=discrete,
        )
    if discrete:
        fractional = data != np.round(data)
        if fractional.any():
            return _failed(
                FitStatus.INVALID_VALUES,
                f"discrete=True needs integer values; {int(fractional.sum())} of {data.size} "
                "are not integers",
                data,
                convention,
                n=int(data.size),
                discrete=True,
            )
    if data.size < MIN_POINTS:
        return _failed(
            FitStatus.TOO_FEW_POINTS,
            f"{data.size} point(s); a power-law fit needs at least {MIN_POINTS}",
            data,
            convention,
            discrete=discrete,
        )
    if data[0] == data[-1]:
        return _failed(FitStatus.CONSTANT, "all values are equal", data, convention, None, discrete)
    low, high, fixed = _xmin_range(data, options)
    limits = _Limits(low, high, fixed, options.min_tail)
    if convention == "reference":
        if data.size < REFERENCE_SMALL_N:
            fit = _fit_reference_small_n(data, chunk_elements, limits)
        else:
            fit = _fit_reference(data, chunk_elements, limits, options.all_distances)
    else:
        fits = (clauset_fits if convention == "clauset" else powerlaw_fits)(data, discrete)
        if fits.reason or fits.terms is None:  # no candidate (for "powerlaw": fewer than 2)
            return _failed(FitStatus.NO_VALID_XMIN, fits.reason, data, convention, None, discrete)
        n_tail = fits.n_tail.astype(np.float64)
        # D only where it can be chosen: a finite α, within the x_min range and min_tail.
        rows = np.flatnonzero(np.isfinite(fits.alphas) & _allowed(fits.xmins, n_tail, limits))
        Ds, pending = _candidate_distances(
            fits.terms, rows, rows, fits.alphas.size, chunk_elements, options.all_distances
        )
        fit = _select(
            data,
            fits.xmins,
            fits.alphas,
            Ds,
            n_tail,
            convention=convention,
            discrete=discrete,
            limits=limits,
            pending=pending,
        )
        if fit.fitted and discrete and convention == "clauset":
            fit = replace(fit, sigma=discrete_sigma(fit.alpha, fit.xmin, fit.n_tail))
    if finite_size and fit.fitted:
        tail = data[data.size - fit.n_tail :]
        alpha = 1.0 + (fit.n_tail - 1.0) / float(np.sum(np.log(tail / fit.xmin)))
        fit = replace(fit, alpha=alpha, sigma=(alpha - 1.0) / float(np.sqrt(fit.n_tail)))
    return fit


def _tail_log_sums(log_x: FloatArray) -> FloatArray:
    """s_i = Σ_{j≥i} ln(xⱼ/xᵢ) for every i, by suffix sums of logs shifted to start at 0."""
    shifted = log_x - log_x[0]
    suffix = np.cumsum(shifted[::-1])[::-1]
    n_tail = np.arange(log_x.size, 0, -1, dtype=np.float64)
    return np.asarray(suffix - n_tail * shifted, dtype=np.float64)


def _fit_reference(
    data: FloatArray, chunk_elements: int, limits: _Limits, all_distances: bool
) -> PowerLawFit:
    n = data.size
    log_x = np.log(data)
    candidates = np.arange(n - 1)
    n_tail = (n - candidates).astype(np.float64)
    log_sums = _tail_log_sums(log_x)[:-1]
    alphas = np.full(n - 1, np.nan)
    # A tail of identical values (x_i = x_max) has no exponent; test it exactly, not through
    # the rounded log-sum, which can come out a hair above 0.
    admissible = (data[:-1] < data[-1]) & (log_sums > 0)
    admissible &= _allowed(data[:-1], n_tail, limits)  # D only where it can be chosen
    alphas[admissible] = 1.0 + n_tail[admissible] / log_sums[admissible]
    idx = candidates[admissible]
    terms = SortedTailTerms(log_x, idx, alphas[admissible])
    rows = np.arange(idx.size, dtype=np.intp)
    Ds, pending = _candidate_distances(terms, rows, idx, n - 1, chunk_elements, all_distances)
    return _select(data, data[candidates], alphas, Ds, n_tail, limits=limits, pending=pending)


def _fit_reference_small_n(data: FloatArray, chunk_elements: int, limits: _Limits) -> PowerLawFit:
    n = data.size
    log_x = np.log(data)
    candidates = np.arange(n - 1)
    n_tail = (n - candidates).astype(np.float64)
    log_sums = _tail_log_sums(log_x)[:-1]
    admissible = (
        (n_tail >= REFERENCE_SMALL_N_MIN_TAIL)
        & (data[:-1] < data[-1])
        & (log_sums > REFERENCE_SMALL_N_DEGENERATE_LOG_SUM)
        & _allowed(data[:-1], n_tail, limits)
    )
    if not admissible.any() and not limits.restricted:
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
    return _select(data, data[candidates], alphas, Ds, n_tail, limits=limits)


def _select(
    data: FloatArray,
    xmins: FloatArray,
    alphas: FloatArray,
    Ds: FloatArray,
    n_tail: FloatArray,
    *,
    convention: str = "reference",
    discrete: bool = False,
    limits: _Limits | None = None,
    pending: PendingDistances | None = None,
) -> PowerLawFit:
    """The candidate of minimum D (the first on ties); NaN D marks inadmissible candidates.

    Candidates outside ``limits`` (tail size, x_min range) are marked inadmissible (NaN) first.
    ``Ds`` may leave out candidates an exact pruned search ruled out (``pending`` has them):
    its minimum is the exhaustive one.
    """
    limits = limits or _Limits(0.0, math.inf, False, None)
    outside = ~_allowed(xmins, n_tail, limits)
    alphas = np.where(outside, np.nan, alphas)
    Ds = np.where(outside, np.nan, Ds)
    if not np.isfinite(Ds).any():
        reason = "no admissible x_min candidate" + limits.describe()
        return _failed(FitStatus.NO_VALID_XMIN, reason, data, convention, None, discrete)
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
        convention=convention,
        discrete=discrete,
        xmins=_readonly(xmins.copy()),
        alphas=_readonly(np.asarray(alphas, dtype=np.float64)),
        searched_Ds=_readonly(np.asarray(Ds, dtype=np.float64)),
        pending_Ds=pending,
    )
