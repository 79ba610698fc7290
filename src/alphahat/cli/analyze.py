"""``alphahat analyze MODEL``: the per-layer table (α, α̂, D, norms…) and the model summary."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from alphahat.cli._shared import (
    ANALYSIS_OPTIONS,
    EXECUTION_OPTIONS,
    EXIT_NO_LAYERS,
    SOURCE_OPTIONS,
    FormatOpt,
    ModelArg,
    OutputOpt,
    QuietOpt,
    emit,
    fail,
    note,
    option_message,
    option_values,
    output_format,
    print_table,
    with_options,
)
from alphahat.errors import AlphahatError, OptionError


def _journal_path(output: Path | None) -> Path | None:
    """Where ``analyze -o FILE`` keeps its finished layers until FILE is written."""
    if output is None:
        return None
    from alphahat.engine.journal import JOURNAL_SUFFIX

    return output.with_name(output.name + JOURNAL_SUFFIX)


def _run_notes(info: dict[str, Any]) -> None:
    if info.get("journal_restarted"):
        note(f"started {info['journal']} over: {info['journal_restarted']}")
    if info.get("resumed_layers"):
        note(f"resumed: {info['resumed_layers']} layer(s) already done in {info['journal']}")


@with_options(*ANALYSIS_OPTIONS, *EXECUTION_OPTIONS, *SOURCE_OPTIONS)
def analyze(
    model: ModelArg,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    quiet: QuietOpt = False,
    **options: Any,
) -> None:
    """Analyse every weight matrix: per-layer table (α, α̂, D, norms…) and the model summary."""
    from alphahat.analysis import analyze as run
    from alphahat.report import TABLE_COLUMNS

    chosen = output_format(fmt, output)
    values = option_values(options)
    if values.get("resume") and output is None:
        fail("--resume needs -o FILE (the finished layers are kept next to it)")
    journal = _journal_path(output)
    try:
        report = run(model, journal=journal, progress=not quiet, **values)
    except OptionError as exc:
        fail(option_message(exc))
    except (AlphahatError, ValueError) as exc:
        fail(str(exc))
    if not quiet:
        _run_notes(report.run_info)
    summary = report.summary()
    if chosen == "table":
        if output is not None:
            emit(report.details.to_string(index=False) + "\n\n" + summary.to_text() + "\n", output)
        else:
            from alphahat._version import __version__

            print_table(report.details, TABLE_COLUMNS, f"alphahat {__version__} — {model}")
            sys.stdout.write("\n" + summary.to_text() + "\n")
    else:
        emit(report.to_csv() if chosen == "csv" else report.to_json(), output)
        if output is not None and not quiet:
            typer.echo(summary.to_text(), err=True)
    if journal is not None:
        journal.unlink(missing_ok=True)  # its layers are in the output now
    failed = report.details[report.details["status"] == "failed"]
    if not quiet:
        for name, reason in zip(failed["name"], failed["reason"], strict=True):
            note(f"layer {name} failed: {reason}")
    if summary.model.num_layers == 0:
        fail(
            "no layer could be analysed (see the reasons above, or run 'alphahat describe')",
            EXIT_NO_LAYERS,
        )
