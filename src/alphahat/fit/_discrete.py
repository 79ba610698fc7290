"""Discrete power law p(x) = x^(−α) / ζ(α, x_min), x ∈ {x_min, x_min + 1, …}: ζ, MLE and σ.

ζ(α, q) = Σ_{k≥0} (q + k)^(−α) is the Hurwitz zeta function. ``scipy.special.zeta`` has no
α-derivatives, so for the ``"clauset"`` convention ln ζ and its first two α-derivatives are
evaluated here, for integer q ≥ 1 and 1 < α ≤ 20 (checked against mpmath at 90 digits: ln ζ
and ∂ ln ζ/∂α to 3e-15 relative, ∂² ln ζ/∂α² to 2e-13):

* for q ≥ Q₀ = 128, the Euler–Maclaurin expansion at q,
  A(α, q) = q^α ζ(α, q) = q/(α − 1) + ½ + Σ_{j=1}^{6} B_{2j}/(2j)! · (α)_{2j−1} · q^(1−2j),
  with (α)_m the rising factorial (the first omitted term is below 1e-17 relative there), and
  its derivatives in α term by term;
* for q < Q₀, the direct sum Σ_{k=q}^{Q₀−1} k^(−α) plus the expansion at Q₀; derivatives in
  α are taken relative to ln q (weights ((q + k)/q)^(−α)), so ∂ ln ζ/∂α + ln q and
  ∂² ln ζ/∂α² come out without cancellation.

MLE. For a tail of n integers xⱼ ≥ x_min the log-likelihood is
ℓ(α) = −α Σ ln xⱼ − n ln ζ(α, x_min), strictly concave (∂² ln ζ/∂α² is the variance of ln X
under the fitted law), so the MLE is the unique root of the increasing function

    g(α) = (1/n) Σ ln(xⱼ / x_min) + (∂ ln ζ(α, x_min)/∂α + ln x_min),

which runs from −∞ at α → 1⁺ to (1/n) Σ ln(xⱼ/x_min) > 0 as α → ∞ for a non-constant tail.
It is found for all candidates at once by a safeguarded Newton iteration (Newton steps with
g′ = ∂² ln ζ/∂α² inside a bracket [lo, hi] that starts as [1 + 10⁻⁶, α_max] and shrinks with
the sign of g at every iterate; a step that leaves it is replaced by the secant through the
bracket ends, or by bisection) to rounding level. g is concave, so a Newton step from above
the root overshoots below it; without the secant, an end lo already next to the root would
turn every later step into a bisection. A candidate whose MLE lies above α_max
(g(α_max) < 0) gets NaN.

The standard error is Clauset, Shalizi & Newman (2009), eq. (3.6): σ = 1/√(n ∂² ln ζ/∂α²)
= 1/√(n [ζ″/ζ − (ζ′/ζ)²]) at (α̂, x_min).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: Upper end of the α search of the discrete MLE.
ALPHA_MAX = 20.0
#: Lower end of the α search (ζ(α, q) diverges at α = 1).
ALPHA_MIN = 1.0 + 1e-6
#: From this q on, ζ(α, q) is its Euler–Maclaurin expansion at q.
Q0 = 128
#: B_{2j} / (2j)! for j = 1 … 6.
_EM = (
    1.0 / 12.0,
    -1.0 / 720.0,
    1.0 / 30240.0,
    -1.0 / 1209600.0,
    1.0 / 47900160.0,
    -691.0 / 1307674368000.0,
)
_NEWTON_STEPS = 100
_RELATIVE_STEP = 4.0 * np.finfo(np.float64).eps


def _expansion(s: FloatArray, q: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """A(s, q) = q^s ζ(s, q) and its first two s-derivatives (q ≥ Q₀; broadcasting)."""
    sm1 = s - 1.0
    a0 = q / sm1 + 0.5
    a1 = -q / (sm1 * sm1)
    a2 = 2.0 * q / (sm1 * sm1 * sm1)
    rising = s  # (s)_{2j−1}
    h1 = 1.0 / s  # Σ 1/(s + i) over its factors: (ln rising)′
    h2 = 1.0 / (s * s)  # Σ 1/(s + i)²: −(ln rising)″
    inv2 = 1.0 / (q * q)
    power = 1.0 / q  # q^(1−2j)
    for j, c in enumerate(_EM, start=1):
        a0 = a0 + c * rising * power
        a1 = a1 + c * rising * h1 * power
        a2 = a2 + c * rising * (h1 * h1 - h2) * power
        for i in (2 * j - 1, 2 * j):
            rising = rising * (s + i)
            h1 = h1 + 1.0 / (s + i)
            h2 = h2 + 1.0 / ((s + i) * (s + i))
        power = power * inv2
    return a0, a1, a2


def log_zeta_derivatives(s: FloatArray, q: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(ln ζ(s, q), ∂ ln ζ/∂s + ln q, ∂² ln ζ/∂s²) elementwise, for integers q ≥ 1, s > 1."""
    s = np.asarray(s, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    top = np.maximum(q, float(Q0))
    a0, a1, a2 = _expansion(s, top)
    lift = np.log(top / q)  # L = ln(Q/q): the expansion point relative to q
    decay = np.exp(-s * lift)
    w0 = decay * a0  # W = Σ ((q + k)/q)^(−s) = q^s ζ(s, q)
    w1 = decay * (a1 - lift * a0)
    w2 = decay * (a2 - 2.0 * lift * a1 + lift * lift * a0)
    small = np.flatnonzero(q < Q0)
    if small.size:
        qs, ss = q[small], s[small]
        k = np.arange(1, Q0, dtype=np.float64)[None, :]  # the integers 1 … Q₀ − 1
        used = k >= qs[:, None]
        ell = np.log(k / qs[:, None])
        term = np.where(used, np.exp(-ss[:, None] * ell), 0.0)
        w0[small] += term.sum(axis=1)
        w1[small] -= (ell * term).sum(axis=1)
        w2[small] += (ell * ell * term).sum(axis=1)
    mean = w1 / w0
    return -s * np.log(q) + np.log(w0), mean, w2 / w0 - mean * mean


def _expansion_value(s: FloatArray, q: FloatArray) -> FloatArray:
    """A(s, q) = q^s ζ(s, q) alone (q ≥ Q₀; broadcasting), as :func:`_expansion` sums it."""
    sm1 = s - 1.0
    a0 = q / sm1 + 0.5
    rising = s  # (s)_{2j−1}
    inv2 = 1.0 / (q * q)
    power = 1.0 / q  # q^(1−2j)
    for j, c in enumerate(_EM, start=1):
        a0 = a0 + c * rising * power
        for i in (2 * j - 1, 2 * j):
            rising = rising * (s + i)
        power = power * inv2
    return np.asarray(a0, dtype=np.float64)


def log_zeta_large(s: FloatArray, q: FloatArray) -> FloatArray:
    """Ln ζ(s, q) elementwise for q ≥ Q₀ (same-shape contiguous arrays): −s ln q + ln A(s, q)."""
    return np.asarray(-s * np.log(q) + np.log(_expansion_value(s, q)), dtype=np.float64)


def log_zeta_small_table(s: FloatArray) -> FloatArray:
    """The table ln ζ(s_r, m) for rows s (R,) and m = 1 … Q₀ − 1 (column m − 1).

    ζ(s, m) = Σ_{k=m}^{Q₀−1} k^(−s) + ζ(s, Q₀), summed from the small terms up.
    """
    s = np.ascontiguousarray(s, dtype=np.float64)
    k = np.arange(1, Q0, dtype=np.float64)
    exponent = -s[:, None] * np.log(k)[None, :]
    terms = np.exp(exponent)
    at_q0 = np.full(s.shape, float(Q0))
    top = np.exp(-s * np.log(at_q0)) * _expansion_value(s, at_q0)
    partial = np.cumsum(terms[:, ::-1], axis=1)[:, ::-1] + top[:, None]
    return np.asarray(np.log(partial), dtype=np.float64)


def log_zeta_grid(s: FloatArray, q: FloatArray) -> FloatArray:
    """The grid ln ζ(s_r, q_c) of rows s (R,) × columns q (C,), for integers q ≥ 1 and s > 1."""
    s = np.asarray(s, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    out = np.empty((s.size, q.size))
    large = q >= Q0
    if large.any():
        shape = (s.size, int(large.sum()))
        rows = np.ascontiguousarray(np.broadcast_to(s[:, None], shape))
        cols = np.ascontiguousarray(np.broadcast_to(q[large][None, :], shape))
        out[:, large] = log_zeta_large(rows, cols)
    if not large.all():
        out[:, ~large] = log_zeta_small_table(s)[:, q[~large].astype(np.intp) - 1]
    return out


def discrete_mle(
    mean_log_ratio: FloatArray, xmin: FloatArray, alpha_max: float = ALPHA_MAX
) -> FloatArray:
    """MLE α̂ for each (mean ln(x/x_min) over the tail, x_min) pair; NaN above ``alpha_max``."""
    m = np.asarray(mean_log_ratio, dtype=np.float64)
    q = np.asarray(xmin, dtype=np.float64)
    lo = np.full(m.shape, ALPHA_MIN)
    hi = np.full(m.shape, alpha_max)
    g_lo = np.full(m.shape, np.nan)  # g at lo and hi, once evaluated there
    g_hi = m + log_zeta_derivatives(hi, q)[1]
    beyond = g_hi < 0.0
    # start from the continuous approximation 1 + 1/mean ln(x/(x_min − ½)), Clauset eq. (3.7)
    alpha = np.clip(1.0 + 1.0 / (m + np.log(q / (q - 0.5))), lo, hi)
    active = ~beyond
    for _ in range(_NEWTON_STEPS):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        a = alpha[idx]
        _, slope, curvature = log_zeta_derivatives(a, q[idx])
        g = m[idx] + slope
        below = g < 0.0  # root above a
        lo[idx] = np.where(below, a, lo[idx])
        hi[idx] = np.where(below, hi[idx], a)
        g_lo[idx] = np.where(below, g, g_lo[idx])
        g_hi[idx] = np.where(below, g_hi[idx], g)
        low, high, g_low, g_high = lo[idx], hi[idx], g_lo[idx], g_hi[idx]
        with np.errstate(divide="ignore", invalid="ignore"):
            step = a - g / curvature
            # g is concave, so Newton from above overshoots below the root, at times below lo;
            # then the secant through the bracket ends, whose g have opposite signs.
            secant = low - g_low * (high - low) / (g_high - g_low)
        inside = (step > low) & (step < high) & np.isfinite(step)
        secant_inside = (secant > low) & (secant < high) & np.isfinite(secant)
        new = np.where(inside, step, np.where(secant_inside, secant, 0.5 * (low + high)))
        # Converged when the Newton correction itself is at rounding level (the step may then
        # land on a bracket end, which is not "inside"), or the step taken is.
        settled = (np.abs(step - a) <= _RELATIVE_STEP * a) | (g == 0.0)
        done = settled | (np.abs(new - a) <= _RELATIVE_STEP * a)
        alpha[idx] = np.where(settled, np.where(inside, step, a), new)
        active[idx[done]] = False
    out = np.asarray(alpha, dtype=np.float64)
    out[beyond] = np.nan
    return out


def discrete_sigma(alpha: float, xmin: float, n_tail: int) -> float:
    """σ = 1/√(n ∂² ln ζ(α, x_min)/∂α²), Clauset et al. (2009) eq. (3.6)."""
    curvature = float(log_zeta_derivatives(np.array([alpha]), np.array([xmin]))[2][0])
    if not curvature > 0.0:
        return float("nan")
    return 1.0 / float(np.sqrt(n_tail * curvature))


#: Largest value the discrete sampler returns (integers stay exact in float64 below it).
SAMPLE_CAP = float(2**53)


def discrete_power_law_quantile(r: FloatArray, alpha: float, xmin: float) -> FloatArray:
    """The discrete power law's value for uniform draws r ∈ [0, 1): X = max{x : S(x) ≥ 1 − r}.

    S(x) = P(X ≥ x) = ζ(α, x)/ζ(α, x_min) on the integers x ≥ x_min, so P(X ≥ x) = S(x)
    exactly (up to the rounding of S); r = 0 gives x_min, as x_min (1 − r)^(−1/(α−1)) does
    for the continuous law. The search starts from Clauset, Shalizi & Newman (2009),
    eq. (D.6), x ≈ ⌊(x_min − ½)(1 − r)^(−1/(α−1)) + ½⌋, which is usually right or off by one;
    a bracket with S(lo) ≥ 1 − r > S(hi) is then widened geometrically from it where needed
    and bisected. Values are capped at 2⁵³ (where integers stop being exact in float64).
    """
    from scipy import special

    v = 1.0 - np.asarray(r, dtype=np.float64)
    scale = float(special.zeta(alpha, xmin))

    def reaches(x: FloatArray, level: FloatArray) -> npt.NDArray[np.bool_]:
        """S(x) ≥ level."""
        return np.asarray(special.zeta(alpha, x) / scale >= level)

    with np.errstate(over="ignore", divide="ignore"):
        start = np.floor((xmin - 0.5) * v ** (-1.0 / (alpha - 1.0)) + 0.5)
    start = np.clip(np.nan_to_num(start, nan=SAMPLE_CAP, posinf=SAMPLE_CAP), xmin, SAMPLE_CAP)
    lo = start.copy()
    hi = np.minimum(start + 1.0, SAMPLE_CAP)
    # lo: move down (halving the distance to x_min) until S(lo) ≥ v; S(x_min) = 1 ≥ v.
    bad = np.flatnonzero(~reaches(lo, v))
    while bad.size:
        hi[bad] = lo[bad]
        lo[bad] = xmin + np.floor((lo[bad] - xmin) / 2.0)
        bad = bad[~reaches(lo[bad], v[bad])]
    # hi: move up (doubling the distance from x_min) until S(hi) < v, or the cap.
    bad = np.flatnonzero(reaches(hi, v) & (hi < SAMPLE_CAP))
    while bad.size:
        lo[bad] = hi[bad]
        hi[bad] = np.minimum(xmin + 2.0 * (hi[bad] - xmin) + 1.0, SAMPLE_CAP)
        bad = bad[reaches(hi[bad], v[bad]) & (hi[bad] < SAMPLE_CAP)]
    # Bisect: S(lo) ≥ v > S(hi) (or hi at the cap).
    open_ = np.flatnonzero(hi - lo > 1.0)
    while open_.size:
        mid = np.floor((lo[open_] + hi[open_]) / 2.0)
        above = reaches(mid, v[open_])
        lo[open_[above]] = mid[above]
        hi[open_[~above]] = mid[~above]
        open_ = open_[hi[open_] - lo[open_] > 1.0]
    return np.asarray(np.where((hi >= SAMPLE_CAP) & reaches(hi, v), SAMPLE_CAP, lo), np.float64)
