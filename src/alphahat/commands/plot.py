"""``alphahat plot MODEL``: figures of the ESD fits and of the model, as PNG or SVG files."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from alphahat.cli import (
    EXIT_NO_LAYERS,
    ConvScaleOpt,
    ConvScaleOption,
    MaxEvalsOpt,
    MinEvalsOpt,
    ModelArg,
    UnsafeOpt,
    _fail,
    _layer_specs,
    _note,
)
from alphahat.errors import AlphahatError


class PlotKind(StrEnum):
    """Figure kinds (the same as ``alphahat.plot.PLOT_KINDS``)."""

    diagnostics = "diagnostics"
    log_log = "log-log"
    lin_lin = "lin-lin"
    log_lin = "log-lin"
    ks_distance = "ks-distance"
    alpha_xmin = "alpha-xmin"
    mp_fit = "mp-fit"
    randomized = "randomized"
    flow = "flow"
    histograms = "histograms"


class PlotFormat(StrEnum):
    """Image formats."""

    png = "png"
    svg = "svg"


def plot(
    model: ModelArg,
    layer: Annotated[
        list[str] | None,
        typer.Option(
            "--layer",
            "-l",
            help="Only these layers: ids, exact names, glob patterns or kinds; repeat or "
            "comma-separate (default: every layer).",
        ),
    ] = None,
    kind: Annotated[
        list[PlotKind] | None,
        typer.Option(
            "--kind",
            "-k",
            help="Figures to draw (repeat for several). Per layer: diagnostics (the four views "
            "below D on one figure), log-log, lin-lin, log-lin, ks-distance (D vs x_min), "
            "alpha-xmin, mp-fit (Marchenko–Pastur bulk), randomized (ESD of the element-shuffled "
            "W over the original; --seed); per model: flow (correlation flow), "
            "histograms. Default: diagnostics.",
        ),
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for the files (created).")
    ] = Path("alphahat-plots"),
    image_format: Annotated[
        list[PlotFormat] | None,
        typer.Option("--format", "-f", help="png (default) and/or svg; repeat for both."),
    ] = None,
    dpi: Annotated[float, typer.Option("--dpi", min=10, max=1200, help="PNG resolution.")] = 100,
    seed: Annotated[
        int, typer.Option("--seed", min=0, max=2**32 - 1, help="Seed of the 'randomized' shuffles.")
    ] = 0,
    min_evals: MinEvalsOpt = 8,
    max_evals: MaxEvalsOpt = None,
    conv_scale: ConvScaleOpt = ConvScaleOption.reference,
    unsafe_load: UnsafeOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or notes.")] = False,
) -> None:
    """Draw ESD fit figures of layers (and model figures) to DIR/{id:03d}-{name}-{kind}.png."""
    from alphahat.analysis import analyze, randomized_eigenvalues
    from alphahat.plot import save_plots

    kinds = [k.value for k in kind] if kind else ["diagnostics"]
    formats = [f.value for f in image_format] if image_format else ["png"]
    try:
        report = analyze(
            model,
            layers=_layer_specs(layer),
            min_evals=min_evals,
            max_evals=max_evals,
            conv_scale=conv_scale.value,
            keep_eigenvalues=True,
            unsafe_load=unsafe_load,
            progress=not quiet,
        )
        shuffled = (
            randomized_eigenvalues(
                model,
                layers=_layer_specs(layer),
                seed=seed,
                min_evals=min_evals,
                max_evals=max_evals,
                conv_scale=conv_scale.value,
                unsafe_load=unsafe_load,
            )
            if "randomized" in kinds
            else None
        )
    except (AlphahatError, ValueError) as exc:
        _fail(str(exc))
    if report.details.empty:
        _fail("no layer to plot (see 'alphahat describe MODEL')", EXIT_NO_LAYERS)
    try:
        saved = save_plots(
            report,
            output,
            kinds=kinds,
            formats=formats,
            dpi=dpi,
            randomized_eigenvalues=shuffled,
        )
    except (AlphahatError, ValueError) as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{output}: cannot write: {exc.strerror or exc}")
    if not quiet:
        for name, reason in saved.skipped:
            _note(f"layer {name}: {reason}")
        _note(f"wrote {len(saved)} file(s) to {output}")
    if not saved.files:
        _fail("no figure could be drawn", EXIT_NO_LAYERS)


def register(app: typer.Typer) -> None:
    """Add ``alphahat plot``."""
    app.command(name="plot")(plot)
