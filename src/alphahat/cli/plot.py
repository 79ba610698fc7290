"""``alphahat plot MODEL``: figures of the ESD fits and of the model, as PNG or SVG files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from alphahat.cli._shared import (
    ANALYSIS_OPTIONS,
    EXIT_NO_LAYERS,
    SOURCE_OPTIONS,
    ModelArg,
    QuietOpt,
    checked_value,
    fail,
    note,
    nothing_analysed,
    option_message,
    option_values,
    require_extras,
    with_options,
)
from alphahat.errors import AlphahatError, OptionError

KindsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--kind",
        "-k",
        metavar="KIND",
        help="Figures to draw (repeat for several). Per layer: diagnostics (the four views "
        "below on one figure), log-log, lin-lin, log-lin, ks-distance (D vs x_min), "
        "alpha-xmin, mp-fit (Marchenko–Pastur bulk), randomized (ESD of the element-shuffled "
        "W over the original; --seed); per model: flow (correlation flow), histograms. "
        "Default: diagnostics. Every fit view draws the fit of the layer's row, under the "
        "options given here.",
    ),
]


@with_options(*ANALYSIS_OPTIONS, *SOURCE_OPTIONS)
def plot(
    model: ModelArg,
    kind: KindsOpt = None,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", metavar="DIR", help="Folder for the files (created)."),
    ] = Path("alphahat-plots"),
    image_format: Annotated[
        list[str] | None,
        typer.Option(
            "--format", "-f", metavar="FORMAT", help="png (default) and/or svg; repeat for both."
        ),
    ] = None,
    dpi: Annotated[
        str,
        typer.Option("--dpi", metavar="N", help="PNG resolution, in [10, 1200] dots per inch."),
    ] = "100",
    quiet: QuietOpt = False,
    **options: Any,
) -> None:
    """Draw ESD fit figures of layers (and model figures) to DIR/{id:03d}-{name}-{kind}.png."""
    from alphahat.analysis import analyze
    from alphahat.pipeline.options import Number
    from alphahat.plot import PLOT_FORMATS, PLOT_KINDS, save_plots
    from alphahat.plot.save import check_choice

    try:
        kinds = check_choice("plot kind(s)", kind or ["diagnostics"], PLOT_KINDS)
        formats = check_choice("plot format(s)", image_format or ["png"], PLOT_FORMATS)
    except ValueError as exc:
        fail(str(exc))
    require_extras(("matplotlib", "plotting"))  # before any analysis
    resolution = checked_value("--dpi", dpi, Number(at_least=10, at_most=1200))
    values = option_values(options)
    if "randomized" in kinds:  # the figure draws the analysis' own shuffles
        values["randomize"] = True
    try:
        report = analyze(model, keep_fits=True, progress=not quiet, **values)
    except OptionError as exc:
        fail(option_message(exc))
    except (AlphahatError, ValueError) as exc:
        fail(str(exc))
    if report.details.empty:
        fail(nothing_analysed(report, options), EXIT_NO_LAYERS)
    try:
        saved = save_plots(report, output, kinds=kinds, formats=formats, dpi=resolution)
    except (AlphahatError, ValueError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{output}: cannot write: {exc.strerror or exc}")
    if not quiet:
        for name, reason in saved.skipped:
            note(f"layer {name}: {reason}")
        note(f"wrote {len(saved)} file(s) to {output}")
    if not saved.files:
        fail("no figure could be drawn", EXIT_NO_LAYERS)
