"""The self-contained HTML report of one model, with its figures.

Summary, warnings, the correlation flow and metric histograms, for transformers a block ×
module-kind heat map of mean α with the per-kind and per-block tables, the sortable per-layer table,
a per-layer drill-down with the fit diagnostics and the Marchenko–Pastur fit, and the
provenance — one file, nothing fetched from the network. The page and its tables are
:mod:`alphahat.report.html`; the figures :mod:`alphahat.plot`. Every figure of a layer draws
the fit its row reports: the report's kept fit (``analyze(..., keep_fits=True)``), else the
row's own numbers (:func:`alphahat.plot.fit_of_row`), never a new fit with other options.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from alphahat._version import __version__
from alphahat.engine.progress import ProgressCallback, progress_bar
from alphahat.report.html import (
    DEFAULT_MAX_DIAGNOSTICS,
    DiagnosticsChoice,
    figure_html,
    format_cell,
    html_page,
    layer_anchor,
    layer_table_html,
    provenance_section,
    select_diagnostic_layers,
    sortable_table,
    warnings_section,
)
from alphahat.report.io import write_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from alphahat.monitor.journal import MonitorRecords
    from alphahat.report import Report
    from alphahat.traps import TrapAnalysis

#: Palette colours of a layer's thumbnails (model figures get twice as many).
THUMBNAIL_COLORS = 32
#: Worker processes draw figures only when each gets at least this many layers (starting one,
#: with its imports, costs about as much as drawing four layers).
FIGURES_PER_WORKER = 4


def layer_figures(
    report: Report, row: Mapping[str, Any], reuse: dict[str, Figure] | None = None
) -> list[tuple[str, Figure | str]]:
    """The drill-down figures of one layer: (what, figure), or (what, why there is none).

    The diagnostics draw the layer's fit (see the module docstring); the MP figure the
    analysis' MP fit when ``mp_fit`` was on, else an MP fit of the same eigenvalues. With
    ``reuse`` (a dict this function fills), the figures of the previous call are drawn on again
    (:func:`alphahat.plot._mpl.empty_axes`): the figures returned before are then overwritten.
    """
    from alphahat.plot import fit_diagnostics, mp_fit_plot, new_figure
    from alphahat.plot._mpl import empty_axes
    from alphahat.plot.save import layer_inputs

    name = str(row["name"])
    evals = np.asarray(report.eigenvalues[name], dtype=np.float64)
    out: list[tuple[str, Figure | str]] = []
    try:
        inputs = layer_inputs(report, row, evals, "mp-fit")  # the fit and the MP fit
    except (ValueError, ArithmeticError) as exc:
        return [(what, f"No {what} figure: {exc}") for what in ("diagnostics", "MP")]
    cache: dict[str, Figure] = {} if reuse is None else reuse
    try:
        fig = fit_diagnostics(
            evals, inputs["fit"], fig=cache.get("diagnostics"), width=8.0, height=5.6
        )
        cache["diagnostics"] = fig
        out.append(("fit diagnostics", fig))
    except (ValueError, ArithmeticError) as exc:
        out.append(("fit diagnostics", f"No diagnostics figure: {exc}"))
    try:
        figure = cache.get("mp")
        if figure is None:
            figure = cache["mp"] = new_figure(5.0, 3.6)
            figure.add_subplot()
        mp_fit_plot(evals, inputs["mp_fit"], ax=empty_axes(figure.axes[0]))
        out.append(("Marchenko–Pastur fit", figure))
    except (ValueError, ArithmeticError, TypeError) as exc:
        out.append(("Marchenko–Pastur fit", f"No MP figure: {exc}"))
    return out


def layer_figures_html(
    report: Report, row: Mapping[str, Any], dpi: float, reuse: dict[str, Figure] | None = None
) -> list[str]:
    """The drill-down of one layer as HTML: a ``<figure>`` per drawn figure, a note per other.

    Each figure of :func:`layer_figures` (on the figures in ``reuse``), as a palette PNG data
    URI at ``dpi``.
    """
    from alphahat.plot import figure_data_uri

    name = str(row["name"])
    parts: list[str] = []
    for what, drawn in layer_figures(report, row, reuse=reuse):
        if isinstance(drawn, str):
            parts.append(f"<p class='note'>{html.escape(drawn)}</p>")
        else:
            uri = figure_data_uri(drawn, dpi=dpi, colors=THUMBNAIL_COLORS)
            parts.append(figure_html(uri, f"{what} of {name}"))
    return parts


def _one_layer(report: Report, name: str) -> Report:
    """``report`` cut down to what one layer's figures need (sent to a worker process)."""
    fits = {name: report.fits[name]} if name in report.fits else {}
    return replace(
        report,
        details=report.details.iloc[0:0],
        coverage=report.coverage.iloc[0:0],
        provenance={},
        eigenvalues={name: report.eigenvalues[name]},
        fits=fits,
        run_info={},
    )


#: The figures a worker process draws every layer on (one process, one layer at a time).
_WORKER_FIGURES: dict[str, Figure] = {}


def _draw_task(task: tuple[Report, dict[str, Any], float]) -> list[str]:
    """A worker's task: :func:`layer_figures_html` of one layer."""
    return layer_figures_html(*task, reuse=_WORKER_FIGURES)


def _drawn_layers(
    report: Report,
    rows: Sequence[Mapping[str, Any]],
    dpi: float,
    workers: int,
    update: ProgressCallback | None,
) -> list[list[str]]:
    """:func:`layer_figures_html` of each row, in order; on ``workers`` processes when > 1."""
    total = len(rows)
    workers = min(workers, total // FIGURES_PER_WORKER)  # a process costs ≈ 4 layers' figures
    if workers <= 1:
        drawn = []
        reuse: dict[str, Figure] = {}
        for done, row in enumerate(rows, 1):
            drawn.append(layer_figures_html(report, row, dpi, reuse))
            if update is not None:
                update(done, total, str(row["name"]))
        return drawn
    from alphahat.engine.executors import ProcessExecutor, TaskFailure, WorkerStartError

    pool = ProcessExecutor(workers, threads=1, preload=("alphahat.html_report",))
    tasks = [(_one_layer(report, str(r["name"])), dict(r), dpi) for r in rows]
    out: list[list[str]] = [[] for _ in rows]
    try:
        for done, (index, outcome) in enumerate(pool.map_unordered(_draw_task, tasks), 1):
            if isinstance(outcome, TaskFailure):
                outcome = [f"<p class='note'>No figures: {html.escape(outcome.reason)}</p>"]
            out[index] = outcome
            if update is not None:
                update(done, total, str(rows[index]["name"]))
    except WorkerStartError:  # no process could start: draw them here
        return _drawn_layers(report, rows, dpi, 1, update)
    return out


def _diagnostic_section(
    report: Report,
    names: Sequence[str],
    num_available: int,
    capped: bool,
    drawn: Sequence[Sequence[str]],
) -> str:
    records: list[dict[str, Any]] = report.details.to_dict("records")  # type: ignore[assignment]
    by_name = {str(r["name"]): r for r in records}
    blocks: list[str] = []
    for name, figures in zip(names, drawn, strict=True):
        row = by_name[name]
        layer_id = int(row["layer_id"])
        heading = (
            f"{layer_id}: {name} — {row['kind']} {row['N']}×{row['M']}, "
            f"α = {format_cell(row['alpha'])}, D = {format_cell(row['D'])}, {row['status']}"
        )
        blocks.append(
            f'<details class="layer" id="{layer_anchor(layer_id)}">'
            f"<summary>{html.escape(heading)}</summary>"
            f'<div class="figures">{"".join(figures)}</div></details>'
        )
    other = (
        "Draw any other layer with <code>alphahat plot MODEL --layer NAME</code>, or make the "
        "report with <code>--diagnostics all</code>."
    )
    if not names:
        return f"<p class='note'>No fit-diagnostics figures in this report. {other}</p>"
    note = (
        f"<p class='note'>Fit diagnostics (log-log, lin-lin and log-lin ESD with the fitted "
        f"tail law; KS distance D against x_min) for {len(names)} of {num_available} layers"
    )
    if len(names) < num_available:
        which = "the flagged ones and an even sample of the others" if capped else "as asked"
        note += f" ({which}). {other}"
    else:
        note += "."
    note += " Click a layer name in the table to jump to its figures.</p>"
    return note + "\n".join(blocks)


def _model_figures(report: Report, dpi: float) -> str:
    from alphahat.plot import figure_data_uri
    from alphahat.plot.model import correlation_flow_plot, metric_histograms_plot

    if not len(report.details):
        return "<p>No layers.</p>"
    colors = 2 * THUMBNAIL_COLORS
    flow = figure_data_uri(correlation_flow_plot(report), dpi=dpi, colors=colors)
    hists = figure_data_uri(metric_histograms_plot(report), dpi=dpi, colors=colors)
    return (
        '<div class="figures">'
        + figure_html(flow, "correlation flow", "Correlation flow: α and log₁₀ λ_max by layer.")
        + figure_html(hists, "histograms", "Histograms of α (2 ≤ α ≤ 6 shaded) and log₁₀ λ_max.")
        + "</div>"
    )


def blocks_section(report: Report, dpi: float) -> str:
    """The block × module-kind heat map of mean α, with the per-kind and per-block tables.

    Empty when the layer names have fewer than two transformer blocks
    (:mod:`alphahat.report.groups`), as the summary's lines.
    """
    from alphahat.plot import figure_data_uri
    from alphahat.plot.model import block_kind_heatmap
    from alphahat.report.html import sortable_table

    blocks = report.by_block()
    if len(blocks) < 2:
        return ""
    heatmap = figure_data_uri(block_kind_heatmap(report), dpi=dpi, colors=2 * THUMBNAIL_COLORS)
    caption = (
        "Mean α per transformer block × module kind (fitted layers; an empty cell: no such "
        "layer in the block)."
    )
    kinds = sortable_table(report.by_kind(), table_id="by-kind", caption="α and α̂ per module kind")
    per_block = sortable_table(blocks, table_id="by-block", caption="α and α̂ per block")
    return (
        '<section><h2 id="blocks">Blocks and module kinds</h2><div class="figures">'
        + figure_html(heatmap, "block × module kind heat map of mean α", caption)
        + f"</div>{kinds}{per_block}</section>"
    )


def report_html(
    report: Report,
    *,
    title: str | None = None,
    diagnostics: DiagnosticsChoice = "auto",
    max_diagnostics: int = DEFAULT_MAX_DIAGNOSTICS,
    dpi: float = 72,
    training_journal: MonitorRecords | str | Path | None = None,
    traps: TrapAnalysis | None = None,
    workers: int = 1,
    progress: bool = False,
) -> str:
    """The self-contained HTML report of one model (see the module docstring).

    Args:
        report: an analysis report; per-layer diagnostics need its eigenvalues
            (``analyze(..., keep_fits=True)``, or ``keep_eigenvalues=True``), the rest does not.
        title: page title (default: from the model's source).
        diagnostics: which layers get fit-diagnostics figures (:func:`select_diagnostic_layers`).
        max_diagnostics: the cap of ``"auto"`` (each figure adds ≈ 25 kB).
        dpi: resolution of the figures.
        training_journal: a journal of :class:`alphahat.monitor.Monitor` (JSON lines or a
            Parquet folder, or its records read back): adds the section "During training"
            (the model means per step and the trend figures).
        traps: :func:`alphahat.analyze_traps` of the model: adds its section
            (:func:`traps_section`, a heat map per trap).
        workers: processes that draw the layers' figures (1: in this process; at most one
            per :data:`FIGURES_PER_WORKER` layers).
        progress: a progress bar over the figures on stderr.
    """
    if not isinstance(max_diagnostics, int) or max_diagnostics < 0:
        raise ValueError(f"max_diagnostics must be an integer ≥ 0; got {max_diagnostics!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer ≥ 1; got {workers!r}")
    source = str(report.provenance.get("source", "")) or "model"
    title = title or f"alphahat report — {source}"
    evals = report.eigenvalues or {}
    names = select_diagnostic_layers(report.details, evals.keys(), diagnostics, max_diagnostics)
    anchors = set(names)
    summary = report.summary()
    frame = report.details.set_index("name", drop=False).loc[names]
    rows: list[dict[str, Any]] = frame.to_dict("records")  # type: ignore[assignment]
    with progress_bar(progress, len(rows) + 1, description="drawing figures") as update:
        model_figures = _model_figures(report, dpi)
        if update is not None:
            update(1, len(rows) + 1, "model figures")
        step = None if update is None else (lambda d, t, n: update(d + 1, t + 1, n))
        drawn = _drawn_layers(report, rows, dpi, workers, step)
    if not evals:
        diag = (
            "<p class='note'>No per-layer figures: this report holds no eigenvalues "
            "(analyse with <code>keep_fits=True</code> or <code>keep_eigenvalues=True</code>)."
            "</p>"
        )
    else:
        capped = diagnostics == "auto" and len(names) < len(evals)
        diag = _diagnostic_section(report, names, len(evals), capped, drawn)
    blocks = blocks_section(report, dpi)
    nav = " · ".join(
        f'<a href="#{i}">{t}</a>'
        for i, t in (
            ("summary", "Summary"),
            ("warnings", "Warnings"),
            ("figures", "Figures"),
            *((("blocks", "Blocks"),) if blocks else ()),
            ("layers", "Layers"),
            ("diagnostics", "Diagnostics"),
            *((("training-trends", "During training"),) if training_journal is not None else ()),
            *((("traps", "Traps"),) if traps is not None else ()),
            ("provenance", "Provenance"),
        )
    )
    training = ""
    if training_journal is not None:
        from alphahat.monitor.trend import trend_section

        training = trend_section(training_journal)
    trap_html = (
        f'<section id="traps">{traps_section(traps, dpi=dpi)}</section>'
        if traps is not None
        else ""
    )
    body = f"""<header><h1>{html.escape(title)}</h1>
<p class="muted">{len(report.details)} layers analysed · {summary.model.num_layers} fitted ·
alphahat {html.escape(str(report.provenance.get("alphahat_version", __version__)))}</p>
<nav>{nav}</nav></header>
<section id="summary-section"><h2 id="summary">Model summary</h2>{summary.to_html()}</section>
<section><h2 id="warnings">Warnings</h2>{warnings_section(report, anchors)}</section>
<section><h2 id="figures">Model figures</h2>{model_figures}</section>
{blocks}<section><h2 id="layers-heading">Layers</h2>
<p class="muted">Click a column header to sort; click a layer name for its diagnostics.</p>
{layer_table_html(report, anchors)}</section>
<section><h2 id="diagnostics">Fit diagnostics</h2>{diag}</section>
{training}
{trap_html}
<section><h2 id="provenance">Provenance</h2>{provenance_section(report)}</section>"""
    return html_page(title, body)


def write_html_report(report: Report, path: str | Path, **options: Any) -> Path:
    """Write :func:`report_html` to ``path`` atomically; returns the path."""
    target = Path(path)
    write_atomic(target, report_html(report, **options))
    return target


# --- correlation traps (alphahat.traps) ---------------------------------------------------

#: Heat maps drawn in a trap page (the largest traps first).
MAX_TRAP_FIGURES = 40
_TRAP_TABLE = (
    "layer_id", "name", "replica", "matrix", "mode", "lambda", "spike_edge", "edge_ratio",
    "top5_mass", "top10_mass", "ipr_u", "ipr_v", "rows", "columns",
)  # fmt: skip


def traps_section(analysis: TrapAnalysis, *, dpi: float = 72) -> str:
    """The correlation-traps section: summary, layer table, trap table, one heat map per trap."""
    from alphahat.plot import figure_data_uri
    from alphahat.plot.traps import trap_heatmap_plot

    summary = analysis.summary.iloc[0]
    fingerprint = html.escape(str(summary["fingerprint"]))
    head = (
        f"<h2>Correlation traps</h2><p>{int(summary['num_traps'])} traps in "
        f"{int(summary['layers_with_traps'])} of {int(summary['layers'])} layers (seed "
        f"{int(summary['seed'])}, shuffle fingerprint <code>{fingerprint}</code>). "
        "A trap is a singular mode of the element-shuffled W above the MP bulk edge plus the "
        "Tracy–Widom margin; its piece σ·u·vᵀ is shown un-shuffled, where it sits in W.</p>"
    )
    layers = sortable_table(analysis.layers, table_id="trap-layers", caption="Layers")
    traps = analysis.traps.copy()
    for column in ("rows", "columns"):
        traps[column] = [", ".join(map(str, v)) for v in traps[column]]
    table = sortable_table(traps, _TRAP_TABLE, table_id="traps", caption="Traps")
    order = sorted(range(len(analysis.found)), key=lambda i: -analysis.found[i].mode.eigenvalue)
    figures = []
    for i in order[:MAX_TRAP_FIGURES]:
        trap = analysis.found[i]
        ax = trap_heatmap_plot(trap)
        uri = figure_data_uri(ax.figure, dpi=dpi, colors=THUMBNAIL_COLORS * 2)  # type: ignore[arg-type]
        figures.append(figure_html(uri, f"trap heat map of {trap.name}", f"{trap.name}"))
    more = ""
    if len(order) > MAX_TRAP_FIGURES:
        more = f"<p class='note'>Heat maps of the {MAX_TRAP_FIGURES} largest traps.</p>"
    return head + layers + table + more + '<div class="figures">' + "".join(figures) + "</div>"


def write_traps_html(analysis: TrapAnalysis, path: str | Path, *, title: str = "") -> Path:
    """Write a self-contained page with :func:`traps_section` (atomically)."""
    title = title or "Correlation traps"
    page = html_page(title, f"<h1>{html.escape(title)}</h1>" + traps_section(analysis))
    write_atomic(Path(path), page)
    return Path(path)


__all__ = [
    "THUMBNAIL_COLORS",
    "blocks_section",
    "layer_figures",
    "layer_figures_html",
    "report_html",
    "traps_section",
    "write_html_report",
    "write_traps_html",
]
