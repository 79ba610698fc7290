"""Columns of the Marchenko–Pastur fit and of the randomized (element-shuffled) ESD.

MP columns (names as in the reference tool), from :func:`alphahat.fit.fit_marchenko_pastur`:
``num_spikes``, ``sigma_mp``, ``mp_softrank``, ``W_scale``, ``bulk_min``, ``bulk_max``; the
same fit of the shuffled ESD gives the ``rand_`` columns.

Randomization columns, with λ the ESD and λʳ the shuffled ESD (all shuffles pooled):

* ``max_rand_eval`` = max λʳ;  ``ww_softrank`` = max λʳ / max λ;  ``ww_maxdist`` = max λ − max λʳ
* ``rand_distance`` = the Jensen–Shannon distance (base-2 logs, so in [0, 1]) between the two
  ESDs as densities of log₁₀λ: both histograms on the same 100 equal bins spanning both samples
  (eigenvalues above 1e-5, the fit threshold), normalised to probabilities p and q, then
  √(½ KL(p‖m) + ½ KL(q‖m)), m = (p + q)/2. 0: the same spectral density; 1: disjoint supports.
  (The reference tool's ``rand_distance`` feeds the two sorted eigenvalue arrays to the
  Jensen–Shannon formula as if they were probability vectors, which is not a distance between
  densities.)
* correlation traps: eigenvalues of the shuffled ESD above the Tracy–Widom spike edge of its own
  MP fit. ``num_traps`` = their number per shuffle (the pooled count divided by the number of
  shuffles, rounded; the reference counts over all its shuffles); ``trap_ratio`` = max λʳ /
  ``rand_bulk_max``, how far the largest one stands beyond the MP edge (≈ 1 without a trap).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from alphahat.fit.marchenko_pastur import MarchenkoPasturFit

FloatArray = npt.NDArray[np.float64]
NAN = math.nan
#: Histogram bins of log₁₀λ for :func:`spectral_distance`.
DISTANCE_BINS = 100
#: Eigenvalues at or below this are left out of :func:`spectral_distance`.
DISTANCE_THRESHOLD = 1e-5


def mp_columns(fit: MarchenkoPasturFit, prefix: str = "") -> dict[str, Any]:
    """``num_spikes``, ``sigma_mp``, ``mp_softrank``, ``W_scale``, ``bulk_max``, ``bulk_min``."""
    ok = fit.fitted
    return {
        f"{prefix}num_spikes": fit.num_spikes if ok else None,
        f"{prefix}sigma_mp": fit.sigma,
        f"{prefix}mp_softrank": fit.softrank,
        f"{prefix}W_scale": fit.W_scale,
        f"{prefix}bulk_max": fit.bulk_max,
        f"{prefix}bulk_min": fit.bulk_min,
    }


def spectral_distance(
    first: npt.ArrayLike,
    second: npt.ArrayLike,
    *,
    bins: int = DISTANCE_BINS,
    threshold: float = DISTANCE_THRESHOLD,
) -> float:
    """Jensen–Shannon distance (base 2, in [0, 1]) between two ESDs as densities of log₁₀λ.

    Both samples (values above ``threshold``) are binned on the same ``bins`` equal bins of
    log₁₀λ spanning both; NaN if either has no value above the threshold.
    """
    a = np.asarray(first, dtype=np.float64).reshape(-1)
    b = np.asarray(second, dtype=np.float64).reshape(-1)
    a = np.log10(a[a > threshold])
    b = np.log10(b[b > threshold])
    if a.size == 0 or b.size == 0:
        return NAN
    low, high = min(a.min(), b.min()), max(a.max(), b.max())
    if low == high:
        return 0.0
    edges = np.linspace(low, high, bins + 1)
    p = np.histogram(a, edges)[0] / a.size
    q = np.histogram(b, edges)[0] / b.size
    m = 0.5 * (p + q)

    def kl_to_m(r: FloatArray) -> float:
        used = r > 0
        return float(np.sum(r[used] * np.log2(r[used] / m[used])))

    divergence = 0.5 * kl_to_m(p) + 0.5 * kl_to_m(q)
    return math.sqrt(min(max(divergence, 0.0), 1.0))


def randomization_columns(
    eigenvalues: FloatArray,
    random_eigenvalues: FloatArray,
    random_fit: MarchenkoPasturFit,
    replicas: int,
) -> dict[str, Any]:
    """The ``rand_*`` MP columns, correlation traps, and the ESD-vs-shuffled comparisons."""
    max_rand = float(np.max(random_eigenvalues)) if random_eigenvalues.size else NAN
    lambda_max = float(np.max(eigenvalues)) if eigenvalues.size else NAN
    row = mp_columns(random_fit, prefix="rand_")
    if random_fit.fitted:
        pooled = int(np.count_nonzero(random_eigenvalues > random_fit.spike_edge))
        row["num_traps"] = int(round(pooled / replicas))
        row["trap_ratio"] = max_rand / random_fit.bulk_max
    else:
        row["num_traps"], row["trap_ratio"] = None, NAN
    row.update(
        {
            "max_rand_eval": max_rand,
            "rand_distance": spectral_distance(eigenvalues, random_eigenvalues),
            "ww_softrank": max_rand / lambda_max if lambda_max > 0 else NAN,
            "ww_maxdist": lambda_max - max_rand,
        }
    )
    return row


__all__ = ["mp_columns", "randomization_columns", "spectral_distance"]
