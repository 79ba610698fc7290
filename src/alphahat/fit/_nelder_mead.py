"""A vectorised replica of SciPy's bounded Nelder–Mead in one dimension.

The ``powerlaw`` package (2.0) fits α numerically, for every candidate x_min whose closed-form
start value falls outside (1.5, 3], with ``scipy.optimize.minimize(f, x0=[α₀], bounds=[(lo, hi)],
method="Nelder-Mead", tol=1e-4)``. Its answer is that optimiser's stopping point, not the exact
maximiser of the likelihood (it is within about 1e-4 of it), so to reproduce that package this
module re-runs the same algorithm (``scipy.optimize._optimize._minimize_neldermead``, SciPy 1.10
to 1.17, non-adaptive) for many independent one-dimensional problems at once.

In one dimension the simplex is a pair of points s₀ (the better) and s₁, and one iteration is

* stop when |s₁ − s₀| ≤ xatol and |f(s₀) − f(s₁)| ≤ fatol (success), or after ``maxfev``
  objective evaluations (failure);
* reflect  x_r = 2·s₀ − s₁;  if f(x_r) < f(s₀) expand x_e = 3·s₀ − 2·s₁ and keep the better
  of x_e and x_r;
* otherwise contract: outside x_c = 1.5·s₀ − 0.5·s₁ when f(x_r) < f(s₁) (kept when
  f(x_c) ≤ f(x_r)), inside x_cc = 0.5·s₀ + 0.5·s₁ otherwise (kept when f(x_cc) < f(s₁));
  when the contraction is not kept, shrink s₁ ← s₀ + 0.5·(s₁ − s₀);
* every new point is clipped to [lo, hi]; then the pair is re-ordered by f (ties keep order).

The initial simplex is x₀ (clipped) and 1.05·x₀ (0.00025 when x₀ = 0), reflected into
[lo, hi] where it overshoots hi. The arithmetic is written exactly as SciPy writes it, so the
same starting point and the same objective values give the same iterates bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]

#: f(points, problem indices) → objective values, one per point.
Objective = Callable[[FloatArray, IndexArray], FloatArray]

# SciPy's non-adaptive coefficients and initial-simplex steps.
_RHO, _CHI, _PSI, _SIGMA = 1, 2, 0.5, 0.5
_NONZDELT, _ZDELT = 0.05, 0.00025


def _clip(x: FloatArray, lower: float, upper: float) -> FloatArray:
    return np.asarray(np.clip(x, lower, upper), dtype=np.float64)


def _reorder(s0: FloatArray, s1: FloatArray, f0: FloatArray, f1: FloatArray) -> None:
    """In place: put the point of smaller f first, as a stable argsort of [f0, f1] does."""
    swap = (f1 < f0) | (np.isnan(f0) & ~np.isnan(f1))
    s0[swap], s1[swap] = s1[swap], s0[swap].copy()
    f0[swap], f1[swap] = f1[swap], f0[swap].copy()


def nelder_mead_1d(
    objective: Objective,
    x0: FloatArray,
    lower: float,
    upper: float,
    *,
    xatol: float = 1e-4,
    fatol: float = 1e-4,
    maxfev: int = 200,
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Minimise m independent 1-D problems from starts ``x0`` within [lower, upper].

    Returns the final best point of each problem and whether it converged (SciPy's
    ``result.success``: False when ``maxfev`` evaluations were spent first).
    """
    m = x0.size
    everyone = np.arange(m)
    s0 = _clip(np.asarray(x0, dtype=np.float64), lower, upper)
    s1 = np.where(s0 != 0, (1 + _NONZDELT) * s0, _ZDELT)
    s0 = _clip(np.where(s0 > upper, 2 * upper - s0, s0), lower, upper)
    s1 = _clip(np.where(s1 > upper, 2 * upper - s1, s1), lower, upper)
    f0 = objective(s0, everyone)
    f1 = objective(s1, everyone)
    fcalls = np.full(m, 2, dtype=np.int64)
    _reorder(s0, s1, f0, f1)

    active = np.ones(m, dtype=bool)
    success = np.zeros(m, dtype=bool)
    while True:
        active &= fcalls < maxfev  # SciPy's loop condition; leaving here is a failure
        with np.errstate(invalid="ignore"):  # f = ±∞ on both points gives a NaN gap
            converged = active & (np.abs(s1 - s0) <= xatol) & (np.abs(f0 - f1) <= fatol)
        success |= converged
        active &= ~converged
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        xbar, worst, f_best, f_worst = s0[idx], s1[idx], f0[idx], f1[idx]
        xr = _clip((1 + _RHO) * xbar - _RHO * worst, lower, upper)
        fxr = objective(xr, idx)
        fcalls[idx] += 1

        expand = fxr < f_best
        outside = ~expand & (fxr < f_worst)
        xe = (1 + _RHO * _CHI) * xbar - _RHO * _CHI * worst
        xc = (1 + _PSI * _RHO) * xbar - _PSI * _RHO * worst
        xcc = (1 - _PSI) * xbar + _PSI * worst
        x2 = _clip(np.where(expand, xe, np.where(outside, xc, xcc)), lower, upper)
        # A call past maxfev raises inside SciPy: that problem stops where it is.
        can = fcalls[idx] < maxfev
        active[idx[~can]] = False
        idx, xbar, worst, xr, fxr, x2 = idx[can], xbar[can], worst[can], xr[can], fxr[can], x2[can]
        expand, outside, f_worst = expand[can], outside[can], f_worst[can]
        f2 = objective(x2, idx)
        fcalls[idx] += 1

        new_s1 = worst.copy()
        new_f1 = f_worst.copy()
        # expansion: keep x_e if better than x_r, else x_r
        take_e = expand & (f2 < fxr)
        take_r = expand & ~take_e
        # contractions
        inside = ~expand & ~outside
        take_c = (outside & (f2 <= fxr)) | (inside & (f2 < f_worst))
        shrink = ~expand & ~take_c
        new_s1[take_e], new_f1[take_e] = x2[take_e], f2[take_e]
        new_s1[take_r], new_f1[take_r] = xr[take_r], fxr[take_r]
        new_s1[take_c], new_f1[take_c] = x2[take_c], f2[take_c]
        if shrink.any():
            sh = np.flatnonzero(shrink)
            moved = _clip(xbar[sh] + _SIGMA * (worst[sh] - xbar[sh]), lower, upper)
            new_s1[sh] = moved
            can = fcalls[idx[sh]] < maxfev
            # out of evaluations: SciPy has already moved the point but keeps the old f
            active[idx[sh[~can]]] = False
            ok = sh[can]
            if ok.size:
                new_f1[ok] = objective(moved[can], idx[ok])
                fcalls[idx[ok]] += 1
        s1[idx], f1[idx] = new_s1, new_f1
        _reorder(s0, s1, f0, f1)
    return s0, success
