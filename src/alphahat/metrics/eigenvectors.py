"""Eigenvector metrics: how localized the eigenvectors of X = WᵀW are, bulk vs power-law tail.

Each matrix W (N × M, N ≥ M, conv slices each) gives X = WᵀW (M × M, symmetric), whose
orthonormal eigenvectors v come from a symmetric eigensolver (``numpy.linalg.eigh``; a general
``eig`` can return complex, non-orthogonal vectors for clustered eigenvalues). For a unit v
with M components and p_i = v_i²:

* ``loc_ratio``  = ‖v‖₁ / ‖v‖∞, from 1 (one component) to M (flat);
* ``part_ratio`` = (Σ v_i²)² / Σ v_i⁴ = 1 / Σ p_i², the participation ratio: the number of
  components that carry v, from 1 to M (M/3 on average for a random Gaussian vector);
* ``vec_entropy`` = −Σ p_i ln p_i / ln M, the Shannon entropy of p normalised to [0, 1]
  (1: flat; about 1 − (2 − γ − ln 2)/ln M for a random vector).

Eigenpairs of all matrices of a layer are pooled and ranked by eigenvalue; the top
``num_pl_spikes`` (the eigenvalues ≥ x_min of the power-law fit) are the tail, the rest the
bulk. Columns: ``{bulk,tail}_{mean,var}_{vec_entropy,loc_ratio,part_ratio}`` (population
variance), NaN for an empty group. The reference tool reports ‖v‖₂/‖v‖₄ = part_ratio^(1/4)
and a histogram-based entropy of |v| under the same names (see docs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
VECTOR_METRICS = ("vec_entropy", "loc_ratio", "part_ratio")


def vector_metrics(vectors: npt.ArrayLike) -> dict[str, FloatArray]:
    """``loc_ratio``, ``part_ratio`` and ``vec_entropy`` of each column of ``vectors``."""
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    m = v.shape[0]
    norms = np.linalg.norm(v, axis=0)
    unit = v / np.where(norms > 0, norms, 1.0)
    p = unit * unit
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
        entropy = -plogp.sum(axis=0) / math.log(m) if m > 1 else np.zeros(v.shape[1])
    absolute = np.abs(unit)
    return {
        "vec_entropy": np.asarray(entropy, dtype=np.float64),
        "loc_ratio": absolute.sum(axis=0) / absolute.max(axis=0),
        "part_ratio": 1.0 / (p * p).sum(axis=0),
    }


def eigenvector_columns(
    matrices: Sequence[npt.NDArray[np.generic]], num_tail: int | None, scale: float = 1.0
) -> dict[str, Any]:
    """Bulk and tail means and variances of the eigenvector metrics (module docstring).

    ``num_tail``: eigenpairs in the tail (None: the power-law fit failed, all NaN).
    """
    names = [
        f"{group}_{stat}_{metric}"
        for group in ("bulk", "tail")
        for metric in VECTOR_METRICS
        for stat in ("mean", "var")
    ]
    if num_tail is None or not matrices:
        return dict.fromkeys(names, math.nan)
    evals: list[FloatArray] = []
    metrics: dict[str, list[FloatArray]] = {k: [] for k in VECTOR_METRICS}
    for matrix in matrices:
        w = np.asarray(matrix, dtype=np.float64) * scale
        if w.shape[0] < w.shape[1]:
            w = w.T
        values, vectors = np.linalg.eigh(w.T @ w)
        evals.append(values)
        for key, column in vector_metrics(vectors).items():
            metrics[key].append(column)
    order = np.argsort(np.concatenate(evals), kind="stable")
    split = order.size - min(max(num_tail, 0), order.size)
    row: dict[str, Any] = {}
    for metric in VECTOR_METRICS:
        ranked = np.concatenate(metrics[metric])[order]
        for group, part in (("bulk", ranked[:split]), ("tail", ranked[split:])):
            row[f"{group}_mean_{metric}"] = float(np.mean(part)) if part.size else math.nan
            row[f"{group}_var_{metric}"] = float(np.var(part)) if part.size else math.nan
    return {name: row[name] for name in names}


__all__ = ["VECTOR_METRICS", "eigenvector_columns", "vector_metrics"]
