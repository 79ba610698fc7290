"""Compare a series of models: how well the HT-SR metrics predict their accuracies.

The meta-analysis of Martin, Peng & Mahoney (Nature Communications 2021) and of the contest
post-mortem (Martin & Mahoney), as one call: read a manifest of model files with their test
accuracies (and groups), analyse every model (re-using cached reports), regress accuracy on
each layer-averaged metric per group and pooled (OLS slope, R², RMSE, Kendall τ, Spearman ρ,
bootstrap intervals) and flag Simpson's paradoxes.

>>> from alphahat.compare import compare
>>> result = compare("zoo/manifest.csv")          # doctest: +SKIP
>>> result.trends                                   # one row per (metric, group)
>>> [c.verdict for c in result.paradoxes]

Pieces: :mod:`~alphahat.compare.manifest` (reading and validating the CSV),
:mod:`~alphahat.compare.run` and :mod:`~alphahat.compare.cache` (analysing models, cached),
:mod:`~alphahat.compare.stats` (pure statistics), :mod:`~alphahat.compare.paradox` (the
paradox check), :mod:`~alphahat.compare.core` (the :class:`Comparison`),
:mod:`~alphahat.compare.figures` and :mod:`~alphahat.compare.html` (outputs; need matplotlib).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alphahat.compare.cache import DEFAULT_CACHE_DIR, ReportCache, cache_key
from alphahat.compare.core import (
    DEFAULT_METRICS,
    POOLED,
    Comparison,
    compare_results,
    model_metrics,
)
from alphahat.compare.manifest import (
    DEFAULT_GROUP,
    AccuracyScale,
    Manifest,
    ManifestError,
    ManifestRow,
    read_manifest,
)
from alphahat.compare.paradox import METRIC_KINDS, SimpsonsCheck, check_simpsons_paradox
from alphahat.compare.run import ModelProgress, ModelResult, analyse_manifest, analyse_model
from alphahat.compare.stats import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_CONFIDENCE,
    LinearFit,
    TrendStats,
    bootstrap_samples,
    linear_fit,
    trend_statistics,
)


def available_metrics() -> tuple[str, ...]:
    """Metrics a comparison can use: the defaults, then every numeric per-layer column."""
    from alphahat.report import DETAIL_COLUMNS

    text = {"name", "kind", "shape", "dtype", "note", "warning", "status", "reason", "layer_id"}
    return tuple(dict.fromkeys([*DEFAULT_METRICS, *(c for c in DETAIL_COLUMNS if c not in text)]))


def compare(
    manifest: str | Path,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    accuracy_scale: AccuracyScale = "auto",
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    num_bootstrap: int = DEFAULT_BOOTSTRAP,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    unsafe_load: bool = False,
    progress: ModelProgress | None = None,
    **analysis_options: Any,
) -> Comparison:
    """Analyse every model of ``manifest`` and compare their metrics with their accuracies.

    Args:
        manifest: CSV with columns ``model``, ``accuracy`` (or ``error``), optional ``group``
            and any others (see :mod:`alphahat.compare.manifest`).
        metrics: layer-averaged metrics to regress accuracy on.
        accuracy_scale: ``auto`` (percent if any value > 1), ``percent`` or ``fraction``.
        cache_dir: where reports are cached (default: ``.alphahat-cache`` next to the manifest).
        use_cache: False analyses every model again and stores nothing.
        num_bootstrap: bootstrap resamples per confidence interval (0: none).
        confidence: level of the bootstrap intervals.
        seed: seed of the bootstrap.
        unsafe_load: allow a full unpickle of ``.pt/.bin`` files (trusted files only).
        progress: callback(done, total, model) before each model.
        analysis_options: options of :func:`alphahat.analyze` (``layers``, ``min_evals``,
            ``max_evals``, ``conv_scale``, ``include_embeddings``, ``evals_threshold``).

    Raises:
        ManifestError: the manifest is missing or invalid (every problem, with its line).
        ValueError: an option is invalid.
    """
    from alphahat.pipeline import AnalysisOptions

    if isinstance(metrics, str) or not metrics:
        raise ValueError(f"metrics must be a non-empty list of metric names; got {metrics!r}")
    unknown = [m for m in metrics if m not in available_metrics()]
    if unknown:
        raise ValueError(
            f"unknown metric(s) {', '.join(map(repr, unknown))}; available: "
            f"{', '.join(available_metrics())}"
        )
    if "keep_eigenvalues" in analysis_options:
        raise ValueError("keep_eigenvalues is not an option of compare (reports are cached)")
    options = AnalysisOptions(**analysis_options)
    table = read_manifest(manifest, scale=accuracy_scale)
    cache = None
    if use_cache:
        cache = ReportCache(
            cache_dir if cache_dir is not None else table.path.parent / DEFAULT_CACHE_DIR
        )
    results = analyse_manifest(
        table, options, cache=cache, unsafe_load=unsafe_load, progress=progress
    )
    return compare_results(
        table,
        results,
        metrics=metrics,
        num_bootstrap=num_bootstrap,
        confidence=confidence,
        seed=seed,
        options={
            "analysis": options.as_dict(),
            "cache_dir": str(cache.directory) if cache is not None else None,
        },
    )


__all__ = [
    "DEFAULT_BOOTSTRAP",
    "DEFAULT_CACHE_DIR",
    "DEFAULT_CONFIDENCE",
    "DEFAULT_GROUP",
    "DEFAULT_METRICS",
    "METRIC_KINDS",
    "POOLED",
    "AccuracyScale",
    "Comparison",
    "LinearFit",
    "Manifest",
    "ManifestError",
    "ManifestRow",
    "ModelProgress",
    "ModelResult",
    "ReportCache",
    "SimpsonsCheck",
    "TrendStats",
    "analyse_manifest",
    "analyse_model",
    "available_metrics",
    "bootstrap_samples",
    "cache_key",
    "check_simpsons_paradox",
    "compare",
    "compare_results",
    "linear_fit",
    "model_metrics",
    "read_manifest",
    "trend_statistics",
]
