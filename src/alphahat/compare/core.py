"""A comparison: per-model metrics, per-group and pooled trends, and the Simpson's-paradox check.

:func:`compare_results` is pure computation on analysed reports (no file is read): for every
metric (layer averages of the report summary, see :data:`DEFAULT_METRICS`) it computes
:func:`~alphahat.compare.stats.trend_statistics` of accuracy on the metric over every group of
the manifest and over all models pooled, then :func:`~alphahat.compare.paradox.
check_simpsons_paradox`. Models that are missing, failed, or have an undefined metric are left
out of that metric's trends (and reported).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alphahat._version import __version__
from alphahat.compare.manifest import Manifest
from alphahat.compare.paradox import METRIC_KINDS, SimpsonsCheck, check_simpsons_paradox
from alphahat.compare.run import ModelResult
from alphahat.compare.stats import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_CONFIDENCE,
    TrendStats,
    trend_statistics,
)
from alphahat.metrics import SUMMARY_METRICS
from alphahat.report import Report, records
from alphahat.report.io import csv_output, json_output

#: Metrics averaged over layers beyond the report summary's, with the same layer rule.
EXTRA_METRICS = ("D", "entropy")
#: Metrics compared by default: the report summary's means, then D and entropy.
DEFAULT_METRICS: tuple[str, ...] = (
    *SUMMARY_METRICS,
    *(m for m in EXTRA_METRICS if m not in SUMMARY_METRICS),
)
#: Group label of the statistics over all models.
POOLED = "(pooled)"
#: Columns of :attr:`Comparison.trends` before the statistics.
TREND_KEYS = ("metric", "kind", "group")


def model_metrics(report: Report, metrics: Sequence[str] = DEFAULT_METRICS) -> dict[str, float]:
    """Layer averages of ``metrics`` over the fitted layers the report summary uses.

    Summary metrics come from :meth:`Report.summary`; others (D, entropy) are the mean of their
    finite values over the same rows (fitted; embeddings excluded when the analysis said so).
    """
    summary = report.summary()
    out: dict[str, float] = {}
    details = report.details
    used = details["status"] == "fitted"
    if not summary.model.include_embeddings:
        used &= details["kind"] != "embedding"
    for metric in metrics:
        if metric in summary.means:
            out[metric] = float(summary.means[metric])
        elif metric in details.columns:
            values = pd.to_numeric(details.loc[used, metric], errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
            finite = values[np.isfinite(values)]
            out[metric] = float(finite.mean()) if finite.size else math.nan
        else:
            out[metric] = math.nan
    return out


def _seed(seed: int, metric: str, group: str) -> list[int]:
    """Per-(metric, group) seed: results do not depend on which other metrics were asked for."""
    return [seed, zlib.crc32(metric.encode()), zlib.crc32(group.encode())]


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare_results` / :func:`alphahat.compare.compare`.

    Attributes:
        models: one row per manifest row: ``line``, ``model``, ``group``, ``accuracy``,
            ``status`` (analysed, cached, failed, missing), ``reason``, ``num_layers`` (fitted
            layers averaged), one column per metric, then the manifest's extra columns.
        trends: one row per (metric, group), the pooled group last per metric
            (:data:`POOLED`), with the :class:`~alphahat.compare.stats.TrendStats` columns.
        checks: the Simpson's-paradox check of each metric.
        stats: the same trends as objects, keyed by (metric, group).
        metrics: the metrics compared, in order.
        accuracy_unit: ``%`` or ``fraction``.
        reports: each usable model's report, keyed by the manifest's ``model`` cell.
        notes: what the reader should know (inferred scale, small groups, left-out models).
        options: analysis and statistics options.
    """

    models: pd.DataFrame
    trends: pd.DataFrame
    checks: tuple[SimpsonsCheck, ...]
    stats: Mapping[tuple[str, str], TrendStats]
    metrics: tuple[str, ...]
    accuracy_unit: str
    has_groups: bool
    reports: Mapping[str, Report] = field(default_factory=dict, repr=False)
    notes: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def paradoxes(self) -> tuple[SimpsonsCheck, ...]:
        """The checks that found a Simpson's paradox."""
        return tuple(c for c in self.checks if c.paradox)

    @property
    def groups(self) -> tuple[str, ...]:
        """Group names in manifest order."""
        return tuple(dict.fromkeys(self.models["group"]))

    def checks_frame(self) -> pd.DataFrame:
        """The paradox checks as a table."""
        rows = [
            {
                "metric": c.metric,
                "kind": c.kind,
                "status": c.status,
                "pooled_slope": c.pooled_slope,
                "pooled_p_value": c.pooled_p_value,
                "pooled_kendall_tau": c.pooled_kendall_tau,
                "within_slope": c.within_slope,
                "within_kendall_tau": c.within_kendall_tau,
                "groups_used": c.groups_used,
                "groups_up": c.groups_up,
                "groups_down": c.groups_down,
                "verdict": c.verdict,
            }
            for c in self.checks
        ]
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-able data (NaN → null)."""
        return {
            "alphahat_version": __version__,
            "accuracy_unit": self.accuracy_unit,
            "metrics": list(self.metrics),
            "options": dict(self.options),
            "notes": list(self.notes),
            "models": records(self.models),
            "trends": records(self.trends),
            "simpsons_paradox": records(self.checks_frame()),
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """JSON text of :meth:`to_dict`; written atomically to ``path`` when given."""
        return json_output(self.to_dict(), path)

    def to_csv(self, path: str | Path | None = None) -> str:
        """CSV of :attr:`trends` (full precision); written atomically to ``path`` when given."""
        return csv_output(self.trends, path)

    def models_csv(self, path: str | Path | None = None) -> str:
        """CSV of :attr:`models`; written atomically to ``path`` when given."""
        return csv_output(self.models, path)

    def __repr__(self) -> str:
        usable = int(self.models["status"].isin(["analysed", "cached"]).sum())
        return (
            f"<Comparison: {usable} of {len(self.models)} models, {len(self.groups)} group(s), "
            f"{len(self.metrics)} metrics, {len(self.paradoxes)} Simpson's paradox(es)>"
        )


def compare_results(
    manifest: Manifest,
    results: Sequence[ModelResult],
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    num_bootstrap: int = DEFAULT_BOOTSTRAP,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
) -> Comparison:
    """Trends of accuracy on each metric per group and pooled, and the paradox checks."""
    metrics = tuple(metrics)
    if not metrics:
        raise ValueError("metrics must name at least one metric")
    rows = []
    reports: dict[str, Report] = {}
    for result in results:
        row = result.row
        values = (
            model_metrics(result.report, metrics)
            if result.usable and result.report is not None
            else dict.fromkeys(metrics, math.nan)
        )
        if result.usable and result.report is not None:
            reports[row.model] = result.report
        num_layers = result.report.summary().model.num_layers if result.report is not None else None
        rows.append(
            {
                "line": row.line,
                "model": row.model,
                "group": row.group,
                "accuracy": row.accuracy,
                "status": result.status,
                "reason": result.reason,
                "num_layers": num_layers,
                **values,
            }
        )
        for name, value in row.extra.items():
            rows[-1][name if name not in rows[-1] else f"{name} (manifest)"] = value
    models = pd.DataFrame(rows)
    if "num_layers" in models.columns:
        models["num_layers"] = models["num_layers"].astype("Int64")
    usable = models[models["status"].isin(["analysed", "cached"])]
    groups = list(dict.fromkeys(models["group"])) if manifest.has_groups else []
    stats: dict[tuple[str, str], TrendStats] = {}
    trend_rows = []
    checks = []
    for metric in metrics:
        per_group: dict[str, TrendStats] = {}
        for group in [*groups, POOLED]:
            subset = usable if group == POOLED else usable[usable["group"] == group]
            x = subset[metric].to_numpy(dtype=np.float64)
            y = subset["accuracy"].to_numpy(dtype=np.float64)
            keep = np.isfinite(x) & np.isfinite(y)
            result_stats = trend_statistics(
                x[keep],
                y[keep],
                num_bootstrap=num_bootstrap,
                confidence=confidence,
                seed=_seed(seed, metric, group),
            )
            stats[(metric, group)] = result_stats
            if group != POOLED:
                per_group[group] = result_stats
            trend_rows.append(
                {
                    "metric": metric,
                    "kind": METRIC_KINDS.get(metric, "other"),
                    "group": group,
                    **result_stats.as_dict(),
                }
            )
        checks.append(check_simpsons_paradox(metric, stats[(metric, POOLED)], per_group))
    trends = pd.DataFrame(trend_rows)
    trends["n"] = trends["n"].astype("Int64")
    trends["num_bootstrap"] = trends["num_bootstrap"].astype("Int64")
    notes = list(manifest.notes)
    left_out = models[~models["status"].isin(["analysed", "cached"])]
    for model, status, reason in zip(
        left_out["model"], left_out["status"], left_out["reason"], strict=True
    ):
        notes.append(f"model {model} {status}, left out: {reason}")
    if not manifest.has_groups:
        notes.append("no 'group' column: pooled trends only, no Simpson's-paradox check")
    all_options = {
        **(options or {}),
        "metrics": list(metrics),
        "num_bootstrap": num_bootstrap,
        "confidence": confidence,
        "seed": seed,
        "accuracy_scale": manifest.scale,
        "manifest": str(manifest.path),
    }
    return Comparison(
        models=models,
        trends=trends,
        checks=tuple(checks),
        stats=stats,
        metrics=metrics,
        accuracy_unit=manifest.unit,
        has_groups=manifest.has_groups,
        reports=reports,
        notes=tuple(notes),
        options=all_options,
    )
