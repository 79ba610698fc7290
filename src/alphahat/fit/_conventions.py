"""Per-candidate fits under the ``"clauset"`` and ``"powerlaw"`` conventions.

Both conventions take the distinct values u₁ < … < u_U of the sorted sample x₁ ≤ … ≤ x_N as
x_min candidates. For the candidate u_k let i_k be the index of its first occurrence, so the
tail is {xⱼ : j ≥ i_k}, with n_k = N − i_k points; let c(u) = #{j : xⱼ < u}. α is evaluated
for all candidates at once (tail sums by suffix sums, vectorized solvers). D_k is the maximum
of one gap term per distinct tail value u_k … u_U; the terms are :class:`GapTerms` of
``alphahat.fit._ks_search``, whose exact pruned search finds the minimum-D candidate without
evaluating every term (``all_distances=True`` evaluates them all, with the same arithmetic).

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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special

from alphahat.fit._discrete import Q0, discrete_mle, log_zeta_large, log_zeta_small_table
from alphahat.fit._ks_search import GapTerms, materialize
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
    """Per-candidate fits: x_min, tail size, α (NaN where inadmissible) and the KS gap terms.

    Row k of ``terms`` is candidate k; its D is the maximum of its terms (``None`` when there
    is no candidate, with ``reason`` saying why).
    """

    xmins: FloatArray
    n_tail: IndexArray
    alphas: FloatArray
    terms: GapTerms | None
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


# --------------------------------------------------------------------------------------------
# "clauset"
# --------------------------------------------------------------------------------------------


def clauset_fits(data: FloatArray, discrete: bool) -> CandidateFits:
    """Per-candidate α and the gap terms of plfit (module docstring); ``data`` sorted."""
    d = _distinct(data)
    u, first = d.values, d.first
    n_tail = (d.n - first).astype(np.intp)
    n_cand = u.size - 1
    if discrete:
        n_cand = u.size - 3
        if u.size >= 3 and d.last[-3] > first[-3]:  # third largest counts when repeated
            n_cand += 1
    n_cand = max(n_cand, 0)
    alphas = np.full(n_cand, np.nan)
    if n_cand == 0:
        reason = (
            "no x_min candidate: plfit's discrete rule skips the two largest distinct values "
            "(and the third largest unless it is repeated)"
            if discrete
            else "fewer than 2 distinct values"
        )
        return CandidateFits(u[:0], n_tail[:0], alphas, None, reason)
    nk = n_tail[:n_cand].astype(np.float64)
    spreads = tail_log_spreads(data)[first[:n_cand]]
    terms: GapTerms
    if discrete:
        alphas = discrete_mle(spreads / nk, u[:n_cand])
        terms = ClausetDiscreteTerms(d, alphas)
    else:
        alphas = 1.0 + nk / spreads
        terms = ClausetContinuousTerms(d, alphas)
    return CandidateFits(u[:n_cand].copy(), n_tail[:n_cand], alphas, terms)


class _DistinctTerms(GapTerms):
    """Terms over the distinct tail values.

    Row j (candidate x_min = u_j) has the terms k = 0 … U − 1 − j, at the values u_{j+k}.
    """

    def __init__(self, d: _Distinct, alphas: FloatArray) -> None:
        self.d = d
        self.alphas = np.ascontiguousarray(alphas, dtype=np.float64)
        self.widths = (d.values.size - np.arange(alphas.size)).astype(np.intp)

    def columns(self, row: Any, k: FloatArray) -> IndexArray:
        """Distinct-value index j + k of each term."""
        return np.asarray(row + k.astype(np.intp), dtype=np.intp)


class ClausetContinuousTerms(_DistinctTerms):
    """g_j(k) = max(|F − (c(u) − i_j)/n_j|, |F − (c⁺(u) − i_j)/n_j|), F = 1 − (u_j/u)^(α_j−1).

    u = u_{j+k}; c(u) and c⁺(u) are the indices of its first and last occurrence: within a
    run of equal values the fitted CDF is constant, so the maximum over every sorted point
    of the run is at its first or last point. At k = 0, with ties, the term is not 0.
    """

    probe_first = True

    def __init__(self, d: _Distinct, alphas: FloatArray) -> None:
        super().__init__(d, alphas)
        self.first = d.first.astype(np.float64)  # exact integers
        self.last = d.last.astype(np.float64)

    def params(self, rows: IndexArray) -> tuple[Any, ...]:
        first = self.first[rows]
        return rows, self.d.values[rows], first, self.d.n - first, self.alphas[rows] - 1.0

    def at(self, params: tuple[Any, ...], k: FloatArray) -> FloatArray:
        row, xmin, first, nk, exponent = params
        c = self.columns(row, k)
        fitted = np.divide(xmin, self.d.values[c])
        np.power(fitted, materialize(exponent, fitted.shape), out=fitted)
        np.subtract(1.0, fitted, out=fitted)  # F = 1 − (x_min/u)^(α−1)
        below = self.first[c]
        below -= first
        below /= nk  # m/n at the first point of the run
        upto = self.last[c]
        upto -= first
        upto /= nk  # at its last point
        # max(|F − below|, |F − upto|) with below ≤ upto is max(F − below, upto − F).
        np.subtract(fitted, below, out=below)
        np.subtract(upto, fitted, out=upto)
        return np.maximum(below, upto, out=below)


class ClausetDiscreteTerms(_DistinctTerms):
    """g_j(k) = |1 − ζ(α_j, u)/ζ(α_j, u_j) − (c(u) − i_j)/n_j|, u = u_{j+k}.

    ln ζ comes from the Euler–Maclaurin expansion for u ≥ Q₀ and, for u < Q₀, from a table of
    ln ζ(α_j, m), m = 1 … Q₀ − 1, made once per candidate with u_j < Q₀ (at most Q₀ − 1 of
    them, the data being distinct integers).
    """

    def __init__(self, d: _Distinct, alphas: FloatArray) -> None:
        super().__init__(d, alphas)
        small = np.flatnonzero((d.values[: alphas.size] < Q0) & np.isfinite(alphas))
        self.table_row = np.full(alphas.size, -1, dtype=np.intp)
        self.table_row[small] = np.arange(small.size)
        self.table = log_zeta_small_table(self.alphas[small])
        rows = np.flatnonzero(np.isfinite(alphas))  # the others are never searched
        self.at_xmin = np.full(alphas.size, np.nan)
        self.at_xmin[rows] = self._log_zeta(
            rows, self.alphas[rows], self.table_row[rows], np.zeros(rows.size)
        )

    def _log_zeta(self, row: Any, alpha: Any, table_row: Any, k: FloatArray) -> FloatArray:
        """Ln ζ(α_j, u_{j+k}) of each term."""
        q = self.d.values[self.columns(row, k)]
        out = np.empty(q.shape)
        large = q >= Q0
        if large.any():
            out[large] = log_zeta_large(materialize(alpha, q.shape)[large], q[large])
        if not large.all():
            table_rows = materialize(table_row, q.shape)[~large]
            out[~large] = self.table[table_rows, q[~large].astype(np.intp) - 1]
        return out

    def params(self, rows: IndexArray) -> tuple[Any, ...]:
        d = self.d
        first = d.first[rows]
        nk = (d.n - first).astype(np.float64)
        return rows, self.alphas[rows], self.table_row[rows], self.at_xmin[rows], first, nk

    def at(self, params: tuple[Any, ...], k: FloatArray) -> FloatArray:
        row, alpha, table_row, at_xmin, first, nk = params
        ratio = np.expm1(self._log_zeta(row, alpha, table_row, k) - at_xmin)  # ζ/ζ(x_min) − 1
        below = (self.d.first[self.columns(row, k)] - first) / nk
        return np.asarray(np.abs(ratio + below))  # |1 − ζ(α,u)/ζ(α,x_min) − m/n|


# --------------------------------------------------------------------------------------------
# "powerlaw"
# --------------------------------------------------------------------------------------------


def powerlaw_fits(data: FloatArray, discrete: bool) -> CandidateFits:
    """Per-candidate α and gap terms of the ``powerlaw`` package 2.0 (module docstring)."""
    d = _distinct(data)
    u, first = d.values, d.first
    n_cand = max(u.size - 2, 0)
    n_tail = (d.n - first[:n_cand]).astype(np.intp)
    alphas = np.full(n_cand, np.nan)
    if n_cand < 2:
        reason = "fewer than 2 x_min candidates (the powerlaw package needs 4 distinct values)"
        return CandidateFits(u[:n_cand].copy(), n_tail, alphas, None, reason)
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
    terms = PowerlawDiscreteTerms(d, alphas) if discrete else PowerlawContinuousTerms(d, alphas)
    return CandidateFits(xmin.copy(), n_tail, alphas, terms)


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


class _PowerlawTerms(_DistinctTerms):
    """Terms |T(u) − A(u)| of the ``powerlaw`` package at the distinct values u = u_{j+k}.

    A(u) = (c(u)/N − c(u_j)/N)/(1 − c(u_j)/N) is the renormalised empirical left limit, in
    that package's order of operations; T is the model's P(X < u) (subclasses).
    """

    def __init__(self, d: _Distinct, alphas: FloatArray) -> None:
        super().__init__(d, alphas)
        self.whole = d.first / float(d.n)

    def empirical(self, row: Any, c: IndexArray) -> FloatArray:
        dropped = self.whole[row]
        empirical = self.whole[c]
        empirical -= dropped
        empirical /= 1.0 - dropped
        return empirical


class PowerlawContinuousTerms(_PowerlawTerms):
    """T(u) = 1 − (u/u_j)^(1−α_j)."""

    def params(self, rows: IndexArray) -> tuple[Any, ...]:
        return rows, self.d.values[rows], 1.0 - self.alphas[rows]

    def at(self, params: tuple[Any, ...], k: FloatArray) -> FloatArray:
        row, xmin, exponent = params
        c = self.columns(row, k)
        fitted = np.divide(self.d.values[c], xmin)
        np.power(fitted, materialize(exponent, fitted.shape), out=fitted)
        np.subtract(1.0, fitted, out=fitted)
        fitted -= self.empirical(row, c)
        return np.asarray(np.abs(fitted, out=fitted), dtype=np.float64)


class PowerlawDiscreteTerms(_PowerlawTerms):
    """T(u) = ((1 − ζ(α, u)) − (1 − ζ(α, u_j))) / (1 − (1 − ζ(α, u_j))).

    That package's left limit, written as it writes it; 1 when 1 − ζ(α, u_j) rounds to 1.
    """

    def __init__(self, d: _Distinct, alphas: FloatArray) -> None:
        super().__init__(d, alphas)
        rows = np.flatnonzero(np.isfinite(alphas))
        self.below_xmin = np.full(alphas.size, np.nan)
        self.below_xmin[rows] = 1.0 - special.zeta(self.alphas[rows], d.values[rows])

    def params(self, rows: IndexArray) -> tuple[Any, ...]:
        return rows, self.alphas[rows], self.below_xmin[rows]

    def at(self, params: tuple[Any, ...], k: FloatArray) -> FloatArray:
        row, alpha, below_xmin = params
        c = self.columns(row, k)
        u = self.d.values[c]
        below_u = 1.0 - special.zeta(materialize(alpha, u.shape), u)
        fitted = (below_u - below_xmin) / (1.0 - below_xmin)
        fitted = np.where(below_xmin == 1.0, 1.0, fitted)
        return np.asarray(np.abs(fitted - self.empirical(row, c)))
