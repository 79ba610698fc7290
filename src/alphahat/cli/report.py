"""``alphahat report MODEL -o report.html``: one self-contained HTML file to open and share."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from alphahat.cli._shared import (
    ANALYSIS_OPTIONS,
    EXIT_NO_LAYERS,
    SOURCE_OPTIONS,
    ModelArg,
    QuietOpt,
    check_output,
    checked_value,
    fail,
    layer_specs,
    note,
    option_message,
    option_values,
    require_extras,
    with_options,
)
from alphahat.errors import AlphahatError, OptionError

if TYPE_CHECKING:
    from alphahat.monitor.journal import MonitorRecords


@with_options(*ANALYSIS_OPTIONS, "workers", *SOURCE_OPTIONS)
def report(
    model: ModelArg,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write the HTML to FILE (atomically); else stdout.",
        ),
    ] = None,
    diagnostics: Annotated[
        str,
        typer.Option(
            "--diagnostics",
            "-d",
            metavar="WHICH",
            help="Layers with fit-diagnostics figures: auto (all, or the flagged ones and an "
            "even sample when there are more than --max-diagnostics), all, none, or layer "
            "ids/names/globs/kinds, comma-separated.",
        ),
    ] = "auto",
    max_diagnostics: Annotated[
        str,
        typer.Option("--max-diagnostics", metavar="N", help="The cap of --diagnostics auto."),
    ] = "50",
    title: Annotated[
        str | None, typer.Option("--title", metavar="TEXT", help="Page title.")
    ] = None,
    training_journal: Annotated[
        Path | None,
        typer.Option(
            "--training-journal",
            metavar="JOURNAL",
            help="Add the section 'During training' from an alphahat.monitor journal (JSON "
            "lines, or a .parquet folder).",
        ),
    ] = None,
    traps: Annotated[
        bool,
        typer.Option(
            "--traps",
            help="Add the correlation-traps section (alphahat traps: a row and a heat map per "
            "trap), with the same --seed and --layers.",
        ),
    ] = False,
    quiet: QuietOpt = False,
    **options: Any,
) -> None:
    """Write the HTML report: summary, warnings, figures, sortable layer table, diagnostics.

    MODEL may also be a JSON report saved by 'alphahat analyze -f json' (no per-layer figures
    then: the JSON holds no eigenvalues). Every figure draws the fit of its layer's row. The
    figures are drawn on one process per core (at most 8), or on N processes with -j N (which
    also analyses on N).
    """
    from alphahat.analysis import analyze
    from alphahat.html_report import report_html
    from alphahat.pipeline.options import Integer
    from alphahat.report.io import write_atomic

    cap = checked_value("--max-diagnostics", max_diagnostics, Integer(minimum=0))
    check_output(output)
    choice: str | list[str] = diagnostics.strip()
    if choice not in ("auto", "all", "none"):
        choice = layer_specs([diagnostics])
    require_extras(("matplotlib", "the HTML report's figures"))  # before any analysis
    values = option_values(options)
    records = _training_records(training_journal)  # read (or refused) before any analysis
    try:
        if model.lower().endswith(".json") and Path(model).is_file():
            # a report saved with `alphahat analyze -f json`: everything but the diagnostics
            from alphahat.report import Report

            result = Report.from_json(model)
        else:
            result = analyze(model, keep_fits=True, progress=not quiet, **values)
    except OptionError as exc:
        fail(option_message(exc))
    except (AlphahatError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{model}: cannot read: {exc.strerror or exc}")
    found = _traps(model, values) if traps else None
    try:
        page = report_html(
            result,
            title=title,
            diagnostics=choice,
            max_diagnostics=cap,
            training_journal=records,
            traps=found,
            workers=_figure_workers(values),
            progress=not quiet,
        )
    except (AlphahatError, ValueError) as exc:
        fail(str(exc))
    if output is None:
        sys.stdout.write(page)
    else:
        try:
            write_atomic(output, page)
        except OSError as exc:
            fail(f"{output}: cannot write: {exc.strerror or exc}")
        if not quiet:
            note(f"wrote {output} ({len(page.encode('utf-8')) / 1e6:.2f} MB)")
    if result.summary().model.num_layers == 0:
        fail("no layer could be analysed (the report says why)", EXIT_NO_LAYERS)


def _training_records(journal: Path | None) -> MonitorRecords | None:
    """The monitor journal's records, or the command's one-line error."""
    if journal is None:
        return None
    from alphahat.monitor.journal import read_monitor_journal

    try:
        return read_monitor_journal(journal)
    except AlphahatError as exc:
        fail(str(exc))


#: The most processes ``report`` draws figures on when ``-j`` is not given.
MAX_FIGURE_WORKERS = 8


def _figure_workers(values: dict[str, Any]) -> int:
    """Processes that draw the figures: ``-j N`` when given, else one per core (at most 8).

    Drawing is most of a report's time and each layer's figures are independent, so by
    default they use the machine's cores even when the analysis runs in this process; the page
    is the same whatever the number (``tests/test_html_report.py``).
    """
    import os

    import click

    context = click.get_current_context(silent=True)
    given = context is not None and context.get_parameter_source("workers") not in (
        None,
        click.core.ParameterSource.DEFAULT,
    )
    if given:
        return int(values.get("workers") or 1)
    return max(1, min(os.cpu_count() or 1, MAX_FIGURE_WORKERS))


def _traps(model: str, values: dict[str, Any]) -> Any:
    """``analyze_traps`` of the model with the report's seed, layers and planning options."""
    from alphahat.traps import TRAP_OPTIONS, analyze_traps

    if model.lower().endswith(".json"):
        fail("--traps needs the model's weights, not a JSON report")
    keep = {
        k: v for k, v in values.items() if k in (*TRAP_OPTIONS, "layers", "seed", "unsafe_load")
    }
    try:
        return analyze_traps(model, **keep)
    except (AlphahatError, ValueError, OSError) as exc:
        fail(str(exc))
