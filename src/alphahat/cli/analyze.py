"""``alphahat analyze MODEL``: the per-layer table (α, α̂, D, norms…) and the model summary."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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
    check_columns,
    check_output,
    display_name,
    emit,
    fail,
    note,
    nothing_analysed,
    option_message,
    option_values,
    output_format,
    print_layer_table,
    print_table,
    printable,
    with_options,
)
from alphahat.errors import AlphahatError, OptionError

if TYPE_CHECKING:
    from alphahat.report import Report

ByOpt = Annotated[
    str | None,
    typer.Option(
        "--by",
        metavar="block|kind|block_kind",
        help="Print the mean, std, min and max of α and α̂ per transformer block, module kind "
        "(q, k, v, o, gate, up, down, embedding…) or both, instead of the per-layer table "
        "(-f csv/json too).",
    ),
]
BlockPatternOpt = Annotated[
    str | None,
    typer.Option(
        "--block-pattern",
        metavar="REGEX",
        help="With --by: a regex whose first group is the block index (default: "
        "layers.N., layer.N., h.N., blocks.N., block.N.).",
    ),
]


def _group_by(by: str | None, block_pattern: str | None) -> str | None:
    """``--by`` and ``--block-pattern`` checked before the analysis runs."""
    from alphahat.report.groups import GROUP_BYS, compile_block_pattern

    if by is None:
        if block_pattern is not None:
            fail("--block-pattern needs --by")
        return None
    value = by.replace("-", "_")
    if value not in GROUP_BYS:
        fail(OptionError("--by", "one of 'block', 'kind', 'block_kind'", by).named("--by"))
    try:
        compile_block_pattern(block_pattern)
    except ValueError as exc:
        fail(f"--block-pattern: {exc}")
    return value


def _emit_groups(
    report: Report, by: str, block_pattern: str | None, chosen: str, output: Path | None, model: str
) -> None:
    """The ``--by`` table in the chosen format."""
    from alphahat.report import records
    from alphahat.report.io import csv_output, json_output

    try:
        table = report.aggregate(by, block_pattern)
    except ValueError as exc:
        fail(f"--block-pattern: {exc}")
    if chosen == "csv":
        emit(csv_output(table), output)
    elif chosen == "json":
        emit(json_output({"by": by, "groups": records(table)}), output)
    elif output is not None:
        emit(table.to_string(index=False) + "\n", output)
    else:
        print_table(table, list(table.columns), f"alphahat — {model} — by {by}")
    if table.empty:
        note(f"no layer matched a block or kind for --by {by}")


#: The column legend of ``alphahat analyze --help`` (click keeps ``\b`` paragraphs as written).
LEGEND = """\b
The table's columns (on a terminal; -f csv/json has every column, --wide shows them):
  id         the layer id: the position among the model's tensors with >= 2 dims, the
             skipped ones included, so ids jump where a tensor was skipped (alphahat
             describe MODEL lists every tensor and why it was skipped)
  N×M        the matrix: N >= M, M eigenvalues of WᵀW per matrix
  α          alpha: the power-law exponent of the tail of the ESD; 2 <= α <= 6 is well
             trained, α > 6 under-trained, α < 2 over-trained
  α̂           alpha_weighted = α·log₁₀λmax; negative when λmax < 1 (as in MiniLM's
             pooler): that is the metric's definition, not an error
  D          the Kolmogorov-Smirnov distance of the power-law fit (smaller: a better fit)
  log₁₀λmax  log_spectral_norm: log₁₀ of the largest eigenvalue of WᵀW
  status     fitted, under-trained, over-trained, or failed: and the reason
The model summary averages the fitted layers; alphahat report MODEL -o report.html draws
the figures."""

ColumnsOpt = Annotated[
    str | None,
    typer.Option(
        "--columns",
        "-c",
        metavar="COLUMNS",
        help="The table's columns, comma-separated: any column of -f csv, and NxM. On a "
        "terminal the default is layer_id, name, kind, NxM, alpha, alpha_weighted, D, "
        "log_spectral_norm and status.",
        show_default=False,
    ),
]
WideOpt = Annotated[
    bool,
    typer.Option(
        "--wide", help="Every column of -f csv in the table, names whole (wider than the terminal)."
    ),
]


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
    columns: ColumnsOpt = None,
    wide: WideOpt = False,
    quiet: QuietOpt = False,
    by: ByOpt = None,
    block_pattern: BlockPatternOpt = None,
    **options: Any,
) -> None:
    """Analyse every weight matrix: per-layer table (α, α̂, D, norms…) and the model summary."""
    from alphahat.analysis import analyze as run

    chosen = output_format(fmt, output)
    group_by = _group_by(by, block_pattern)
    values = option_values(options)
    if values.get("resume") and output is None:
        fail("--resume needs -o FILE (the finished layers are kept next to it)")
    check_output(output)
    check_columns(columns, values)
    journal = _journal_path(output)
    try:
        report = run(model, journal=journal, progress=not quiet, **values)
    except OptionError as exc:
        fail(option_message(exc))
    except (AlphahatError, ValueError) as exc:
        fail(str(exc))
    if not quiet:
        _run_notes(report.run_info)
    if report.details.empty:
        if journal is not None:
            journal.unlink(missing_ok=True)
        fail(nothing_analysed(report, options), EXIT_NO_LAYERS)
    summary = report.summary()
    summary = replace(summary, source=display_name(model))
    shown_reasons = False
    if group_by is not None:
        _emit_groups(report, group_by, block_pattern, chosen, output, display_name(model))
    elif chosen == "table":
        if output is not None:
            emit(report.details.to_string(index=False) + "\n\n" + summary.to_text() + "\n", output)
        else:
            from alphahat._version import __version__

            title = f"alphahat {__version__} — {display_name(model)}"
            shown_reasons = print_layer_table(report.details, title, columns, wide)
            sys.stdout.write("\n" + summary.to_text() + "\n")
    else:
        emit(report.to_csv() if chosen == "csv" else report.to_json(), output)
        if output is not None and not quiet:
            typer.echo(summary.to_text(), err=True)
    if journal is not None:
        journal.unlink(missing_ok=True)  # its layers are in the output now
    failed = report.details[report.details["status"] == "failed"]
    if not quiet and not shown_reasons:
        for name, reason in zip(failed["name"], failed["reason"], strict=True):
            note(f"layer {name} failed: {reason}")
    if not quiet and sys.stderr.isatty():
        note(what_next(report, model, chosen))
    if summary.model.num_layers == 0:
        fail("no layer could be fitted (the reasons are above)", EXIT_NO_LAYERS)


def what_next(report: Report, model: str, chosen: str) -> str:
    """The one line of guidance after the summary: where the rest is."""
    quoted = _quoted(model)
    skipped = int((report.coverage["status"] == "skipped").sum())
    parts = []
    if skipped:
        parts.append(f"alphahat describe {quoted} (why {skipped} tensors were skipped)")
    parts.append(f"alphahat report {quoted} -o report.html (figures)")
    if chosen == "table":
        parts.append("-f csv (every column); analyze --help (what they mean)")
    return "next: " + ", ".join(parts)


def _quoted(model: str) -> str:
    import shlex

    return shlex.quote(printable(model))
