"""``alphahat compare MANIFEST``: do the metrics predict the accuracies of a model series."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from alphahat.cli import (
    EXIT_NO_LAYERS,
    ConvScaleOption,
    FormatOpt,
    LayersOpt,
    MaxEvalsOpt,
    MinEvalsOpt,
    OutputFormat,
    OutputOpt,
    UnsafeOpt,
    _cell,
    _emit,
    _fail,
    _layer_specs,
    _note,
    _print_table,
    _resolve_format,
)
from alphahat.errors import AlphahatError

if TYPE_CHECKING:
    from alphahat.compare import Comparison


class AccuracyScaleOption(StrEnum):
    """How accuracies (or errors) in the manifest are written."""

    auto = "auto"
    percent = "percent"
    fraction = "fraction"


#: Trend columns the table shows (CSV/JSON have all of them).
TREND_TABLE_COLUMNS = (
    "metric", "group", "n", "slope", "slope_ci", "r2", "rmse", "kendall_tau",
    "kendall_p_value", "spearman_rho", "spearman_p_value",
)  # fmt: skip


def _trend_table(comparison: Comparison) -> Any:
    frame = comparison.trends.copy()
    frame["slope_ci"] = [
        "—" if low != low else f"[{_cell(low)}, {_cell(high)}]"
        for low, high in zip(frame["slope_ci_low"], frame["slope_ci_high"], strict=True)
    ]
    return frame


def _print_comparison(comparison: Comparison, title: str) -> None:
    models = comparison.models
    model_columns = ("model", "group", "accuracy", "status", "num_layers", *comparison.metrics)
    _print_table(models, model_columns, f"{title} — {len(models)} models")
    sys.stdout.write("\n")
    confidence = int(round(100 * float(comparison.options.get("confidence", 0.95))))
    _print_table(
        _trend_table(comparison),
        TREND_TABLE_COLUMNS,
        f"accuracy ({comparison.accuracy_unit}) ~ metric: OLS slope ({confidence}% bootstrap "
        "interval), R², RMSE, Kendall τ, Spearman ρ",
    )
    if comparison.has_groups:
        sys.stdout.write("\n")
        checks = comparison.checks_frame()
        _print_table(
            checks,
            ("metric", "kind", "status", "pooled_slope", "within_slope", "groups_down",
             "groups_up", "pooled_kendall_tau", "within_kendall_tau"),
            "Simpson's paradox check: pooled vs within-group trend",
        )  # fmt: skip
        sys.stdout.write("\n")
        for check in comparison.checks:
            if check.status != "not-applicable":
                sys.stdout.write(("⚠ " if check.paradox else "  ") + check.verdict + "\n")


def register(app: typer.Typer) -> None:
    """Add ``alphahat compare``."""

    @app.command()
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
                help="Metrics to compare (repeat or comma-separate); default: alpha, "
                "alpha_weighted, log_norm, log_spectral_norm, log_alpha_norm, stable_rank, D, "
                "entropy.",
            ),
        ] = None,
        accuracy_scale: Annotated[
            AccuracyScaleOption,
            typer.Option(
                "--accuracy-scale",
                help="auto: percentages if any value > 1, else fractions; or say which.",
            ),
        ] = AccuracyScaleOption.auto,
        cache_dir: Annotated[
            Path | None,
            typer.Option(
                "--cache-dir",
                help="Where analysis reports are cached [default: .alphahat-cache next to "
                "the manifest].",
            ),
        ] = None,
        no_cache: Annotated[
            bool, typer.Option("--no-cache", help="Analyse every model again; store nothing.")
        ] = False,
        bootstrap: Annotated[
            int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples (0: no intervals).")
        ] = 1000,
        confidence: Annotated[
            float,
            typer.Option("--confidence", min=0.5, max=0.999, help="Level of the intervals."),
        ] = 0.95,
        seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
        figures: Annotated[
            Path | None,
            typer.Option(
                "--figures",
                help="Write figures (metric vs accuracy, α by group) into this folder "
                "(needs alphahat[plot]).",
            ),
        ] = None,
        html_path: Annotated[
            Path | None,
            typer.Option("--html", help="Write a self-contained HTML page (needs alphahat[plot])."),
        ] = None,
        models_output: Annotated[
            Path | None,
            typer.Option("--models-output", help="Write the per-model table as CSV."),
        ] = None,
        layers: LayersOpt = None,
        min_evals: MinEvalsOpt = 8,
        max_evals: MaxEvalsOpt = None,
        exclude_embeddings: Annotated[
            bool,
            typer.Option("--exclude-embeddings", help="Leave embedding layers out of the means."),
        ] = False,
        conv_scale: Annotated[
            ConvScaleOption,
            typer.Option(
                "--conv-scale",
                help="reference: conv slices × 1/√2 as the reference tool does; none: as stored.",
            ),
        ] = ConvScaleOption.reference,
        unsafe_load: UnsafeOpt = False,
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="No progress or notes on stderr.")
        ] = False,
    ) -> None:
        """Regress accuracy on each metric per group and pooled; flag Simpson's paradoxes."""
        from alphahat.compare import compare as run
        from alphahat.compare import read_manifest

        output_format = _resolve_format(fmt, output)
        chosen = _layer_specs(metrics) or None
        try:
            read_manifest(manifest, scale=accuracy_scale.value)  # fail fast, before any bar
            with _model_progress(not quiet) as progress:
                comparison = run(
                    manifest,
                    **({"metrics": chosen} if chosen else {}),
                    accuracy_scale=accuracy_scale.value,
                    cache_dir=cache_dir,
                    use_cache=not no_cache,
                    num_bootstrap=bootstrap,
                    confidence=confidence,
                    seed=seed,
                    unsafe_load=unsafe_load,
                    progress=progress,
                    layers=_layer_specs(layers),
                    min_evals=min_evals,
                    max_evals=max_evals,
                    conv_scale=conv_scale.value,
                    include_embeddings=not exclude_embeddings,
                )
        except (AlphahatError, ValueError) as exc:
            _fail(str(exc))
        if not quiet:
            counts = comparison.models["status"].value_counts().to_dict()
            _note(
                f"{len(comparison.models)} models: "
                + ", ".join(
                    f"{counts.get(s, 0)} {s}" for s in ("analysed", "cached", "failed", "missing")
                )
            )
            for note in comparison.notes:
                _note(note)
        if output_format is OutputFormat.table:
            if output is not None:
                text = (
                    comparison.models.to_string(index=False)
                    + "\n\n"
                    + comparison.trends.to_string(index=False)
                    + "\n\n"
                    + "\n".join(c.verdict for c in comparison.checks)
                    + "\n"
                )
                _emit(text, output)
            else:
                _print_comparison(comparison, f"alphahat compare {manifest}")
        else:
            text = (
                comparison.to_csv() if output_format is OutputFormat.csv else comparison.to_json()
            )
            _emit(text, output)
        if models_output is not None:
            _emit(comparison.models_csv(), models_output)
        try:
            if figures is not None:
                from alphahat.compare.figures import save_figures

                for path in save_figures(comparison, figures):
                    if not quiet:
                        _note(f"wrote {path}")
            if html_path is not None:
                from alphahat.compare.html import comparison_html

                _emit(comparison_html(comparison), html_path)
        except AlphahatError as exc:
            _fail(str(exc))
        except OSError as exc:
            _fail(f"cannot write the figures: {exc}")
        if not comparison.reports:
            _fail("no model could be analysed (see the notes above)", EXIT_NO_LAYERS)


@contextlib.contextmanager
def _model_progress(enabled: bool) -> Iterator[Callable[[int, int, str], None] | None]:
    """A rich progress bar over the models on stderr (or nothing)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (
        TextColumn("analysing models"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[model]}", style="dim"),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("models", total=None, model="")

        def update(done: int, total: int, model: str) -> None:
            bar.update(task, completed=done, total=total, model=model)

        yield update
