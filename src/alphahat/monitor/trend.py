"""Trends of a monitor journal: the model means per step, and each metric against step.

* :func:`trend_table` — one row per recorded step: the model means
  (:data:`alphahat.metrics.SUMMARY_METRICS`), the number of layers and of alerts.
* :func:`trend_figure` — one metric (α, α̂ = α·log₁₀λ_max, log₁₀λ_max, …) against step: a
  line per layer coloured by its depth (layer id, viridis), the model mean in black, each
  alert a red × on its layer's value at its step, and for α the well-trained band [2, 6].
  matplotlib object API (:mod:`alphahat.plot._mpl`: no pyplot). The lines carry gids
  (``layer:NAME``, :data:`MEAN_GID`, :data:`ALERT_GID`) so their data can be read back.
* :func:`trend_section` / :func:`trend_page` — the table, the figures and the alerts as an
  HTML section, or a self-contained page (:func:`alphahat.report.html.html_page`).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from alphahat.metrics import SUMMARY_METRICS
from alphahat.monitor.journal import MonitorRecords, read_monitor_journal

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: The metrics :func:`trend_figures` draws by default.
TREND_METRICS = ("alpha", "alpha_weighted", "log_spectral_norm")
#: Axis labels of the metrics.
METRIC_LABELS = {
    "alpha": "α (power-law exponent)",
    "alpha_weighted": "α̂ = α · log₁₀ λ_max",
    "log_spectral_norm": "log₁₀ λ_max (log spectral norm)",
    "log_norm": "log₁₀ ‖W‖²_F",
    "log_alpha_norm": "log₁₀ Σ λᵅ",
    "stable_rank": "stable rank",
}
MEAN_GID = "model-mean"
ALERT_GID = "alerts"
ALERT_COLOR = "#d62728"


def layer_gid(name: str) -> str:
    """The gid of a layer's line."""
    return f"layer:{name}"


def _records(journal: MonitorRecords | str | Path) -> MonitorRecords:
    return journal if isinstance(journal, MonitorRecords) else read_monitor_journal(journal)


def trend_table(journal: MonitorRecords | str | Path) -> pd.DataFrame:
    """One row per step: step, epoch, layers, alerts and the model means."""
    import pandas as pd

    records = _records(journal)
    layers: dict[int, int] = {}
    for row in records.layer_rows():
        layers[int(row["step"])] = layers.get(int(row["step"]), 0) + 1
    alerts: dict[int, int] = {}
    for row in records.alert_rows():
        alerts[int(row["step"])] = alerts.get(int(row["step"]), 0) + 1
    rows = [
        {
            **row,
            "layers": layers.get(int(row["step"]), 0),
            "alerts": alerts.get(int(row["step"]), 0),
        }
        for row in records.step_rows()
    ]
    columns = ["step", "epoch", "layers", "alerts", *SUMMARY_METRICS]
    frame = pd.DataFrame(rows, columns=columns)
    frame["epoch"] = frame["epoch"].astype(float)  # NaN where the caller gave none
    return frame.sort_values("step", kind="stable").reset_index(drop=True)


def trend_figure(
    journal: MonitorRecords | str | Path, metric: str = "alpha", *, ax: Axes | None = None
) -> Figure:
    """``metric`` against step per layer (coloured by depth), the model mean and the alerts."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    from alphahat.plot._mpl import ALPHA_BAND, BAND_COLOR, axes_or_new

    records = _records(journal)
    ax = axes_or_new(ax, 6.4, 4.2)
    fig = ax.get_figure()
    layers: dict[str, list[tuple[int, float]]] = {}
    depth: dict[str, int] = {}
    for row in records.layer_rows():
        if row.get("status") != "fitted":
            continue
        name = str(row["name"])
        layers.setdefault(name, []).append((int(row["step"]), float(row[metric])))
        depth[name] = int(row["layer_id"]) if row.get("layer_id") is not None else len(depth)
    deepest = max(depth.values(), default=0)
    cmap, norm = colormaps["viridis"], Normalize(0, max(deepest, 1))
    if metric == "alpha":
        ax.axhspan(*ALPHA_BAND, color=BAND_COLOR, alpha=0.08, lw=0)
    for name in sorted(layers, key=lambda n: depth[n]):
        points = sorted(layers[name])
        ax.plot(
            [p[0] for p in points], [p[1] for p in points], color=cmap(norm(depth[name])),
            lw=1.0, alpha=0.85, gid=layer_gid(name),
        )  # fmt: skip
    steps = trend_table(records)
    if metric in steps.columns and len(steps):
        ax.plot(
            steps["step"], steps[metric], color="black", lw=2.2, label="model mean", gid=MEAN_GID
        )
    marks = [
        (int(a["step"]), value)
        for a in records.alert_rows()
        for step, value in layers.get(str(a["layer"]), ())
        if step == int(a["step"])
    ]
    if marks:
        ax.plot(
            [m[0] for m in marks], [m[1] for m in marks], ls="none", marker="x", ms=8, mew=2,
            color=ALERT_COLOR, label=f"alert ({len(marks)})", gid=ALERT_GID,
        )  # fmt: skip
    ax.set_xlabel("training step")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.set_title(f"{metric} during training ({len(layers)} layers)")
    if fig is not None:
        bar = fig.colorbar(
            ScalarMappable(norm, cmap), ax=ax, label="layer depth (layer id)", pad=0.02
        )
        ids = sorted(set(depth.values()))
        if 0 < len(ids) <= 12:
            bar.set_ticks(ids)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small", frameon=False)
    return fig  # type: ignore[return-value]


def trend_figures(
    journal: MonitorRecords | str | Path, metrics: Sequence[str] = TREND_METRICS
) -> dict[str, Figure]:
    """One :func:`trend_figure` per metric."""
    records = _records(journal)
    return {metric: trend_figure(records, metric) for metric in metrics}


def trend_section(
    journal: MonitorRecords | str | Path, metrics: Sequence[str] = TREND_METRICS
) -> str:
    """The trends as an HTML ``<section>``: the means per step, the figures, the alerts."""
    from alphahat.plot.save import figure_data_uri
    from alphahat.report.html import figure_html, sortable_table

    records = _records(journal)
    table = trend_table(records)
    parts = ['<section id="training-trends"><h2>During training</h2>']
    parts.append(sortable_table(table, caption="Model means per analysed step"))
    for metric, fig in trend_figures(records, metrics).items():
        uri = figure_data_uri(fig, colors=64)
        parts.append(
            figure_html(uri, f"{metric} against step", f"{metric} per layer and model mean")
        )
    alerts = records.alert_rows()
    if alerts:
        items = "".join(f'<li class="bad">{html.escape(str(a["message"]))}</li>' for a in alerts)
        parts.append(f'<h3>Alerts ({len(alerts)})</h3><ul class="warnings">{items}</ul>')
    parts.append("</section>")
    return "\n".join(parts)


def trend_page(
    journal: MonitorRecords | str | Path,
    metrics: Sequence[str] = TREND_METRICS,
    title: str = "alphahat — during training",
) -> str:
    """A self-contained HTML page of :func:`trend_section`."""
    from alphahat.report.html import html_page

    return html_page(title, f"<h1>{html.escape(title)}</h1>\n" + trend_section(journal, metrics))


__all__ = [
    "ALERT_GID",
    "MEAN_GID",
    "METRIC_LABELS",
    "TREND_METRICS",
    "layer_gid",
    "trend_figure",
    "trend_figures",
    "trend_page",
    "trend_section",
    "trend_table",
]
