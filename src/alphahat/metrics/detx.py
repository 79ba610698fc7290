"""The detX (ERG) condition: how many of the largest eigenvalues have a product of about 1.

With the ESD normalised to mean 1 (x = W_scale²·λ, W_scale² = n/Σλ), the tail that satisfies
det X = 1 (the "exact renormalisation group" condition of Martin & Mahoney) is the smallest set
of largest eigenvalues whose product drops below 1: scanning i = n−1, n−2, …, 1, the first i
with Π_{j≥i} x_j < 1 gives ``detX_num`` = n − i and ``detX_val`` = λ_i (in the units of λ).

The products are computed as sums of logs, Σ_{j≥i} ln x_j < 0, so nothing overflows (the
reference tool multiplies, which overflows to ∞ once the top eigenvalues' product passes
1.8e308, and then never finds the crossing). A zero eigenvalue makes the product 0 (< 1).
If no such i exists, ``detX_num`` = n and ``detX_val`` = λ₀.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class DetXCondition:
    """Result of :func:`detx_condition`.

    Attributes:
        num: ``detX_num``, eigenvalues in the det X = 1 tail (0 when undefined).
        index: position of its smallest eigenvalue in the ascending ESD.
        value: ``detX_val``, that eigenvalue in the units of λ (NaN when undefined).
        normalized_value: the same eigenvalue normalised to mean 1 (W_scale²·λ).
    """

    num: int
    index: int
    value: float
    normalized_value: float


def detx_condition(eigenvalues: npt.ArrayLike) -> DetXCondition:
    """The det X = 1 tail of an ESD (see the module docstring); NaN value if undefined."""
    evals = np.sort(np.asarray(eigenvalues, dtype=np.float64).reshape(-1))
    n = int(evals.size)
    if n < 2 or not np.isfinite(evals).all() or evals[0] < 0 or not evals[0] < evals[-1]:
        return DetXCondition(0, 0, math.nan, math.nan)
    w_scale = math.sqrt(n) / math.sqrt(float(np.sum(evals)))
    x = (w_scale * w_scale) * evals
    with np.errstate(divide="ignore"):
        log_x = np.log(x)
    tail_log_sums = np.cumsum(log_x[::-1])[::-1]  # Σ_{j ≥ i} ln x_j
    below = np.flatnonzero(tail_log_sums[1:] < 0) + 1
    index = int(below[-1]) if below.size else 0
    return DetXCondition(n - index, index, float(evals[index]), float(x[index]))


__all__ = ["DetXCondition", "detx_condition"]
