"""Where a correlation trap sits in W: a heat map of its un-shuffled piece |σ·u·vᵀ|."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from alphahat.plot._mpl import axes_or_new, short_title

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from alphahat.traps import Trap

#: Larger matrices are shown max-pooled to at most this many cells per side.
HEATMAP_CELLS = 160
#: The colour scale spans this fraction of the largest |entry| up to it (log scale).
DYNAMIC_RANGE = 1e-3


def _pooled(values: np.ndarray, cells: int) -> tuple[np.ndarray, int, int]:
    """|values| max-pooled in blocks so that each side has at most ``cells`` cells."""
    rows, cols = values.shape
    by_r, by_c = -(-rows // cells), -(-cols // cells)
    padded = np.zeros((-(-rows // by_r) * by_r, -(-cols // by_c) * by_c))
    padded[:rows, :cols] = np.abs(values)
    pooled = padded.reshape(padded.shape[0] // by_r, by_r, padded.shape[1] // by_c, by_c)
    return pooled.max(axis=(1, 3)), by_r, by_c


def trap_heatmap_plot(trap: Trap, *, ax: Axes | None = None, cells: int = HEATMAP_CELLS) -> Axes:
    """|piece| of ``trap`` in W's layout (rows: dim 0, columns: dim 1; conv: its kernel position).

    Matrices with more than ``cells`` rows or columns are max-pooled in blocks (said in the
    axis labels), so a trap on one entry stays visible; its largest entry is circled. The
    colours are log-scaled over three decades below the largest entry: a trap from one large
    entry shows as that entry, with the faint row and column it drags along.
    """
    ax = axes_or_new(ax, 5.2, 4.2)
    piece = trap.piece()
    matrix = piece.reshape(piece.shape[0], piece.shape[1], -1)
    position = int(np.argmax(np.abs(matrix).reshape(-1)))
    r, c, k = np.unravel_index(position, matrix.shape)
    shown, by_r, by_c = _pooled(matrix[:, :, k], cells)
    from matplotlib.colors import LogNorm

    top = float(shown.max()) if shown.size and shown.max() > 0 else 1.0
    norm = LogNorm(vmin=top * DYNAMIC_RANGE, vmax=top)
    extent = (0.0, shown.shape[1] * by_c, shown.shape[0] * by_r, 0.0)  # W's row/column units
    image = ax.imshow(
        np.clip(shown, top * DYNAMIC_RANGE, None),
        cmap="magma",
        norm=norm,
        aspect="auto",
        interpolation="nearest",
        extent=extent,
    )
    ax.figure.colorbar(image, ax=ax, label="|σ·u·vᵀ| (un-shuffled, log scale)")
    ax.scatter([c + 0.5], [r + 0.5], s=120, facecolors="none", edgecolors="#00c0ff")
    pooled_note = f" (max over {by_r}×{by_c} blocks)" if by_r * by_c > 1 else ""
    ax.set_xlabel(f"column (input unit){pooled_note}")
    ax.set_ylabel("row (output unit)")
    where = f" [kernel position {k}]" if matrix.shape[2] > 1 else ""
    ax.set_title(
        short_title(
            f"{trap.name}{where}: shuffle {trap.replica}, mode {trap.mode.mode}, "
            f"λ = {trap.mode.eigenvalue:.4g}",
            70,
        ),
        fontsize=9,
    )
    return ax


__all__ = ["DYNAMIC_RANGE", "HEATMAP_CELLS", "trap_heatmap_plot"]
