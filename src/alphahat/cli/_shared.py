"""What the commands share: output helpers, common arguments, and the analysis options as flags.

The analysis options are not declared here: :func:`with_options` turns rows of the option table
(:mod:`alphahat.pipeline.options`) into typer parameters — flag names, metavar, help and the
default shown — and :func:`option_values` reads them back, each checked by its row, so a wrong
value gets the same message from the command line as from Python (naming the flag).
"""

from __future__ import annotations

import inspect
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from alphahat.errors import OptionError

EXIT_OK, EXIT_NO_LAYERS, EXIT_USAGE = 0, 1, 2
OUTPUT_FORMATS = ("table", "csv", "json")

F = TypeVar("F", bound=Callable[..., Any])


def printable(text: str) -> str:
    """``text`` on one line with control characters escaped (names in files are untrusted)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``alphahat: error: message`` on stderr and exit with ``code``."""
    typer.echo(f"alphahat: error: {printable(message)}", err=True)
    raise typer.Exit(code)


def note(message: str) -> None:
    """Print ``alphahat: message`` on stderr."""
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


def _parameter(name: str) -> inspect.Parameter:
    """The typer parameter of option ``name``: its flags, metavar, help and shown default."""
    from alphahat.pipeline.options import OPTION_TABLE, Flag, Layers, TriState

    spec = OPTION_TABLE[name]
    constraint = spec.constraint
    keyword = inspect.Parameter.KEYWORD_ONLY
    if isinstance(constraint, Flag):
        info = typer.Option(*spec.flags, help=spec.help)
        return inspect.Parameter(
            name, keyword, default=spec.default, annotation=Annotated[bool, info]
        )
    if isinstance(constraint, TriState):
        info = typer.Option(*spec.flags, help=spec.help, show_default=False)
        return inspect.Parameter(
            name, keyword, default=None, annotation=Annotated[bool | None, info]
        )
    if isinstance(constraint, Layers):
        info = typer.Option(
            *spec.flags, metavar=spec.placeholder, help=spec.help, show_default=False
        )
        annotation: Any = Annotated[list[str] | None, info]
    else:
        info = typer.Option(*spec.flags, metavar=spec.placeholder, help=spec.help)
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
        params = own + [_parameter(name) for name in names]
        command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        return command

    return decorate


def option_values(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The options given on the command line, parsed and checked by their rows.

    A wrong value exits 2 with the option's one message, naming its flag.
    """
    from alphahat.pipeline.options import OPTION_TABLE

    values: dict[str, Any] = {}
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
    "xmax", "mp_fit", "randomize", "seed", "detX", "vectors",
)  # fmt: skip
SPECTRUM_OPTIONS = ("backend", "device")
EXECUTION_OPTIONS = ("workers", "scheduler", "layer_timeout", "resume", "blas_threads")
SOURCE_OPTIONS = ("base", "unsafe_load")
ANALYSIS_OPTIONS = (
    *PLANNING_OPTIONS, "include_embeddings", *FIT_OPTIONS, *SPECTRUM_OPTIONS
)  # fmt: skip
