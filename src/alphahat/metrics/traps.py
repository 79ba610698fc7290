"""Correlation traps, one by one: the singular modes of a shuffled matrix above the MP edge.

Shuffling the entries of W destroys its correlations; what still stands out of the shuffled
matrix's Marchenko–Pastur bulk comes from a few very large entries, which no shuffle can
spread out (Martin & Mahoney, "Heavy-Tailed Self-Regularization", JMLR 22 (2021); the
reference tool's ``randomize``). A **trap** is a singular mode (σ, u, v) of a shuffled matrix S
whose eigenvalue λ = (scale·σ)² lies above the spike edge of the MP fit of the shuffled ESD —
the bulk edge λ₊ plus the Tracy–Widom margin, the rule of the ``num_traps`` column
(:mod:`alphahat.metrics.randomization`).

For each trap, with ``source`` the map from S's entries to W's (S.flat[t] = W.flat[source[t]]):

* the piece σ·u·vᵀ of S, un-shuffled to the layout of W: P.flat[source[t]] = (σ u vᵀ).flat[t];
* concentration: the share of ‖P‖²_F = σ² held by its k largest entries (k = 5, 10);
* the inverse participation ratio IPR(x) = Σ xᵢ⁴ of the unit vectors u and v (1/n for a
  vector spread evenly over n entries, 1 for a single entry);
* the positions of P's largest entries in W, with W's values there: where the trap sits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class TrapMode:
    """One singular mode of a shuffled matrix above the MP spike edge.

    Attributes:
        mode: its index among the shuffled matrix's singular values (0 = largest).
        eigenvalue: λ = (scale·σ)², in the units of the layer's ESD.
        singular_value: σ of the unscaled shuffled matrix (the units of W).
        u, v: the unit left and right singular vectors (rows and columns of S).
    """

    mode: int
    eigenvalue: float
    singular_value: float
    u: FloatArray = field(repr=False)
    v: FloatArray = field(repr=False)

    def piece(self) -> FloatArray:
        """σ·u·vᵀ, in the layout of the shuffled matrix."""
        piece: FloatArray = self.singular_value * np.outer(self.u, self.v)
        return piece


def trap_modes(shuffled: npt.ArrayLike, scale: float, spike_edge: float) -> list[TrapMode]:
    """The singular modes of ``shuffled`` whose λ = (scale·σ)² exceeds ``spike_edge``.

    Only those modes are computed: the eigenvectors of the smaller Gram matrix (SᵀS or SSᵀ,
    float64) with eigenvalue σ² above ``spike_edge``/scale² (LAPACK ``syevr`` by value), the
    other vector by u = Sv/σ (or v = Sᵀu/σ). Modes above the bulk are well separated, so
    these vectors agree with the SVD's to the Gram matrix's rounding over the gap. Decreasing
    σ; each pair's sign set so that u's largest entry is positive.
    """
    from scipy.linalg import eigh

    s = np.asarray(shuffled, dtype=np.float64)
    wide = s.shape[0] < s.shape[1]
    gram = s @ s.T if wide else s.T @ s
    lower = spike_edge / (scale * scale)
    values, vectors = eigh(gram, subset_by_value=(lower, np.inf), driver="evr")
    modes = []
    for i, k in enumerate(np.argsort(values)[::-1]):
        sigma = float(np.sqrt(max(values[k], 0.0)))
        if not (scale * sigma) ** 2 > spike_edge or sigma == 0.0:
            continue
        first = vectors[:, k]
        other = (s @ first if not wide else s.T @ first) / sigma
        other /= np.linalg.norm(other)
        u, v = (first, other) if wide else (other, first)
        if u[int(np.argmax(np.abs(u)))] < 0:
            u, v = -u, -v
        modes.append(TrapMode(i, (scale * sigma) ** 2, sigma, u.copy(), v.copy()))
    return modes


def unshuffle(piece: npt.ArrayLike, source: npt.ArrayLike, size: int) -> FloatArray:
    """The flat stored layout of ``piece``: out[source[t]] = piece.flat[t], 0 elsewhere."""
    out = np.zeros(size)
    out[np.asarray(source, dtype=np.int64).reshape(-1)] = np.asarray(piece).reshape(-1)
    return out


def inverse_participation_ratio(vector: npt.ArrayLike) -> float:
    """IPR = Σ xᵢ⁴ / (Σ xᵢ²)²: 1/n spread evenly over n entries, 1 on a single entry."""
    x = np.asarray(vector, dtype=np.float64).reshape(-1)
    norm2 = float(np.dot(x, x))
    return float(np.sum(x**4) / norm2**2) if norm2 > 0 else float("nan")


def top_mass(piece: npt.ArrayLike, k: int) -> float:
    """The share of Σ pᵢ² held by the k largest |pᵢ| (1 for a piece on ≤ k entries)."""
    p2 = np.sort(np.asarray(piece, dtype=np.float64).reshape(-1) ** 2)[::-1]
    total = float(p2.sum())
    return float(p2[:k].sum() / total) if total > 0 else float("nan")


def largest_entries(piece: npt.ArrayLike, k: int) -> IndexArray:
    """Flat indices of the k largest |pᵢ|, largest first (ties by index)."""
    flat = np.abs(np.asarray(piece, dtype=np.float64).reshape(-1))
    k = min(k, flat.size)
    order = np.lexsort((np.arange(flat.size), -flat))[:k]
    return order.astype(np.int64)


def support(piece: npt.ArrayLike, share: float = 0.9) -> IndexArray:
    """The fewest entries holding ``share`` of Σ pᵢ² (largest |pᵢ| first): where a trap sits."""
    flat = np.asarray(piece, dtype=np.float64).reshape(-1)
    order = largest_entries(flat, flat.size)
    mass = np.cumsum(flat[order] ** 2)
    if mass[-1] <= 0:
        return order[:0]
    count = int(np.searchsorted(mass, share * mass[-1], side="left")) + 1
    return order[:count]


__all__ = [
    "TrapMode",
    "inverse_participation_ratio",
    "largest_entries",
    "support",
    "top_mass",
    "trap_modes",
    "unshuffle",
]
