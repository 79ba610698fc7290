"""Spectrum: eigenvalues λ = σ² of WᵀW for a layer's matrices, pooled and sorted, in float64.

Eigenvalues are those of W as stored (not divided by N), computed from the singular values
of LAPACK's divide-and-conquer SVD (``gesdd``) of each matrix upcast to float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.linalg

from alphahat.errors import LayerError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LayerSpectrum:
    """The pooled ESD of one layer.

    Attributes:
        eigenvalues: λᵢ = σᵢ², ascending, float64, M per matrix.
        N: rows of each matrix (N ≥ M).
        M: columns of each matrix.
        num_matrices: matrices pooled (kernel positions of a conv layer, else 1).
    """

    eigenvalues: FloatArray
    N: int
    M: int
    num_matrices: int


def _non_finite_message(matrix: npt.NDArray[np.generic]) -> str:
    nan = int(np.isnan(matrix).sum())
    inf = int(np.isinf(matrix).sum())
    parts = [f"{nan} NaN" if nan else "", f"{inf} Inf" if inf else ""]
    return f"weights contain {' and '.join(p for p in parts if p)} value(s)"


def singular_values(matrix: npt.NDArray[np.generic], scale: float = 1.0) -> FloatArray:
    """Singular values of ``scale · matrix`` in float64 (LAPACK ``gesdd``), descending.

    Raises:
        LayerError: the matrix has NaN or Inf entries, or the SVD does not converge.
    """
    w = np.asarray(matrix, dtype=np.float64)
    if scale != 1.0:
        w = w * scale
    if not np.isfinite(w).all():
        raise LayerError(_non_finite_message(np.asarray(matrix, dtype=np.float64)))
    try:
        values: FloatArray = scipy.linalg.svd(w, compute_uv=False, check_finite=False)
    except np.linalg.LinAlgError as exc:
        raise LayerError(f"SVD did not converge ({exc})") from exc
    return values


def layer_spectrum(
    matrices: Sequence[npt.NDArray[np.generic]], scale: float = 1.0
) -> LayerSpectrum:
    """Pooled, sorted eigenvalues of all matrices of a layer (each N × M with N ≥ M)."""
    if not matrices:
        raise LayerError("no matrices to analyse")
    N, M = matrices[0].shape
    evals = np.concatenate([singular_values(w, scale) ** 2 for w in matrices])
    if not np.isfinite(evals).all():
        raise LayerError("eigenvalues overflow float64 (weights larger than about 1e154)")
    evals.sort()
    return LayerSpectrum(evals, int(N), int(M), len(matrices))
