"""What the commands share: output helpers, common arguments, and the analysis options as flags.

The analysis options are not declared here: :func:`with_options` turns rows of the option table
(:mod:`alphahat.pipeline.options`) into typer parameters — flag names, metavar, help and the
default shown — and :func:`option_values` reads them back, each checked by its row, so a wrong
value gets the same message from the command line as from Python (naming the flag).
"""

from __future__ import annotations

import inspect
import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from typer.core import TyperCommand

from alphahat.errors import OptionError, printable

__all__ = ["printable"]  # re-exported for the commands

EXIT_OK, EXIT_NO_LAYERS, EXIT_USAGE = 0, 1, 2
OUTPUT_FORMATS = ("table", "csv", "json")

if TYPE_CHECKING:
    from alphahat.report import Report

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``alphahat: error: message`` on stderr and exit with ``code``."""
    typer.echo(f"alphahat: error: {printable(message)}", err=True)
    raise typer.Exit(code)


#: Whether the running command was given ``-q/--quiet`` (set by :class:`Command`).
_QUIET = {"on": False}


def note(message: str) -> None:
    """Print ``alphahat: message`` on stderr (nothing under ``-q``; errors use :func:`fail`)."""
    if _QUIET["on"]:
        return
    typer.echo(f"alphahat: {printable(message)}", err=True)


def require_extras(*needs: tuple[str, str]) -> None:
    """Fail now, before any work, when an optional module a command will need is missing.

    Each need is (module, what needs it); the message is :func:`alphahat._imports.require`'s
    one line with the extra to install.
    """
    from alphahat._imports import require
    from alphahat.errors import MissingDependencyError

    for module, purpose in needs:
        try:
            require(module, purpose)
        except MissingDependencyError as exc:
            fail(str(exc))


def layer_specs(values: Iterable[str] | None) -> list[str]:
    """Repeated and comma-separated layer specs as one list."""
    return [part for value in values or [] for part in value.split(",") if part.strip()]


def output_format(fmt: str | None, output: Path | None) -> str:
    """``-f`` checked, or the format of ``-o FILE.csv/.json``, else ``table``."""
    if fmt is not None:
        if fmt not in OUTPUT_FORMATS:
            fail(OptionError("--format", "one of 'table', 'csv', 'json'", fmt).named("--format"))
        return fmt
    if output is not None and output.suffix.lower() in (".csv", ".json"):
        return output.suffix.lower().lstrip(".")
    return "table"


def cell(value: Any) -> str:
    """A table cell's text: ~4 significant digits, — for missing, markup escaped."""
    import pandas as pd

    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        small = value != 0 and abs(value) < 1e-3
        return f"{value:.4g}" if abs(value) >= 1e5 or small else f"{value:.3f}"
    from rich.markup import escape

    return escape(printable(str(value)))  # a tensor named "[/x]" is text, not rich markup


def print_table(frame: Any, columns: Iterable[str], title: str) -> None:
    """A rich table of ``frame``'s ``columns`` on stdout."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 250, soft_wrap=False)
    table = Table(
        title=escape(printable(title)), title_justify="left", header_style="bold", show_lines=False
    )
    columns = list(columns)
    for col in columns:
        numeric = frame[col].dtype.kind in "iuf" if col in frame.columns else False
        table.add_column(col, justify="right" if numeric else "left", overflow="fold")
    for row in frame[columns].itertuples(index=False, name=None):
        table.add_row(*(cell(v) for v in row))
    console.print(table)


def display_name(model: str | Path) -> str:
    """The model as titles name it: its file (or folder) name; the full path is in provenance."""
    text = str(model).rstrip("/\\")
    return printable(Path(text).name or text)


def terminal_width() -> int:
    """Columns of the terminal (``COLUMNS`` when set)."""
    import shutil

    return shutil.get_terminal_size((100, 24)).columns


def check_output(path: Path | None, flag: str = "-o") -> None:
    """Fail before any work when ``path`` cannot be written: a missing or read-only folder."""
    if path is None:
        return
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        fail(f"{flag} {path}: is a folder; give a file name")
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        fail(f"{flag} {path}: cannot write: the folder {folder} {what}")
    if not os.access(folder, os.W_OK):
        fail(f"{flag} {path}: cannot write: the folder {folder} is not writable")


def check_output_folder(folder: Path, flag: str) -> None:
    """Fail before any work unless ``folder`` is, or can be made, a writable folder."""
    if folder.exists() and not folder.is_dir():
        fail(f"{flag} {folder}: is a file; give a folder")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        fail(f"{flag} {folder}: cannot write in {existing}")


def table_columns(frame: Any, columns: str | None, wide: bool) -> list[str] | None:
    """The columns ``--columns``/``--wide`` ask for (None: the default set), checked."""
    from alphahat.cli._table import DERIVED_COLUMNS

    known = [*frame.columns, *DERIVED_COLUMNS]
    if wide and columns is None:
        return list(frame.columns)
    if columns is None:
        return None
    chosen = [c.strip() for c in columns.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in known]
    if unknown or not chosen:
        fail(
            OptionError(
                "--columns", f"column names of the table ({', '.join(known)})", columns
            ).named("--columns")
        )
    return chosen


def check_columns(columns: str | None, values: Mapping[str, Any]) -> None:
    """Fail before the analysis on ``--columns`` naming no column a run with ``values`` makes.

    The always-present columns are known; options that add columns (``--mp-fit``,
    ``--randomize``, …) are checked after the run (:func:`table_columns`).
    """
    from alphahat.cli._table import DERIVED_COLUMNS
    from alphahat.pipeline.options import OPTION_TABLE
    from alphahat.report import DETAIL_COLUMNS

    adds_columns = ("mp_fit", "randomize", "detX", "vectors", "fix_fingers", "fit", "pool", "fft")
    changed = [
        n for n in adds_columns if values.get(n, OPTION_TABLE[n].default) != OPTION_TABLE[n].default
    ]
    if columns is None or changed:
        return
    known = [*DETAIL_COLUMNS, *DERIVED_COLUMNS]
    chosen = [c.strip() for c in columns.split(",") if c.strip()]
    if not chosen or any(c not in known for c in chosen):
        fail(
            OptionError(
                "--columns", f"column names of the table ({', '.join(known)})", columns
            ).named("--columns")
        )


def print_layer_table(frame: Any, title: str, columns: str | None, wide: bool) -> bool:
    """The per-layer table on stdout; True when it shows the failed layers' reasons.

    A terminal gets the compact column set fitted to its width (:mod:`alphahat.cli._table`);
    anything else gets :data:`alphahat.report.TABLE_COLUMNS` as before (or the columns asked).
    """
    from alphahat.cli._table import COMPACT_COLUMNS
    from alphahat.report import TABLE_COLUMNS, records

    chosen = table_columns(frame, columns, wide)
    if "NxM" in (chosen or ()):
        frame = frame.assign(NxM=[f"{n}×{m}" for n, m in zip(frame["N"], frame["M"], strict=True)])
    terminal = sys.stdout.isatty()
    if not terminal and not wide:
        print_table(frame, chosen or TABLE_COLUMNS, title)
        return "reason" in (chosen or ())
    shown = print_fitted_table(
        records(frame), chosen or COMPACT_COLUMNS, title, None if wide else terminal_width()
    )
    return "reason" in shown or "status" in shown


def print_fitted_table(
    rows: list[dict[str, Any]], columns: Iterable[str], title: str, width: int | None
) -> tuple[str, ...]:
    """``rows`` laid out within ``width`` (:func:`alphahat.cli._table.layout_table`) on stdout.

    Returns the columns shown (a column is dropped only when a name would not fit).
    """
    from alphahat.cli._table import layout_table

    layout = layout_table(rows, list(columns), width, printable=printable)
    left_off = [repr(a) for a in (layout.common_prefix, layout.common_suffix) if a]
    if left_off:
        title += f" (names without the {' and '.join(left_off)} they all share)"
    bold = sys.stdout.isatty() and os.environ.get("NO_COLOR") is None
    head, *rest = layout.lines
    lines = [printable(title), "\x1b[1m" + head + "\x1b[0m" if bold else head, *rest]
    sys.stdout.write("\n".join(lines) + "\n")
    return layout.columns


def nothing_analysed(report: Report, options: Mapping[str, Any]) -> str:
    """Why no layer was analysed: a --layers that matched nothing, or the skip reasons."""
    coverage = report.coverage
    source = display_name(str(report.provenance.get("source", ""))) or "the model"
    if coverage.empty:
        return f"no layer could be analysed: {source} holds no tensors"
    filtered = coverage[coverage["reason"] == "excluded by the layer filter"]
    specs = layer_specs([*(options.get("layers") or []), *(options.get("layers__alias") or [])])
    if len(filtered) and specs:
        names = ", ".join(printable(str(n)) for n in filtered["name"].head(3))
        more = ", …" if len(filtered) > 3 else ""
        given = ",".join(specs)
        return (
            f"no layer could be analysed: --layers {given!r} matched none of the "
            f"{len(filtered)} matrices of {source}; their names look like {names}{more}"
        )
    counts = coverage["reason"].value_counts()
    reasons = ", ".join(f'{n} × "{printable(str(r))}"' for r, n in counts.head(4).items())
    more = f"; and {len(counts) - 4} other reason(s)" if len(counts) > 4 else ""
    return (
        f"no layer could be analysed: all {len(coverage)} tensor(s) of {source} were skipped: "
        f"{reasons}{more} (alphahat describe lists each)"
    )


def emit(text: str, output: Path | None) -> None:
    """``text`` to stdout, or atomically to ``output`` (with a note)."""
    if output is None:
        sys.stdout.write(text)
        return
    from alphahat.report.io import write_atomic

    try:
        write_atomic(output, text)
    except OSError as exc:
        fail(f"{output}: cannot write: {exc.strerror or exc}")
    note(f"wrote {output}")


class Command(TyperCommand):
    """A command whose help names its arguments as users write them.

    ``alphahat analyze [OPTIONS] MODEL`` and ``MODEL  A .safetensors file…`` rather than
    typer's ``{MODEL}`` and ``MODEL <str>``; options are listed as typer lists them.
    """

    def invoke(self, ctx: Any) -> Any:  # noqa: D102
        _QUIET["on"] = bool(ctx.params.get("quiet", False))  # -q: no notes, whoever writes them
        try:
            return super().invoke(ctx)
        finally:
            _QUIET["on"] = False

    def collect_usage_pieces(self, ctx: Any) -> list[str]:  # noqa: D102
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                pieces.append(_argument_name(param))
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:  # noqa: D102
        arguments: list[tuple[str, str]] = []
        options: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                if not getattr(param, "hidden", False):
                    arguments.append((_argument_name(param), getattr(param, "help", "") or ""))
            elif (record := param.get_help_record(ctx)) is not None:
                options.append(record)
        for title, records in (("Arguments", arguments), ("Options", options)):
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)


def _argument_name(param: Any) -> str:
    return str(param.metavar or (param.name or "ARG").upper())


ModelArg = Annotated[
    str,
    typer.Argument(
        metavar="MODEL",
        help="A .safetensors file, a sharded Hugging Face folder, a .pt/.bin/.pth state dict, "
        "a .npy/.npz, .onnx, .gguf, .keras or .h5 file, or a PEFT LoRA adapter folder.",
        show_default=False,
    ),
]
FormatOpt = Annotated[
    str | None,
    typer.Option(
        "--format",
        "-f",
        metavar="FORMAT",
        help="table (default), csv or json; -o FILE.csv/.json implies it.",
        show_default=False,
    ),
]
OutputOpt = Annotated[
    Path | None,
    typer.Option("--output", "-o", metavar="FILE", help="Write the data to FILE (atomically)."),
]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bar or notes on stderr.")
]


# ---------------------------------------------------------------------------------------------
# the option table as flags


#: Suffix of the hidden parameter that takes an option's older spellings (``--layer``).
ALIAS_SUFFIX = "__alias"


def _alias_parameter(name: str) -> inspect.Parameter | None:
    """A hidden parameter for the older spellings of option ``name``, if it has any."""
    from alphahat.pipeline.options import OPTION_TABLE, Layers

    spec = OPTION_TABLE[name]
    if not spec.aliases:
        return None
    info = typer.Option(*spec.aliases, hidden=True)
    annotation: Any = Annotated[
        list[str] | None if isinstance(spec.constraint, Layers) else str | None, info
    ]
    return inspect.Parameter(
        name + ALIAS_SUFFIX, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
    )


def _parameter(name: str) -> inspect.Parameter:
    """The typer parameter of option ``name``: its flags, metavar, help and shown default.

    Older spellings of the flag (``spec.aliases``) are a separate hidden parameter
    (:func:`_alias_parameter`), so ``--help`` shows one name per option.
    """
    from alphahat.pipeline.options import OPTION_TABLE, Flag, Layers, TriState

    spec = OPTION_TABLE[name]
    constraint = spec.constraint
    keyword = inspect.Parameter.KEYWORD_ONLY
    flags = tuple(f for f in (spec.flag, spec.short) if f)
    if isinstance(constraint, Flag):
        info = typer.Option(*flags, help=spec.help)
        return inspect.Parameter(
            name, keyword, default=spec.default, annotation=Annotated[bool, info]
        )
    if isinstance(constraint, TriState):
        info = typer.Option(*flags, help=spec.help, show_default=False)
        return inspect.Parameter(
            name, keyword, default=None, annotation=Annotated[bool | None, info]
        )
    if isinstance(constraint, Layers):
        info = typer.Option(*flags, metavar=spec.placeholder, help=spec.help, show_default=False)
        annotation: Any = Annotated[list[str] | None, info]
    else:
        info = typer.Option(*flags, metavar=spec.placeholder, help=spec.help)
        annotation = Annotated[str | None, info]
        if spec.default is not None:  # shown as the default, read back by option_values
            return inspect.Parameter(
                name, keyword, default=str(spec.default), annotation=annotation
            )
    return inspect.Parameter(name, keyword, default=None, annotation=annotation)


def with_options(*names: str) -> Callable[[F], F]:
    """Give a command the flags of the option table's rows ``names``.

    The command takes ``**options``; typer passes it each flag's raw value (None when not
    given); :func:`option_values` turns them into checked option values.
    """

    def decorate(command: F) -> F:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        aliases = [p for p in map(_alias_parameter, names) if p is not None]
        params = own + [_parameter(name) for name in names] + aliases
        command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        return command

    return decorate


def option_values(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The options given on the command line, parsed and checked by their rows.

    A wrong value exits 2 with the option's one message, naming its flag.
    """
    from alphahat.pipeline.options import OPTION_TABLE

    values: dict[str, Any] = {}
    raw = dict(raw)
    for alias in [k for k in raw if k.endswith(ALIAS_SUFFIX)]:  # --layer: one with --layers
        name, value = alias.removesuffix(ALIAS_SUFFIX), raw.pop(alias)
        if isinstance(value, list):
            raw[name] = [*(raw.get(name) or []), *value]
        elif value is not None:
            raw[name] = value
    for name, value in raw.items():
        spec = OPTION_TABLE[name]
        try:
            if isinstance(value, list):
                values[name] = spec.check(layer_specs(value))
            elif isinstance(value, str):
                values[name] = spec.parse(value)
            elif value is not None:
                values[name] = spec.check(value)
        except OptionError as exc:
            fail(exc.named(spec.cli_name or name))
    return values


def checked_value(flag: str, text: str, constraint: Any) -> Any:
    """Command-line ``text`` of a command's own option ``flag``, read and checked.

    ``constraint`` is an :mod:`alphahat.pipeline.options` constraint: a wrong value gets the
    option table's one message shape, never click's.
    """
    try:
        return constraint.check(flag, constraint.parse(flag, text))
    except OptionError as exc:  # what was typed, not what it was read as (2, not 2.0)
        fail(OptionError(flag, exc.requirement, text).named(flag))


def option_message(exc: OptionError) -> str:
    """An option error raised by the library, naming the option by its flag."""
    from alphahat.pipeline.options import OPTION_TABLE

    spec = OPTION_TABLE.get(exc.option)
    return exc.named(spec.cli_name) if spec is not None and spec.cli_name else str(exc)


#: The option table's rows each command takes (see docs/architecture.md).
PLANNING_OPTIONS = (
    "layers", "min_evals", "max_evals", "conv_scale", "max_matrix_elements", "max_memory",
    "split_fused", "fused_heads", "pool", "fft", "fft_size",
)  # fmt: skip
FIT_OPTIONS = (
    "evals_threshold", "fit", "fix_fingers", "xmin_max", "max_fingers", "finger_thresh",
    "xmax", "estimator", "farms_size", "farms_aspect_ratio", "farms_windows", "mp_fit",
    "randomize", "seed", "detX", "vectors", "stacked", "intra", "sparsify", "inverse",
)  # fmt: skip
SPECTRUM_OPTIONS = ("backend", "device", "float32_tolerance")
EXECUTION_OPTIONS = ("workers", "scheduler", "layer_timeout", "resume", "blas_threads")
SOURCE_OPTIONS = ("base", "unsafe_load")
ANALYSIS_OPTIONS = (
    *PLANNING_OPTIONS, "include_embeddings", *FIT_OPTIONS, *SPECTRUM_OPTIONS
)  # fmt: skip
