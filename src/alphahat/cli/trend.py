"""``alphahat trend JOURNAL``: a monitor journal's model means per step, its figures, a page."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from alphahat.cli._shared import (
    FormatOpt,
    OutputOpt,
    QuietOpt,
    emit,
    fail,
    layer_specs,
    note,
    output_format,
    print_table,
)
from alphahat.errors import AlphahatError

if TYPE_CHECKING:
    from alphahat.monitor.journal import MonitorRecords


def trend(
    journal: Annotated[
        Path,
        typer.Argument(
            metavar="JOURNAL",
            help="A journal written by alphahat.monitor.Monitor (JSON lines, or a .parquet "
            "folder).",
            show_default=False,
        ),
    ],
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    metrics: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            "-m",
            metavar="METRIC",
            help="Metrics to plot (repeat or comma-separate); default: alpha, alpha_weighted, "
            "log_spectral_norm.",
        ),
    ] = None,
    figures: Annotated[
        Path | None,
        typer.Option(
            "--figures",
            metavar="DIR",
            help="Write one PNG per metric (trend-METRIC.png) into this folder "
            "(needs alphahat[plot]).",
        ),
    ] = None,
    html_path: Annotated[
        Path | None,
        typer.Option(
            "--html",
            metavar="FILE",
            help="Write a self-contained HTML page (needs alphahat[plot]).",
        ),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Print the model means per analysed step; plot each metric against step."""
    from alphahat.monitor.journal import read_monitor_journal
    from alphahat.monitor.trend import TREND_METRICS, trend_table

    chosen = output_format(fmt, output)
    names = tuple(layer_specs(metrics)) or TREND_METRICS
    try:
        records = read_monitor_journal(journal)
    except AlphahatError as exc:
        fail(str(exc))
    table = trend_table(records)
    known = {str(k) for r in records.layer_rows() for k in r}
    unknown = [m for m in names if m not in known]
    if unknown:
        fail(f"--metric: no column {', '.join(unknown)} in the journal's rows")
    if chosen == "table" and output is not None:
        fail(f"{output}: -o writes csv or json; name it .csv or .json, or pass -f")
    if chosen == "table":
        alerts = int(table["alerts"].sum()) if len(table) else 0
        title = f"{journal.name}: {len(table)} steps, {alerts} alerts — model means"
        print_table(table, list(table.columns), title)
    elif chosen == "csv":
        emit(table.to_csv(index=False), output)
    else:
        emit(table.to_json(orient="records", indent=1) + "\n", output)
    _write_figures(records, names, figures, html_path, quiet)


def _write_figures(
    records: MonitorRecords,
    names: tuple[str, ...],
    folder: Path | None,
    page: Path | None,
    quiet: bool,
) -> None:
    if folder is None and page is None:
        return
    from alphahat.monitor.trend import trend_figures, trend_page
    from alphahat.plot.save import render_figure
    from alphahat.report.io import write_atomic

    try:
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            for metric, fig in trend_figures(records, names).items():
                path = folder / f"trend-{metric}.png"
                write_atomic(path, render_figure(fig, "png", 100))
                if not quiet:
                    note(f"wrote {path}")
        if page is not None:
            write_atomic(page, trend_page(records, names))
            if not quiet:
                note(f"wrote {page}")
    except AlphahatError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write: {exc.strerror or exc}")
    sys.stdout.flush()
