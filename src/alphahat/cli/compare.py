"""``alphahat compare MANIFEST``: do the metrics predict the accuracies of a model series."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer

from alphahat.cli._shared import (
    EXIT_NO_LAYERS,
    FIT_OPTIONS,
    PLANNING_OPTIONS,
    SPECTRUM_OPTIONS,
    FormatOpt,
    OutputOpt,
    QuietOpt,
    cell,
    check_output,
    checked_value,
    emit,
    fail,
    layer_specs,
    note,
    option_message,
    option_values,
    output_format,
    print_table,
    require_extras,
    with_options,
)
from alphahat.errors import AlphahatError, OptionError

if TYPE_CHECKING:
    from alphahat.compare import AccuracyScale, Comparison

#: The analysis options compare takes (its own --seed is the bootstrap's).
COMPARE_OPTIONS = (
    *PLANNING_OPTIONS,
    "include_embeddings",
    *(name for name in FIT_OPTIONS if name != "seed"),
    *SPECTRUM_OPTIONS,
    "unsafe_load",
)


#: Trend columns the table shows (CSV/JSON have all of them).
TREND_TABLE_COLUMNS = (
    "metric", "group", "n", "slope", "slope_ci", "r2", "rmse", "kendall_tau",
    "kendall_p_value", "spearman_rho", "spearman_p_value",
)  # fmt: skip


def _trend_table(comparison: Comparison) -> Any:
    frame = comparison.trends.copy()
    frame["slope_ci"] = [
        "—" if low != low else f"[{cell(low)}, {cell(high)}]"
        for low, high in zip(frame["slope_ci_low"], frame["slope_ci_high"], strict=True)
    ]
    return frame


def _print_comparison(comparison: Comparison, title: str) -> None:
    models = comparison.models
    model_columns = ("model", "group", "accuracy", "status", "num_layers", *comparison.metrics)
    print_table(models, model_columns, f"{title} — {len(models)} models")
    sys.stdout.write("\n")
    confidence = int(round(100 * float(comparison.options.get("confidence", 0.95))))
    print_table(
        _trend_table(comparison),
        TREND_TABLE_COLUMNS,
        f"accuracy ({comparison.accuracy_unit}) ~ metric: OLS slope ({confidence}% bootstrap "
        "interval), R², RMSE, Kendall τ, Spearman ρ",
    )
    if comparison.has_groups:
        sys.stdout.write("\n")
        checks = comparison.checks_frame()
        print_table(
            checks,
            ("metric", "kind", "status", "pooled_slope", "within_slope", "groups_down",
             "groups_up", "pooled_kendall_tau", "within_kendall_tau"),
            "Simpson's paradox check: pooled vs within-group trend",
        )  # fmt: skip
        sys.stdout.write("\n")
        for check in comparison.checks:
            if check.status != "not-applicable":
                sys.stdout.write(("⚠ " if check.paradox else "  ") + check.verdict + "\n")


@with_options(*COMPARE_OPTIONS)
def compare(
    manifest: Annotated[
        Path,
        typer.Argument(
            metavar="MANIFEST",
            help="CSV with columns model (path), accuracy or error, optional group, and any "
            "others (hyperparameters).",
            show_default=False,
        ),
    ],
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    metrics: Annotated[
        list[str] | None,
        typer.Option(
            "--metric",
            "-m",
            metavar="METRIC",
            help="Metrics to compare (repeat or comma-separate); default: alpha, "
            "alpha_weighted, log_norm, log_spectral_norm, log_alpha_norm, stable_rank, D, "
            "entropy.",
        ),
    ] = None,
    accuracy_scale: Annotated[
        str,
        typer.Option(
            "--accuracy-scale",
            metavar="auto|percent|fraction",
            help="auto: percentages if any value > 1, else fractions; or say which.",
        ),
    ] = "auto",
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir",
            metavar="DIR",
            help="Where analysis reports are cached (default: .alphahat-cache next to the "
            "manifest).",
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Analyse every model again; store nothing.")
    ] = False,
    bootstrap: Annotated[
        str,
        typer.Option("--bootstrap", metavar="N", help="Bootstrap resamples (0: no intervals)."),
    ] = "1000",
    confidence: Annotated[
        str,
        typer.Option("--confidence", metavar="X", help="Level of the intervals, in [0.5, 0.999]."),
    ] = "0.95",
    bootstrap_seed: Annotated[
        str, typer.Option("--seed", metavar="N", help="Seed of the bootstrap.")
    ] = "0",
    figures: Annotated[
        Path | None,
        typer.Option(
            "--figures",
            metavar="DIR",
            help="Write figures (metric vs accuracy, α by group) into this folder "
            "(needs alphahat[plot]).",
        ),
    ] = None,
    html_path: Annotated[
        Path | None,
        typer.Option(
            "--html",
            metavar="FILE",
            help="Write a self-contained HTML page (needs alphahat[plot]).",
        ),
    ] = None,
    models_output: Annotated[
        Path | None,
        typer.Option("--models-output", metavar="FILE", help="Write the per-model table as CSV."),
    ] = None,
    quiet: QuietOpt = False,
    **options: Any,
) -> None:
    """Regress accuracy on each metric per group and pooled; flag Simpson's paradoxes."""
    from alphahat.compare import compare as run
    from alphahat.compare import read_manifest
    from alphahat.engine.progress import progress_bar
    from alphahat.pipeline.options import Integer, Number

    chosen = output_format(fmt, output)
    if figures is not None or html_path is not None:  # before any analysis
        require_extras(("matplotlib", "the comparison's figures (--figures, --html)"))
    num_bootstrap = checked_value("--bootstrap", bootstrap, Integer(minimum=0))
    level = checked_value("--confidence", confidence, Number(at_least=0.5, at_most=0.999))
    seed = checked_value("--seed", bootstrap_seed, Integer(minimum=0))
    for flag, path in (("-o", output), ("--html", html_path), ("--models-output", models_output)):
        check_output(path, flag)
    metric_names = layer_specs(metrics) or None
    values = option_values(options)
    unsafe_load = values.pop("unsafe_load", False)
    try:
        scale = cast("AccuracyScale", accuracy_scale)  # read_manifest checks it
        read_manifest(manifest, scale=scale)  # fail fast, before any bar
        with progress_bar(not quiet, None, description="analysing models", unit="models") as bar:
            comparison = run(
                manifest,
                **({"metrics": metric_names} if metric_names else {}),
                accuracy_scale=scale,
                cache_dir=cache_dir,
                use_cache=not no_cache,
                num_bootstrap=num_bootstrap,
                confidence=level,
                seed=seed,
                unsafe_load=unsafe_load,
                progress=bar,
                **values,
            )
    except OptionError as exc:
        fail(option_message(exc))
    except (AlphahatError, ValueError) as exc:
        fail(str(exc))
    if not quiet:
        counts = comparison.models["status"].value_counts().to_dict()
        note(
            f"{len(comparison.models)} models: "
            + ", ".join(
                f"{counts.get(s, 0)} {s}" for s in ("analysed", "cached", "failed", "missing")
            )
        )
        for line in comparison.notes:
            note(line)
    _write(comparison, chosen, output, manifest)
    if models_output is not None:
        emit(comparison.models_csv(), models_output)
    try:
        if figures is not None:
            from alphahat.compare.figures import save_figures

            for path in save_figures(comparison, figures):
                if not quiet:
                    note(f"wrote {path}")
        if html_path is not None:
            from alphahat.compare.html import comparison_html

            emit(comparison_html(comparison), html_path)
    except AlphahatError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write the figures: {exc}")
    if not comparison.reports:
        fail("no model could be analysed (see the notes above)", EXIT_NO_LAYERS)


def _write(comparison: Comparison, chosen: str, output: Path | None, manifest: Path) -> None:
    """The comparison in the chosen format, to stdout or ``output``."""
    if chosen != "table":
        emit(comparison.to_csv() if chosen == "csv" else comparison.to_json(), output)
    elif output is not None:
        text = (
            comparison.models.to_string(index=False)
            + "\n\n"
            + comparison.trends.to_string(index=False)
            + "\n\n"
            + "\n".join(c.verdict for c in comparison.checks)
            + "\n"
        )
        emit(text, output)
    else:
        _print_comparison(comparison, f"alphahat compare {manifest}")
