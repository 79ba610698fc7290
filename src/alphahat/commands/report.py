"""``alphahat report MODEL -o report.html``: one self-contained HTML file to open and share."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from alphahat.cli import (
    EXIT_NO_LAYERS,
    ConvScaleOpt,
    ConvScaleOption,
    LayersOpt,
    MaxEvalsOpt,
    MinEvalsOpt,
    ModelArg,
    UnsafeOpt,
    _fail,
    _layer_specs,
    _note,
)
from alphahat.errors import AlphahatError


def report(
    model: ModelArg,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the HTML to FILE (atomically); else stdout."),
    ] = None,
    layers: LayersOpt = None,
    diagnostics: Annotated[
        str,
        typer.Option(
            "--diagnostics",
            "-d",
            help="Layers with fit-diagnostics figures: auto (all, or the flagged ones and an "
            "even sample when there are more than --max-diagnostics), all, none, or layer "
            "ids/names/globs/kinds, comma-separated.",
        ),
    ] = "auto",
    max_diagnostics: Annotated[
        int, typer.Option("--max-diagnostics", min=0, help="The cap of --diagnostics auto.")
    ] = 50,
    title: Annotated[str | None, typer.Option("--title", help="Page title.")] = None,
    min_evals: MinEvalsOpt = 8,
    max_evals: MaxEvalsOpt = None,
    exclude_embeddings: Annotated[
        bool,
        typer.Option("--exclude-embeddings", help="Leave embedding layers out of the summary."),
    ] = False,
    conv_scale: ConvScaleOpt = ConvScaleOption.reference,
    unsafe_load: UnsafeOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or notes.")] = False,
) -> None:
    """Write the HTML report: summary, warnings, figures, sortable layer table, diagnostics.

    MODEL may also be a JSON report saved by ``alphahat analyze -f json`` (no per-layer
    figures then: the JSON holds no eigenvalues).
    """
    from alphahat.analysis import analyze
    from alphahat.report.html import report_html
    from alphahat.report.io import write_atomic

    choice: str | list[str] = diagnostics.strip()
    if choice not in ("auto", "all", "none"):
        choice = _layer_specs([diagnostics])
    try:
        if model.lower().endswith(".json") and Path(model).is_file():
            # a report saved with `alphahat analyze -f json`: everything but the diagnostics
            from alphahat.report import Report

            result = Report.from_json(model)
        else:
            result = analyze(
                model,
                layers=_layer_specs(layers),
                min_evals=min_evals,
                max_evals=max_evals,
                conv_scale=conv_scale.value,
                include_embeddings=not exclude_embeddings,
                keep_eigenvalues=True,
                unsafe_load=unsafe_load,
                progress=not quiet,
            )
    except (AlphahatError, ValueError) as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{model}: cannot read: {exc.strerror or exc}")
    if not quiet:
        _note("drawing the figures…")
    try:
        page = report_html(result, title=title, diagnostics=choice, max_diagnostics=max_diagnostics)
    except (AlphahatError, ValueError) as exc:
        _fail(str(exc))
    if output is None:
        sys.stdout.write(page)
    else:
        try:
            write_atomic(output, page)
        except OSError as exc:
            _fail(f"{output}: cannot write: {exc.strerror or exc}")
        if not quiet:
            _note(f"wrote {output} ({len(page.encode('utf-8')) / 1e6:.2f} MB)")
    if result.summary().model.num_layers == 0:
        _fail("no layer could be analysed (the report says why)", EXIT_NO_LAYERS)


def register(app: typer.Typer) -> None:
    """Add ``alphahat report``."""
    app.command(name="report")(report)
