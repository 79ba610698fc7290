"""Model figures: correlation flow, metric histograms, and several models on one figure.

Each function takes a :class:`~alphahat.report.Report` (or its ``details`` DataFrame) and draws
on ``fig`` (a new figure when None), returning it. Only fitted layers have an α; λ_max is shown
for every layer that has a spectrum.

* Correlation flow (Martin & Mahoney): α and log₁₀ λ_max against the layer position
  (``layer_id``), one colour per layer kind.
* Histograms of α (the band 2 ≤ α ≤ 6 of well-trained layers shaded) and of log₁₀ λ_max.
* A heat map of the mean α per transformer block × module kind (:func:`block_kind_heatmap`,
  from :mod:`alphahat.report.groups`).
* A comparison: the same histograms (as densities) and flows of two or more models; the flows
  are drawn against the relative depth, position / (number of layers − 1), so models of
  different depth line up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from alphahat.plot._mpl import (
    ALPHA_BAND,
    BAND_COLOR,
    HIST_COLOR,
    KIND_COLORS,
    MODEL_COLORS,
    OTHER_COLOR,
    figure_or_new,
    short_title,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from alphahat.report import Report

ALPHA_LABEL = "α"
LOG_LAMBDA_MAX = "log₁₀ λₘₐₓ"
BAND_LABEL = "2 ≤ α ≤ 6"


def layer_table(report: Report | pd.DataFrame) -> pd.DataFrame:
    """The per-layer rows of a report (or a details frame), in layer order."""
    frame = report if isinstance(report, pd.DataFrame) else getattr(report, "details", None)
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"expected a Report or its details DataFrame; got {type(report).__name__}")
    needed = {"layer_id", "alpha", "log_spectral_norm"}
    missing = sorted(needed - set(frame.columns))
    if missing:
        raise ValueError(f"the layer table has no column(s) {missing}")
    return frame.sort_values("layer_id", kind="stable").reset_index(drop=True)


def _values(frame: pd.DataFrame, column: str) -> np.ndarray[Any, np.dtype[np.float64]]:
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _flow(ax: Axes, frame: pd.DataFrame, column: str, ylabel: str) -> None:
    x = _values(frame, "layer_id")
    y = _values(frame, column)
    ok = np.isfinite(y)
    ax.plot(x[ok], y[ok], color="#bbbbbb", lw=0.8, zorder=1)
    kinds = frame["kind"].astype(str).to_numpy() if "kind" in frame else np.full(len(frame), "")
    for kind in dict.fromkeys(kinds[ok]):
        sel = ok & (kinds == kind)
        ax.scatter(
            x[sel],
            y[sel],
            s=18,
            color=KIND_COLORS.get(kind, OTHER_COLOR),
            label=kind or "layer",
            zorder=2,
        )
    if not ok.any():
        ax.text(0.5, 0.5, "no values", transform=ax.transAxes, ha="center")
    ax.set_ylabel(ylabel)


def correlation_flow_plot(
    report: Report | pd.DataFrame,
    *,
    fig: Figure | None = None,
    title: str | None = None,
    width: float = 8.0,
    height: float = 5.5,
) -> Figure:
    """α (top) and log₁₀ λ_max (bottom) against layer position, coloured by layer kind."""
    frame = layer_table(report)
    fig = figure_or_new(fig, width, height)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"hspace": 0.12})
    top.axhspan(*ALPHA_BAND, color=BAND_COLOR, alpha=0.12, label=BAND_LABEL)
    _flow(top, frame, "alpha", ALPHA_LABEL)
    _flow(bottom, frame, "log_spectral_norm", LOG_LAMBDA_MAX)
    bottom.set_xlabel("layer position (layer_id)")
    top.legend(fontsize=7, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=6, frameon=False)
    top.set_title(
        short_title(title if title is not None else "correlation flow", 60),
        fontsize=10,
        loc="left",
        y=1.0,
    )
    return fig


def _finite(frame: pd.DataFrame, column: str) -> np.ndarray[Any, np.dtype[np.float64]]:
    values = _values(frame, column)
    finite: np.ndarray[Any, np.dtype[np.float64]] = values[np.isfinite(values)]
    return finite


def default_bins(n: int) -> int:
    """Histogram bins for n layers: 2√n, between 8 and 40."""
    return int(np.clip(round(2 * np.sqrt(max(n, 1))), 8, 40))


def _histogram(
    ax: Axes, values: np.ndarray[Any, np.dtype[np.float64]], bins: int | None, xlabel: str
) -> None:
    from matplotlib.ticker import MaxNLocator

    if values.size:
        ax.hist(values, bins=bins or default_bins(values.size), color=HIST_COLOR, alpha=0.7)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.axvline(
            float(values.mean()),
            color="#333333",
            ls="--",
            lw=1.2,
            label=f"mean {values.mean():.3f}",
        )
    else:
        ax.text(0.5, 0.5, "no fitted layers", transform=ax.transAxes, ha="center")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("number of layers")


def metric_histograms_plot(
    report: Report | pd.DataFrame,
    *,
    fig: Figure | None = None,
    bins: int | None = None,
    title: str | None = None,
    width: float = 9.0,
    height: float = 3.6,
) -> Figure:
    """Histograms of α (2 ≤ α ≤ 6 shaded) and of log₁₀ λ_max (the log spectral norm)."""
    frame = layer_table(report)
    fig = figure_or_new(fig, width, height, suptitle=bool(title))
    left, right = fig.subplots(1, 2)
    left.axvspan(*ALPHA_BAND, color=BAND_COLOR, alpha=0.12, label=BAND_LABEL)
    _histogram(left, _finite(frame, "alpha"), bins, ALPHA_LABEL)
    _histogram(right, _finite(frame, "log_spectral_norm"), bins, LOG_LAMBDA_MAX)
    left.set_title("α of fitted layers", fontsize=10, y=1.0)
    right.set_title("log spectral norm", fontsize=10, y=1.0)
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    if title:
        fig.suptitle(short_title(title), fontsize=11)
    return fig


def relative_depth(frame: pd.DataFrame) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Position of each row among the rows in layer order, scaled to 0…1 (0 for one row)."""
    n = len(frame)
    return np.arange(n, dtype=np.float64) / (n - 1) if n > 1 else np.zeros(n)


def model_comparison_plot(
    reports: Mapping[str, Report | pd.DataFrame],
    *,
    fig: Figure | None = None,
    bins: int | None = None,
    title: str | None = None,
    width: float = 11.0,
    height: float = 7.0,
) -> Figure:
    """Several models on one figure: α and log₁₀ λ_max histograms (densities) and flows.

    ``reports`` maps a model's label to its report. Top row: histograms on common bins;
    bottom row: the correlation flows against relative depth.
    """
    if len(reports) < 1:
        raise ValueError("model_comparison_plot needs at least one report")
    frames = {str(label): layer_table(r) for label, r in reports.items()}
    fig = figure_or_new(fig, width, height, suptitle=bool(title))
    axes = fig.subplots(2, 2)
    axes[0, 0].axvspan(*ALPHA_BAND, color=BAND_COLOR, alpha=0.12, label=BAND_LABEL)
    axes[1, 0].axhspan(*ALPHA_BAND, color=BAND_COLOR, alpha=0.12)
    for col, (column, label) in enumerate(
        (("alpha", ALPHA_LABEL), ("log_spectral_norm", LOG_LAMBDA_MAX))
    ):
        pooled = np.concatenate([_finite(f, column) for f in frames.values()])
        nbins = bins or default_bins(pooled.size // max(len(frames), 1))
        edges = (
            np.histogram_bin_edges(pooled, bins=nbins)
            if pooled.size
            else np.linspace(0.0, 1.0, nbins + 1)
        )
        for i, (name, frame) in enumerate(frames.items()):
            color = MODEL_COLORS[i % len(MODEL_COLORS)]
            values = _finite(frame, column)
            if values.size:
                axes[0, col].hist(
                    values, bins=edges, density=True, histtype="step", lw=1.6, color=color,
                    label=name,
                )  # fmt: skip
            y = _values(frame, column)
            ok = np.isfinite(y)
            axes[1, col].plot(
                relative_depth(frame)[ok], y[ok], "o-", ms=3, lw=1, color=color, label=name
            )
        axes[0, col].set_xlabel(label)
        axes[0, col].set_ylabel("density of layers")
        axes[1, col].set_xlabel("relative depth (position / (layers − 1))")
        axes[1, col].set_ylabel(label)
        axes[0, col].legend(fontsize=7)
    axes[0, 0].set_title("α histograms", fontsize=10, y=1.0)
    axes[0, 1].set_title("log spectral norm histograms", fontsize=10, y=1.0)
    axes[1, 0].set_title("α flow", fontsize=10, y=1.0)
    axes[1, 1].set_title("log spectral norm flow", fontsize=10, y=1.0)
    if title:
        fig.suptitle(short_title(title), fontsize=11)
    return fig


__all__ = [
    "correlation_flow_plot",
    "layer_table",
    "metric_histograms_plot",
    "model_comparison_plot",
    "relative_depth",
]


#: gid of the heat map's image (tests read the drawn values back from it)
HEATMAP_GID = "alphahat-block-kind-heatmap"


def block_kind_heatmap(
    report: Report | pd.DataFrame,
    *,
    metric: str = "alpha_mean",
    block_pattern: str | None = None,
    fig: Figure | None = None,
    title: str | None = None,
    width: float | None = None,
    height: float | None = None,
) -> Figure:
    """Heat map of ``metric`` (default the mean α) per transformer block (rows) × module kind.

    The cells are :func:`alphahat.report.groups.block_kind_matrix` (fitted layers only; an
    empty cell is a kind the block does not have), each annotated with its value; the colour
    scale is centred on the band 2 ≤ α ≤ 6.

    Raises:
        ValueError: no layer name has a block (see ``block_pattern``).
    """
    from alphahat.report.groups import block_kind_matrix

    frame = report if isinstance(report, pd.DataFrame) else layer_table(report)
    matrix = block_kind_matrix(frame, metric, block_pattern)
    if matrix.empty:
        raise ValueError("no layer name has a transformer block (layers.N., h.N., blocks.N., …)")
    rows, cols = matrix.shape
    width = width if width is not None else 1.6 + 0.75 * cols
    height = height if height is not None else 1.3 + 0.28 * rows
    fig = figure_or_new(fig, width, height)
    fig.subplots_adjust(
        left=1.1 / width, right=1 - 0.9 / width, bottom=0.3 / height, top=1 - 0.85 / height
    )
    ax = fig.add_subplot()
    values = matrix.to_numpy(dtype=np.float64, na_value=np.nan)
    low, high = ALPHA_BAND[0] - 1.0, ALPHA_BAND[1] + 1.0
    image = ax.imshow(
        np.ma.masked_invalid(values), cmap="viridis_r", aspect="auto", vmin=low, vmax=high,
        interpolation="nearest",
    )  # fmt: skip
    image.set_gid(HEATMAP_GID)
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            dark = (value - low) / (high - low) > 0.45  # viridis_r: dark for large values
            ax.text(
                j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                color="white" if dark else "black",
            )  # fmt: skip
    ax.set_xticks(range(cols), [str(c) for c in matrix.columns], fontsize=8)
    ax.set_yticks(range(rows), [str(r) for r in matrix.index], fontsize=7)
    ax.set_xlabel("module kind")
    ax.set_ylabel("block")
    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()
    fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02).set_label(metric.replace("_", " "))
    label = title if title is not None else f"{metric.replace('_', ' ')} per block × module kind"
    fig.suptitle(short_title(label, 60), fontsize=9, x=0.02, ha="left", y=0.995, va="top")
    return fig
