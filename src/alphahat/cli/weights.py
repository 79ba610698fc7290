"""``alphahat weights MODEL``: each layer's entry distribution, positive and negative sides."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from alphahat.cli._shared import (
    EXIT_NO_LAYERS,
    FormatOpt,
    ModelArg,
    OutputOpt,
    QuietOpt,
    check_output,
    check_output_folder,
    checked_value,
    display_name,
    emit,
    fail,
    note,
    option_message,
    option_values,
    output_format,
    print_table,
    require_extras,
    with_options,
)
from alphahat.errors import AlphahatError, OptionError

_FLAGS = (
    "layers", "seed", "min_evals", "max_evals", "max_matrix_elements", "max_memory",
    "split_fused", "fused_heads", "unsafe_load",
)  # fmt: skip
_SHOWN = ["layer_id", "name", "side", "entries_used", "pl_alpha", "pl_xmin", "pl_D", "R_pl_exp",
          "gauss_D", "laplace_D", "R_laplace_gauss"]  # fmt: skip


@with_options(*_FLAGS)
def weights(
    model: ModelArg,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    max_entries: Annotated[
        str,
        typer.Option(
            "--max-entries", metavar="N", help="Fit a seeded sample of N entries of larger layers."
        ),
    ] = "100000",
    figures: Annotated[
        Path | None,
        typer.Option(
            "--figures", metavar="DIR", help="Write a log-scale histogram per layer (PNG) to DIR."
        ),
    ] = None,
    quiet: QuietOpt = False,
    **options: Any,
) -> None:
    """Fit each layer's entries by side: power law, exponential, log-normal, Laplace, Gaussian."""
    from alphahat.pipeline.options import Integer
    from alphahat.weights import analyze_weights

    chosen = output_format(fmt, output)
    entries = checked_value("--max-entries", max_entries, Integer(minimum=1))
    check_output(output)
    if figures is not None:
        check_output_folder(figures, "--figures")
        require_extras(("matplotlib", "the histograms of --figures"))  # before any analysis
    values = option_values(options)
    try:
        result = analyze_weights(model, max_entries=entries, **values)
    except OptionError as exc:
        fail(option_message(exc))
    except (AlphahatError, ValueError, OSError) as exc:
        fail(str(exc))
    if figures is not None:
        _write_figures(result, figures)
    if chosen == "table" and output is not None:
        emit(result.details.to_string(index=False) + "\n", output)
    elif chosen == "table":
        print_table(result.details, _SHOWN, f"{display_name(model)}: weight entries")
    elif chosen == "csv":
        emit(result.to_csv(), output)
    else:
        emit(result.to_json(), output)
    if result.details.empty:
        raise typer.Exit(EXIT_NO_LAYERS)


def _write_figures(result: Any, directory: Path) -> None:
    from alphahat.engine.files import write_atomic
    from alphahat.plot import render_figure
    from alphahat.plot.weights import weight_histogram_plot

    directory.mkdir(parents=True, exist_ok=True)
    details = result.details
    for i, (name, sample) in enumerate(result.samples.items()):
        rows = details[details["name"] == name]
        fits = {str(r["side"]): dict(r) for _, r in rows.iterrows()}
        ax = weight_histogram_plot(sample, fits, name=name)
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
        path = directory / f"{i:03d}-{safe}-weights.png"
        write_atomic(path, render_figure(ax.figure, "png", 80))  # type: ignore[arg-type]
    note(f"wrote {len(result.samples)} figures to {directory}")
