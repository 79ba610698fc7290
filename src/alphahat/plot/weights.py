"""A layer's entry distribution: log-binned histograms of |w| for each side, on log–log axes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from alphahat.plot._mpl import FIT_COLOR, HIST_COLOR, axes_or_new, short_title

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: Logarithmic bins of the histograms.
WEIGHT_BINS = 60
_SIDE_COLORS = {"positive": HIST_COLOR, "negative": "#dd8452"}


def weight_histogram_plot(
    entries: npt.ArrayLike,
    fits: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    name: str = "",
    ax: Axes | None = None,
    bins: int = WEIGHT_BINS,
) -> Axes:
    """Densities of w > 0 and of −w for w < 0 on shared log-spaced bins, log–log axes.

    ``fits`` (side → a row of :func:`alphahat.analyze_weights`) adds each side's fitted power
    law over its tail, p(x) = (n_tail/n)(α − 1)/x_min (x/x_min)^(−α) (the tail's share of the side).
    """
    ax = axes_or_new(ax, 5.6, 4.0)
    values = np.asarray(entries, dtype=np.float64).reshape(-1)
    sides = {"positive": values[values > 0], "negative": -values[values < 0]}
    pooled = np.concatenate(list(sides.values()))
    if pooled.size < 2 or pooled.min() == pooled.max():
        ax.text(0.5, 0.5, "too few distinct entries", ha="center", transform=ax.transAxes)
        return ax
    edges = np.geomspace(pooled.min(), pooled.max(), bins + 1)
    for side, x in sides.items():
        if x.size == 0:
            continue
        density, _ = np.histogram(x, edges, density=True)
        centers = np.sqrt(edges[:-1] * edges[1:])
        shown = density > 0
        ax.plot(centers[shown], density[shown], "o", ms=3, color=_SIDE_COLORS[side],
                label=f"{side} ({x.size} entries)")  # fmt: skip
        row = (fits or {}).get(side)
        if row is not None and np.isfinite(row.get("pl_alpha", np.nan)):
            alpha, xmin = float(row["pl_alpha"]), float(row["pl_xmin"])
            share = float(row["n_tail"]) / x.size
            grid = np.geomspace(xmin, x.max(), 50)
            ax.plot(grid, share * (alpha - 1) / xmin * (grid / xmin) ** (-alpha), "-",
                    color=FIT_COLOR if side == "positive" else "#8c2d04",
                    label=f"{side} tail: α = {alpha:.2f}")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("|w|")
    ax.set_ylabel("density")
    ax.legend(fontsize=7)
    ax.set_title(short_title(f"{name}: weight entries", 70), fontsize=9)
    return ax


__all__ = ["WEIGHT_BINS", "weight_histogram_plot"]
