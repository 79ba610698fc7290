"""FARMS: the ESD of fixed-aspect-ratio submatrices of W (Hu, Goel, Killiakov & Yang, ICML 2025).

"Eigenspectrum Analysis of Neural Networks without Aspect Ratio Bias" (FARMS: Fixed-Aspect-
Ratio Matrix Subsampling). The shape of an N × M matrix alone moves the power-law exponent α of
its ESD: for i.i.d. weights the Marchenko–Pastur bulk is narrow when Q = N/M is large (a steep
tail, a large α) and reaches down to 0 when Q = 1 (a shallow one, a small α), so layers of
different shapes are not comparable. FARMS fits instead the pooled ESD of submatrices that all
have one aspect ratio.

With the oriented matrix W (N × M, N ≥ M), the submatrix side m, the aspect ratio Q ≥ 1 and
``windows`` positions per dimension:

* submatrix shape: n × m' with m' = min(m, M, ⌊N/Q⌋) columns and n = ⌊Q · m'⌋ rows, so every
  submatrix has the aspect ratio Q whatever W's;
* positions: along the rows, ``windows`` starts spread evenly over [0, N − n]: step
  s_r = max(1, ⌊(N − n)/(windows − 1)⌋), start_i = min(i · s_r, N − n) for
  i < min(windows, ⌊(N − n)/s_r⌋ + 1) (one start when n = N); the same along the columns.
  Submatrices overlap where the windows do;
* the FARMS ESD: the eigenvalues λ = σ² of every submatrix W[r:r+n, c:c+m'], pooled and
  sorted — then fitted as any ESD (:mod:`alphahat.fit.esd`).

The positions follow the paper's deterministic evenly spaced sliding windows (no random
sampling, so no seed). A conv layer's kernel slices are each subsampled the same way and all
pooled (the paper's own conv handling differs; see docs/farms.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["FarmsWindows", "farms_submatrices", "farms_windows"]


@dataclass(frozen=True)
class FarmsWindows:
    """Where FARMS takes its submatrices of one N × M matrix.

    Attributes:
        rows: submatrix rows n = ⌊Q · cols⌋.
        cols: submatrix columns m' = min(m, M, ⌊N/Q⌋).
        row_starts: first row of each window along the rows.
        col_starts: first column of each window along the columns.
    """

    rows: int
    cols: int
    row_starts: tuple[int, ...]
    col_starts: tuple[int, ...]

    @property
    def count(self) -> int:
        """Number of submatrices (every row start with every column start)."""
        return len(self.row_starts) * len(self.col_starts)

    @property
    def shape(self) -> str:
        """``"n×m"``, the submatrices' shape."""
        return f"{self.rows}x{self.cols}"


def _starts(length: int, size: int, windows: int) -> tuple[int, ...]:
    """``windows`` evenly spread starts of a window of ``size`` along ``length`` (see module)."""
    span = length - size
    step = max(1, span // (windows - 1)) if windows > 1 else max(1, span)
    count = min(windows, span // step + 1)
    return tuple(min(i * step, span) for i in range(count))


def farms_windows(N: int, M: int, size: int, aspect_ratio: float, windows: int) -> FarmsWindows:
    """The FARMS submatrices of an N × M matrix (N ≥ M); formulas in the module docstring.

    Raises:
        ValueError: N < M, a size or window count below 1, or Q < 1.
    """
    if N < M or M < 1:
        raise ValueError(f"FARMS needs an N × M matrix with N ≥ M ≥ 1; got {N} × {M}")
    if size < 1 or windows < 1 or not aspect_ratio >= 1.0:
        raise ValueError(
            f"FARMS needs size ≥ 1, windows ≥ 1 and aspect ratio ≥ 1; got {size}, {windows}, "
            f"{aspect_ratio}"
        )
    cols = max(1, min(size, M, int(N // aspect_ratio)))
    rows = max(cols, min(N, int(aspect_ratio * cols)))
    return FarmsWindows(rows, cols, _starts(N, rows, windows), _starts(M, cols, windows))


def farms_submatrices(
    matrices: Sequence[npt.NDArray[np.generic]], size: int, aspect_ratio: float, windows: int
) -> tuple[list[npt.NDArray[np.generic]], FarmsWindows]:
    """Views of the FARMS submatrices of each matrix (all N × M, N ≥ M), and where they are.

    Every submatrix is n × m' with n ≥ m', as :func:`alphahat.spectrum.layer_spectrum` wants.
    """
    N, M = (int(d) for d in matrices[0].shape)
    where = farms_windows(N, M, size, aspect_ratio, windows)
    views = [
        matrix[r : r + where.rows, c : c + where.cols]
        for matrix in matrices
        for r in where.row_starts
        for c in where.col_starts
    ]
    return views, where
