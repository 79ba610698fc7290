"""Figures of a comparison (matplotlib, imported lazily; no pyplot, no backend change).

* :func:`accuracy_scatter_plot` — accuracy against one metric, one colour per group, each
  group's OLS line (solid) and the pooled OLS line (dashed black): a Simpson's paradox shows as
  group lines sloping against the pooled one (the contest post-mortem's Figures 4–5).
* :func:`accuracy_scatter_grid` — the same for several metrics, one panel each.
* :func:`alpha_by_group_plot` — per group, each model's correlation flow (layer α against
  layer position) and its histogram of layer α, coloured by the model's accuracy.
* :func:`save_figures` — all of them as files.

Each plotting function draws on ``ax=``/``fig=`` when given (else a new figure) and returns
the figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from alphahat._imports import require
from alphahat.compare.core import POOLED, Comparison
from alphahat.report.io import write_atomic

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

GROUP_COLORS = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
)  # fmt: skip
LABELS = {
    "alpha": r"$\langle\alpha\rangle$ (Alpha)",
    "alpha_weighted": r"$\langle\hat\alpha\rangle$ (AlphaHat)",
    "log_norm": r"$\langle\log_{10}\|W\|_F^2\rangle$",
    "log_spectral_norm": r"$\langle\log_{10}\lambda_{\max}\rangle$ (LogSpectralNorm)",
    "log_alpha_norm": r"$\langle\log_{10}\sum\lambda^\alpha\rangle$",
    "stable_rank": "stable rank",
    "D": "KS distance D (QualityOfAlphaFit)",
    "entropy": "matrix entropy",
}


def _new_figure(width: float, height: float) -> Figure:
    require("matplotlib", "comparison figures")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _group_color(comparison: Comparison, group: str) -> str:
    return GROUP_COLORS[comparison.groups.index(group) % len(GROUP_COLORS)]


def _line(ax: Axes, x: np.ndarray[Any, Any], slope: float, intercept: float, **kw: Any) -> None:
    if x.size and math.isfinite(slope):
        xs = np.array([x.min(), x.max()])
        ax.plot(xs, intercept + slope * xs, **kw)


def accuracy_scatter_plot(comparison: Comparison, metric: str, *, ax: Axes | None = None) -> Figure:
    """Accuracy against ``metric``: points and OLS lines per group, pooled OLS line dashed."""
    if metric not in comparison.metrics:
        raise ValueError(f"{metric!r} is not one of the compared metrics {comparison.metrics}")
    if ax is None:
        ax = _new_figure(5.6, 4.2).add_subplot()
    usable = comparison.models[comparison.models["status"].isin(["analysed", "cached"])]
    groups = comparison.groups if comparison.has_groups else ()
    for group in groups:
        rows = usable[usable["group"] == group]
        x = rows[metric].to_numpy(dtype=np.float64)
        y = rows["accuracy"].to_numpy(dtype=np.float64)
        keep = np.isfinite(x)
        color = _group_color(comparison, group)
        stats = comparison.stats[(metric, group)]
        label = f"{group} (τ={stats.kendall_tau:+.2f})" if stats.ok else f"{group} (n={stats.n})"
        ax.scatter(x[keep], y[keep], s=22, color=color, label=label, alpha=0.85)
        _line(ax, x[keep], stats.slope, stats.intercept, color=color, lw=1.4)
    x = usable[metric].to_numpy(dtype=np.float64)
    keep = np.isfinite(x)
    pooled = comparison.stats[(metric, POOLED)]
    if not groups:
        ax.scatter(x[keep], usable["accuracy"].to_numpy(dtype=np.float64)[keep], s=22)
    _line(
        ax, x[keep], pooled.slope, pooled.intercept, color="black", ls="--", lw=1.6,
        label=f"pooled (τ={pooled.kendall_tau:+.2f}, R²={pooled.r2:.2f})",
    )  # fmt: skip
    check = next((c for c in comparison.checks if c.metric == metric), None)
    title = metric + ("  — Simpson's paradox" if check is not None and check.paradox else "")
    ax.set_title(title, fontsize=10, color="#b00020" if check and check.paradox else "black")
    ax.set_xlabel(LABELS.get(metric, metric))
    ax.set_ylabel(f"test accuracy ({comparison.accuracy_unit})")
    ax.legend(fontsize=7)
    fig = ax.get_figure()
    assert fig is not None
    return fig  # type: ignore[return-value]


def accuracy_scatter_grid(
    comparison: Comparison,
    metrics: Sequence[str] | None = None,
    *,
    fig: Figure | None = None,
    columns: int = 3,
) -> Figure:
    """:func:`accuracy_scatter_plot` for several metrics (default: all compared), a panel each."""
    metrics = list(metrics if metrics is not None else comparison.metrics)
    rows = math.ceil(len(metrics) / columns)
    if fig is None:
        fig = _new_figure(5.0 * min(columns, len(metrics)), 3.9 * rows)
    else:
        fig.clear()
    axes = np.atleast_1d(fig.subplots(rows, min(columns, len(metrics)), squeeze=False)).ravel()
    for ax, metric in zip(axes, metrics, strict=False):
        accuracy_scatter_plot(comparison, metric, ax=ax)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    return fig


def alpha_by_group_plot(comparison: Comparison, *, fig: Figure | None = None) -> Figure:
    """Per group: layer α against layer position (correlation flow) and α histograms.

    One line / step histogram per model, coloured by its accuracy (viridis: yellow = best).
    """
    from matplotlib import colormaps
    from matplotlib.colors import Normalize
    from matplotlib.ticker import MaxNLocator

    models = comparison.models[comparison.models["model"].isin(list(comparison.reports))]
    groups = [g for g in comparison.groups if (models["group"] == g).any()] or ["(none)"]
    if fig is None:
        fig = _new_figure(10.0, 2.7 * len(groups) + 0.6)
    else:
        fig.clear()
    axes = fig.subplots(len(groups), 2, squeeze=False)
    accuracies = models["accuracy"].to_numpy(dtype=np.float64)
    norm = Normalize(
        vmin=float(accuracies.min()) if accuracies.size else 0.0,
        vmax=float(accuracies.max()) if accuracies.size else 1.0,
    )
    cmap = colormaps["viridis"]
    alphas = [
        comparison.reports[m].details["alpha"].to_numpy(dtype=np.float64) for m in models["model"]
    ]
    finite = np.concatenate([a[np.isfinite(a)] for a in alphas]) if alphas else np.empty(0)
    edges = np.histogram_bin_edges(finite, bins=30) if finite.size else np.linspace(0, 10, 31)
    for (flow_ax, hist_ax), group in zip(axes, groups, strict=True):
        in_group = models[models["group"] == group]
        for model, accuracy in zip(in_group["model"], in_group["accuracy"], strict=True):
            details = comparison.reports[model].details.sort_values("layer_id")
            alpha = details["alpha"].to_numpy(dtype=np.float64)
            position = details["layer_id"].to_numpy(dtype=np.float64)
            ok = np.isfinite(alpha)
            color = cmap(norm(accuracy))
            flow_ax.plot(position[ok], alpha[ok], "o-", ms=3, lw=1, color=color)
            if ok.any():
                hist_ax.hist(alpha[ok], bins=edges, histtype="step", lw=1.3, color=color)
        hist_ax.axvspan(2.0, 6.0, color="#2ca02c", alpha=0.08)
        flow_ax.axhspan(2.0, 6.0, color="#2ca02c", alpha=0.08)
        flow_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        flow_ax.set_ylabel(f"{group}\nlayer α")
        hist_ax.set_ylabel("layers")
    axes[-1][0].set_xlabel("layer position (layer_id)")
    axes[-1][1].set_xlabel("layer α")
    axes[0][0].set_title("correlation flow: α per layer, one line per model", fontsize=10)
    axes[0][1].set_title("α histogram per model", fontsize=10)
    from matplotlib.cm import ScalarMappable

    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=0.6)
    bar.set_label(f"test accuracy ({comparison.accuracy_unit})")
    return fig


def figure_bytes(fig: Figure, fmt: str = "png", dpi: float = 110) -> bytes:
    """The figure rendered to ``fmt`` bytes (no timestamps or software tag in the file)."""
    import io

    buffer = io.BytesIO()
    metadata: dict[str, Any] = {"Software": None}
    if fmt == "svg":
        metadata = {"Date": None}
    fig.savefig(buffer, format=fmt, dpi=dpi, metadata=metadata)
    return buffer.getvalue()


def save_figures(
    comparison: Comparison, directory: str | Path, *, fmt: str = "png", dpi: float = 110
) -> list[Path]:
    """Write ``metrics_vs_accuracy``, ``<metric>_vs_accuracy`` per metric and ``alpha_by_group``.

    Returns the paths written (``<stem>.<fmt>`` in ``directory``, created if needed).
    """
    if fmt not in ("png", "svg", "pdf"):
        raise ValueError(f"fmt must be 'png', 'svg' or 'pdf'; got {fmt!r}")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    figures: list[tuple[str, Figure]] = [("metrics_vs_accuracy", accuracy_scatter_grid(comparison))]
    figures += [
        (f"{m}_vs_accuracy", accuracy_scatter_plot(comparison, m)) for m in comparison.metrics
    ]
    if comparison.reports:
        figures.append(("alpha_by_group", alpha_by_group_plot(comparison)))
    paths = []
    for stem, fig in figures:
        path = folder / f"{stem}.{fmt}"
        write_atomic(path, figure_bytes(fig, fmt, dpi))
        paths.append(path)
    return paths
