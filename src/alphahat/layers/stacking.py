"""All of a model's weight matrices stacked into one (the reference tool's ``stacked=True``).

weightwatcher 0.7.7 (``WWStackedLayerIterator``): each layer's matrix as stored — W (out × in)
for a dense layer, its kernel positions' (out × in) slices side by side for a conv layer — is
standardized robustly, Ŵ = (W − median(W)) / MAD, padded with zero columns to the widest
layer, and the layers are stacked vertically into one matrix (transposed if it is wider than
tall), analysed as one layer named ``Stacked Layer``. Its MAD is
``scipy.stats.median_abs_deviation(W)`` with scipy's default ``axis=0``: one MAD per column
(median |w − median(column)| of each column) while the median subtracted is the whole
matrix's. That is reproduced here, so the stacked ESD is the reference's; a column whose MAD is
0 (the reference divides by 0) is left unscaled.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
STACKED_NAME = "Stacked Layer"


def stored_matrix(values: npt.ArrayLike) -> FloatArray:
    """A weight as the reference stacks it: as stored; conv: its (out × in) slices side by side."""
    w = np.asarray(values, dtype=np.float64)
    if w.ndim == 2:
        return w
    slices = w.reshape(w.shape[0], w.shape[1], -1)
    return np.hstack([slices[:, :, k] for k in range(slices.shape[2])])


def robust_standardized(matrix: npt.ArrayLike) -> FloatArray:
    """(W − median(W)) / MAD, the MAD per column as the reference computes it (0 → 1)."""
    w = np.asarray(matrix, dtype=np.float64)
    mad = np.median(np.abs(w - np.median(w, axis=0)), axis=0)
    mad = np.where(mad > 0, mad, 1.0)
    out: FloatArray = (w - np.median(w)) / mad
    return out


def stack_matrices(matrices: Sequence[npt.ArrayLike]) -> FloatArray:
    """The stacked matrix of the module docstring (N ≥ M)."""
    if not matrices:
        raise ValueError("stacked=True: no layer to stack")
    standardized = [robust_standardized(stored_matrix(m)) for m in matrices]
    width = max(w.shape[1] for w in standardized)
    stacked = np.vstack([np.pad(w, ((0, 0), (0, width - w.shape[1]))) for w in standardized])
    return stacked.T if stacked.shape[0] < stacked.shape[1] else stacked


__all__ = ["STACKED_NAME", "robust_standardized", "stack_matrices", "stored_matrix"]
