"""matplotlib, imported lazily; figures made without pyplot so no global state changes.

Figures are :class:`matplotlib.figure.Figure` objects with an Agg canvas attached: nothing is
registered with pyplot, no backend is selected or switched, and no window is ever opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alphahat._imports import require

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Colours of the layer kinds (stable across figures), then of anything else.
KIND_COLORS = {
    "linear": "#1f77b4",
    "embedding": "#9467bd",
    "conv1d": "#2ca02c",
    "conv2d": "#ff7f0e",
    "conv3d": "#8c564b",
}
OTHER_COLOR = "#7f7f7f"
#: Colours of models in comparison figures.
MODEL_COLORS = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
)  # fmt: skip
FIT_COLOR = "#d62728"
HIST_COLOR = "#4c72b0"
XMAX_COLOR = "#555555"
#: The α range of well-trained layers (Martin & Mahoney), shaded in α figures.
ALPHA_BAND = (2.0, 6.0)
BAND_COLOR = "#2ca02c"


#: Figure margins in inches (left, right, bottom, top) and gaps between panels (fractions of
#: the mean panel size). Fixed margins instead of a layout engine: constrained layout would
#: triple the drawing time of a figure.
MARGINS = (0.8, 0.2, 0.6, 0.45)
GAPS = (0.28, 0.42)  # (wspace, hspace)


def new_figure(width: float = 6.4, height: float = 4.2, *, suptitle: bool = False) -> Figure:
    """A new figure with an Agg canvas, outside pyplot (no global state touched)."""
    require("matplotlib", "plotting")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    left, right, bottom, top = MARGINS
    top += 0.3 if suptitle else 0.0
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        bottom=bottom / height,
        top=1 - top / height,
        wspace=GAPS[0],
        hspace=GAPS[1],
    )
    return fig


def axes_or_new(ax: Axes | None, width: float = 5.6, height: float = 4.0) -> Axes:
    """``ax`` itself, or the single axes of a new figure (room left for a suptitle)."""
    if ax is not None:
        return ax
    return new_figure(width, height, suptitle=True).add_subplot()


def figure_or_new(
    fig: Figure | None, width: float, height: float, *, suptitle: bool = False
) -> Figure:
    """``fig`` (cleared of any axes) or a new figure."""
    if fig is None:
        return new_figure(width, height, suptitle=suptitle)
    fig.clear()
    return fig


def empty_axes(ax: Axes) -> Axes:
    """``ax`` emptied for a new drawing: artists, legend, title, labels, limits and scales reset.

    Keeps the axes and their tick objects (about half the cost of a figure is making them:
    ``ax.cla()`` or a new figure makes them again), so one figure can draw many layers.
    """
    for artist in (*ax.lines, *ax.patches, *ax.collections, *ax.texts, *ax.images):
        artist.remove()
    legend = ax.get_legend()
    if legend is not None:
        legend.remove()
    ax.relim()
    ax.set_autoscale_on(True)
    ax.set_xscale("linear")  # also the default locators and formatters
    ax.set_yscale("linear")
    ax.set_title("")
    ax.set_xlabel("")
    ax.set_ylabel("")
    return ax


def short_title(text: str, width: int = 90) -> str:
    """``text``, or its end after an ellipsis when longer than ``width`` characters."""
    return text if len(text) <= width else "…" + text[-(width - 1) :]
