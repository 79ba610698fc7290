"""Per-candidate fits under the ``"clauset"`` and ``"powerlaw"`` conventions.

Both conventions take the distinct values u₁ < … < u_U of the sorted sample x₁ ≤ … ≤ x_N as
x_min candidates. For the candidate u_k let i_k be the index of its first occurrence, so the
tail is {xⱼ : j ≥ i_k}, with n_k = N − i_k points; let c(u) = #{j : xⱼ < u}. Everything is
evaluated for all candidates at once: tail sums by suffix sums, the KS distance in blocks of a
candidate × distinct-value matrix (at most ``chunk_elements`` float64 values per block).

Tail sums. S_k = Σ_{j≥i_k} ln(xⱼ/u_k) is computed as Σ_{t≥i_k} (N − 1 − t) ln(x_{t+1}/x_t), a
suffix sum of non-negative terms (no cancellation, relative error ≲ n_k ε);
L_k = Σ_{j≥i_k} ln xⱼ (discrete data, all ln xⱼ ≥ 0) likewise.

``"clauset"`` — Clauset's ``plfit.m`` and the plfit C library (ntamas/plfit) in exhaustive mode:

* continuous: candidates u₁ … u_{U−1} (every distinct value but the largest);
  α_k = 1 + n_k / S_k; D_k = max over every sorted tail point (duplicates included) of
  |1 − (u_k/xⱼ)^(α_k−1) − (j − i_k)/n_k|. Within a run of equal values the fitted CDF is
  constant, so the maximum over the run is attained at its first or last point, and only
  those two are evaluated (the same numbers, not an approximation).
* discrete: α_k is the exact discrete MLE (see ``_discrete``; plfit's default L-BFGS solves
  the same equation, to a looser tolerance); D_k = max over the distinct tail values u of
  |1 − ζ(α_k, u)/ζ(α_k, u_k) − (c(u) − i_k)/n_k|, i.e. the model's P(X < u) against the
  empirical fraction of the tail below u. Candidates, as in ``plfit_discrete``: every distinct
  value except the two largest, and the third largest only when it occurs at least twice.
  (That C loop also re-evaluates the third-largest value, when it occurs three or more times,
  on a tail that starts at its last copy — not the tail {x ≥ x_min}; that artefact is not
  reproduced.)

``"powerlaw"`` — the ``powerlaw`` package 2.0.0, ``Fit(data, discrete=…,
parameter_ranges={'alpha': [1, 10]})``:

* candidates u₁ … u_{U−2} (``unique(data[data < max])[:-1]``: the two largest distinct values
  never are); with fewer than two candidates that package gives NaN, and so do we.
* α: α₀ = 1 + n_k / S_k, or for discrete data with u_k ≥ 10 (its ``estimate_discrete``)
  α₀ = 1 + n_k / Σ ln(xⱼ / (u_k − ½)) (Clauset et al. eq. 3.7). When α₀ ∈ (1.5, 3] (for
  discrete data: and u_k ≥ 10) α = α₀. Otherwise α is where SciPy's Nelder–Mead
  (``tol=1e-4``, bounds [1, 10], start α₀; replicated in ``_nelder_mead``) stops on the
  negative log-likelihood f(α) = α S_k − n_k ln(α − 1) + n_k ln u_k (continuous) or
  f(α) = α L_k + n_k ln(1 − (1 − ζ(α, u_k))) (discrete, with that package's rounding of the
  normaliser), and f = −n_k ln(10⁻³⁰⁷) outside the open range (1, 10) where that package's
  pdf returns 10⁻³⁰⁷ (that package sums the logs of its pdf values; the closed form agrees to
  rounding unless x^α or x_min^(α−1) leaves the float range, where its pdf under- or
  overflows). Such a fit is admissible only if the optimiser converged and
  1.01 ≤ α ≤ 9.99 (that package's in-range and near-boundary tests).
* D_k = max over the distinct tail values u of |T(u) − A(u)|, with the empirical CDF taken on
  the whole sample and renormalised, A(u) = (c(u)/N − c(u_k)/N) / (1 − c(u_k)/N), and the
  model CDF T(u) = 1 − (u/u_k)^(1−α) (continuous) or the left limit
  T(u) = ((1 − ζ(α, u)) − (1 − ζ(α, u_k))) / (1 − (1 − ζ(α, u_k))) (discrete; 1 when
  1 − ζ(α, u_k) rounds to 1), i.e. both are P(X < u), written as that package writes them.

That package's default parameter range is α ∈ [0, 3], which silently rejects every steeper tail;
this convention reproduces it with ``parameter_ranges={'alpha': [1, 10]}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from alphahat.fit._discrete import discrete_mle, log_zeta_grid
from alphahat.fit._nelder_mead import nelder_mead_1d

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]

#: The α range the ``"powerlaw"`` convention gives that package.
POWERLAW_ALPHA_RANGE = (1.0, 10.0)
#: That package's tolerance of the Nelder–Mead fit of α.
POWERLAW_NM_TOL = 1e-4
#: That package's margin: a numerical α this close to the range ends is rejected.
POWERLAW_EDGE = 1e-2
#: That package's closed-form window: α₀ ∈ (1.5, 3] is used as is.
POWERLAW_CLOSED_FORM = (1.5, 3.0)
#: x_min from which that package uses the approximate discrete estimator.
POWERLAW_ESTIMATE_DISCRETE_XMIN = 10.0
#: The pdf value that package substitutes outside the parameter range (10**min_10_exp).
POWERLAW_TINY_PDF = 1e-307


@dataclass(frozen=True)
class CandidateFits:
    """Per-candidate fits: x_min, tail size, α and D (NaN where inadmissible)."""

    xmins: FloatArray
    n_tail: IndexArray
    alphas: FloatArray
    Ds: FloatArray
    reason: str = ""  # why there is no candidate at all, when so


@dataclass(frozen=True)
class _Distinct:
    """The distinct values of a sorted sample and where their runs start and end."""

    values: FloatArray
    first: IndexArray  # index of the first occurrence = c(u), the count below u
    last: IndexArray  # index of the last occurrence
    n: int


def _distinct(data: FloatArray) -> _Distinct:
    values, first, counts = np.unique(data, return_index=True, return_counts=True)
    return _Distinct(
        np.asarray(values, dtype=np.float64),
        first.astype(np.intp),
        (first + counts - 1).astype(np.intp),
        int(data.size),
    )


def tail_log_spreads(data: FloatArray) -> FloatArray:
    """S_i = Σ_{j≥i} ln(xⱼ/xᵢ) for every index i of a sorted sample, without cancellation."""
    n = data.size
    gaps = np.log1p(np.diff(data) / data[:-1])  # ln(x_{t+1}/x_t) ≥ 0
    weighted = gaps * np.arange(n - 1, 0, -1, dtype=np.float64)  # × (N − 1 − t)
    return np.append(np.cumsum(weighted[::-1])[::-1], 0.0)


def _suffix_sums(v: FloatArray) -> FloatArray:
    return np.asarray(np.cumsum(v[::-1])[::-1], dtype=np.float64)


def _row_blocks(starts: IndexArray, n_cols: int, chunk_elements: int) -> Iterator[slice]:
    """Consecutive row ranges whose block [first row's start, n_cols) fits the budget."""
    start = 0
    while start < starts.size:
        width = n_cols - int(starts[start])
        rows = max(1, chunk_elements // max(width, 1))
        stop = min(starts.size, start + rows)
        yield slice(start, stop)
        start = stop


#: gap(rows, cols) → |model − empirical| on a block; rows index candidates, cols distinct values.
_GapFunction = Callable[[IndexArray, IndexArray], FloatArray]


def _max_gap(rows: IndexArray, n_cols: int, gap: _GapFunction, chunk_elements: int) -> FloatArray:
    """Per row k: the max of gap(k, j) over columns j ≥ k (``rows`` increasing)."""
    out = np.full(rows.size, np.nan)
    for block in _row_blocks(rows, n_cols, chunk_elements):
        k = rows[block]
        cols = np.arange(k[0], n_cols)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            g = gap(k, cols)
        g[cols[None, :] < k[:, None]] = 0.0  # outside the tail
        out[block] = g.max(axis=1)
    return out


# --------------------------------------------------------------------------------------------
# "clauset"
# --------------------------------------------------------------------------------------------


def clauset_fits(data: FloatArray, discrete: bool, chunk_elements: int) -> CandidateFits:
    """Per-candidate α and D of plfit (see the module docstring); ``data`` sorted."""
    d = _distinct(data)
    u, first = d.values, d.first
    n_tail = (d.n - first).astype(np.intp)
    n_cand = u.size - 1
    if discrete:
        n_cand = u.size - 3
        if u.size >= 3 and d.last[-3] > first[-3]:  # third largest counts when repeated
            n_cand += 1
    n_cand = max(n_cand, 0)
    rows = np.arange(n_cand)
    alphas = np.full(n_cand, np.nan)
    Ds = np.full(n_cand, np.nan)
    if n_cand == 0:
        reason = (
            "no x_min candidate: plfit's discrete rule skips the two largest distinct values "
            "(and the third largest unless it is repeated)"
            if discrete
            else "fewer than 2 distinct values"
        )
        return CandidateFits(u[:0], n_tail[:0], alphas, Ds, reason)
    nk = n_tail[:n_cand].astype(np.float64)
    spreads = tail_log_spreads(data)[first[:n_cand]]
    if discrete:
        alphas = discrete_mle(spreads / nk, u[:n_cand])
        ok = np.flatnonzero(np.isfinite(alphas))
        if ok.size:
            Ds[ok] = _max_gap(ok, u.size, _clauset_discrete_gap(d, alphas), chunk_elements)
    else:
        alphas = 1.0 + nk / spreads
        Ds = _max_gap(rows, u.size, _clauset_continuous_gap(d, alphas), chunk_elements)
    return CandidateFits(u[:n_cand].copy(), n_tail[:n_cand], alphas, Ds)


def _clauset_continuous_gap(d: _Distinct, alphas: FloatArray) -> _GapFunction:
    def gap(k: IndexArray, cols: IndexArray) -> FloatArray:
        start = d.first[k][:, None]
        nk = (d.n - d.first[k]).astype(np.float64)[:, None]
        fitted = 1.0 - np.power(
            d.values[k][:, None] / d.values[cols][None, :], alphas[k][:, None] - 1.0
        )
        below = (d.first[cols][None, :] - start) / nk  # first point of the run: m/n
        upto = (d.last[cols][None, :] - start) / nk  # last point of the run
        return np.asarray(np.maximum(np.abs(fitted - below), np.abs(fitted - upto)))

    return gap


def _clauset_discrete_gap(d: _Distinct, alphas: FloatArray) -> _GapFunction:
    def gap(k: IndexArray, cols: IndexArray) -> FloatArray:
        nk = (d.n - d.first[k]).astype(np.float64)[:, None]
        log_z = log_zeta_grid(alphas[k], d.values[cols])
        at_xmin = log_z[np.arange(k.size), k - cols[0]][:, None]  # column of x_min itself
        ratio = np.expm1(log_z - at_xmin)  # ζ(α,u)/ζ(α,x_min) − 1
        below = (d.first[cols][None, :] - d.first[k][:, None]) / nk
        return np.asarray(np.abs(ratio + below))  # |1 − ζ(α,u)/ζ(α,x_min) − m/n|

    return gap


# --------------------------------------------------------------------------------------------
# "powerlaw"
# --------------------------------------------------------------------------------------------


def powerlaw_fits(data: FloatArray, discrete: bool, chunk_elements: int) -> CandidateFits:
    """Per-candidate α and D of the ``powerlaw`` package 2.0 (module docstring); ``data`` sorted."""
    d = _distinct(data)
    u, first = d.values, d.first
    n_cand = max(u.size - 2, 0)
    n_tail = (d.n - first[:n_cand]).astype(np.intp)
    alphas = np.full(n_cand, np.nan)
    Ds = np.full(n_cand, np.nan)
    if n_cand < 2:
        reason = "fewer than 2 x_min candidates (the powerlaw package needs 4 distinct values)"
        return CandidateFits(u[:n_cand].copy(), n_tail, alphas, Ds, reason)
    xmin = u[:n_cand]
    nk = n_tail.astype(np.float64)
    spreads = tail_log_spreads(data)[first[:n_cand]]
    start = 1.0 + nk / spreads
    lo, hi = POWERLAW_CLOSED_FORM
    if discrete:
        log_sums = _suffix_sums(np.log(data))[first[:n_cand]]
        estimate = xmin >= POWERLAW_ESTIMATE_DISCRETE_XMIN
        shifted = spreads + nk * np.log(xmin / (xmin - 0.5))  # Σ ln(x / (x_min − ½))
        start = np.where(estimate, 1.0 + nk / shifted, start)
        closed = estimate & (start > lo) & (start <= hi)
        objective = _powerlaw_discrete_objective(log_sums, nk, xmin)
    else:
        closed = (start > lo) & (start <= hi)
        objective = _powerlaw_continuous_objective(spreads, nk, xmin)
    alphas = start.copy()
    numeric = np.flatnonzero(~closed)
    a_lo, a_hi = POWERLAW_ALPHA_RANGE
    admissible = closed.copy()
    if numeric.size:

        def sub_objective(a: FloatArray, idx: IndexArray) -> FloatArray:
            return objective(a, numeric[idx])

        found, success = nelder_mead_1d(
            sub_objective, start[numeric], a_lo, a_hi, xatol=POWERLAW_NM_TOL, fatol=POWERLAW_NM_TOL
        )
        alphas[numeric] = found
        admissible[numeric] = (
            success
            & (found > a_lo)
            & (found < a_hi)
            & ~(found - POWERLAW_EDGE < a_lo)
            & ~(found + POWERLAW_EDGE > a_hi)
        )
    alphas[~admissible] = np.nan
    ok = np.flatnonzero(admissible)
    if ok.size:
        gap = _powerlaw_discrete_gap(d, alphas) if discrete else _powerlaw_continuous_gap(d, alphas)
        Ds[ok] = _max_gap(ok, u.size, gap, chunk_elements)
    return CandidateFits(xmin.copy(), n_tail, alphas, Ds)


_Objective = Callable[[FloatArray, IndexArray], FloatArray]


def _out_of_range_value(nk: FloatArray) -> FloatArray:
    return np.asarray(-nk * np.log(POWERLAW_TINY_PDF), dtype=np.float64)


def _powerlaw_continuous_objective(
    spreads: FloatArray, nk: FloatArray, xmin: FloatArray
) -> _Objective:
    log_xmin = np.log(xmin)
    a_lo, a_hi = POWERLAW_ALPHA_RANGE

    def f(a: FloatArray, idx: IndexArray) -> FloatArray:
        out = _out_of_range_value(nk[idx])
        inside = (a > a_lo) & (a < a_hi)
        i, ai = idx[inside], a[inside]
        out[inside] = ai * spreads[i] - nk[i] * np.log(ai - 1.0) + nk[i] * log_xmin[i]
        return out

    return f


def _powerlaw_discrete_objective(
    log_sums: FloatArray, nk: FloatArray, xmin: FloatArray
) -> _Objective:
    a_lo, a_hi = POWERLAW_ALPHA_RANGE

    def f(a: FloatArray, idx: IndexArray) -> FloatArray:
        out = _out_of_range_value(nk[idx])
        inside = (a > a_lo) & (a < a_hi)
        i, ai = idx[inside], a[inside]
        norm = 1.0 - (1.0 - special.zeta(ai, xmin[i]))  # that package's 1 − CDF(x_min)
        with np.errstate(divide="ignore"):
            out[inside] = ai * log_sums[i] + nk[i] * np.log(norm)
        return out

    return f


def _empirical_left_cdf(d: _Distinct, k: IndexArray, cols: IndexArray) -> FloatArray:
    """A(u) = (c(u)/N − c(u_k)/N)/(1 − c(u_k)/N), in that package's order of operations."""
    whole = d.first / float(d.n)
    dropped = whole[k][:, None]
    return np.asarray((whole[cols][None, :] - dropped) / (1.0 - dropped))


def _powerlaw_continuous_gap(d: _Distinct, alphas: FloatArray) -> _GapFunction:
    def gap(k: IndexArray, cols: IndexArray) -> FloatArray:
        ratio = d.values[cols][None, :] / d.values[k][:, None]
        fitted = 1.0 - np.power(ratio, 1.0 - alphas[k][:, None])
        return np.asarray(np.abs(fitted - _empirical_left_cdf(d, k, cols)))

    return gap


def _powerlaw_discrete_gap(d: _Distinct, alphas: FloatArray) -> _GapFunction:
    def gap(k: IndexArray, cols: IndexArray) -> FloatArray:
        a = alphas[k][:, None]
        below_xmin = 1.0 - special.zeta(a, d.values[k][:, None])
        below_u = 1.0 - special.zeta(a, d.values[cols][None, :])
        fitted = (below_u - below_xmin) / (1.0 - below_xmin)
        fitted = np.where(below_xmin == 1.0, 1.0, fitted)
        return np.asarray(np.abs(fitted - _empirical_left_cdf(d, k, cols)))

    return gap
