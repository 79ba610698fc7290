"""Command line: a thin typer layer; every command is one public API call.

One module per command (:mod:`~alphahat.cli.analyze`, :mod:`~alphahat.cli.describe`,
:mod:`~alphahat.cli.plot`, :mod:`~alphahat.cli.report`, :mod:`~alphahat.cli.compare`,
:mod:`~alphahat.cli.trend`, :mod:`~alphahat.cli.traps`, :mod:`~alphahat.cli.weights`,
:mod:`~alphahat.cli.zoo`, :mod:`~alphahat.cli.allocate`), registered here; what they share
(output, common arguments, and the analysis options as flags generated from the option table)
is :mod:`~alphahat.cli._shared`.

Data goes to stdout (``--format table|csv|json``) or to ``-o FILE``; progress, notes and
errors go to stderr. Exit codes: 0 success, 1 no layer could be analysed, 2 bad usage (bad
option, path or file). Heavy dependencies are imported inside the commands, so
``alphahat --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Annotated

import typer

from alphahat._version import __version__
from alphahat.cli import (
    allocate,
    analyze,
    compare,
    describe,
    plot,
    report,
    traps,
    trend,
    weights,
    zoo,
)
from alphahat.cli._shared import EXIT_NO_LAYERS, EXIT_OK, EXIT_USAGE, Command

app = typer.Typer(
    name="alphahat",
    help="How well is a neural network trained? Ask its weights (HT-SR metrics, no data needed).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help is plain text: [brackets] are kept, not read as markup
)
app.command("analyze", cls=Command, epilog=analyze.LEGEND)(analyze.analyze)
app.command("describe", cls=Command)(describe.describe)
app.command("plot", cls=Command)(plot.plot)
app.command("report", cls=Command)(report.report)
app.command("compare", cls=Command)(compare.compare)
app.command("allocate", cls=Command)(allocate.allocate)
app.command("trend", cls=Command)(trend.trend)
app.command("traps", cls=Command)(traps.traps)
app.command("randomize", cls=Command)(traps.randomize)
app.command("weights", cls=Command)(weights.weights)
app.add_typer(zoo.zoo_app())


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"alphahat {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """How well is a neural network trained? Ask its weights."""
    # the libraries that read weights warn in their own words (torch, h5py, onnx…); what
    # the user needs to know is said by alphahat, so their warnings are not printed
    warnings.filterwarnings("ignore", module=r"^(?!alphahat)")


def main() -> None:
    """Console-script entry point: a one-line message instead of a traceback on a bug.

    Set ``ALPHAHAT_DEBUG=1`` to see the traceback.
    """
    try:
        app(standalone_mode=True)
    except Exception as exc:  # a bug of ours: say so in one line, not a traceback
        if os.environ.get("ALPHAHAT_DEBUG"):
            raise
        typer.echo(
            f"alphahat: internal error: {type(exc).__name__}: {exc} "
            "(please report it; ALPHAHAT_DEBUG=1 shows the traceback)",
            err=True,
        )
        sys.exit(EXIT_NO_LAYERS)


__all__ = ["EXIT_NO_LAYERS", "EXIT_OK", "EXIT_USAGE", "app", "main"]
