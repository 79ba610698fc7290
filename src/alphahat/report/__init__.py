"""Report: the per-layer table, the model summary, coverage of every tensor, and provenance.

A :class:`Report` never recomputes metrics; it holds what the analysis produced and renders
or writes it (CSV, JSON; files are written atomically).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape as escape_html  # (alphahat.report.html is the HTML report module)
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from alphahat._version import __version__
from alphahat.errors import printable
from alphahat.metrics import SUMMARY_METRICS, ModelSummary, summarize
from alphahat.report.groups import GroupBy, aggregate, describe_groups
from alphahat.report.io import csv_output, json_output

if TYPE_CHECKING:
    from alphahat.layers import TensorPlan
    from alphahat.pipeline import LayerResult
    from alphahat.sources import WeightSource

#: Columns of ``Report.details``, in order.
DETAIL_COLUMNS = (
    "layer_id", "name", "kind", "shape", "dtype", "note", "N", "M", "Q", "num_matrices",
    "num_evals", "alpha", "alpha_weighted", "D", "sigma", "xmin", "xmax", "num_pl_spikes",
    "lambda_max", "log_spectral_norm", "norm", "log_norm", "log_alpha_norm",
    "stable_rank", "entropy", "matrix_rank", "spectrum_method", "warning", "status", "reason",
)  # fmt: skip
#: Columns of ``Report.coverage`` / ``describe()``, in order.
COVERAGE_COLUMNS = (
    "layer_id", "name", "kind", "shape", "dtype", "note", "N", "M", "num_matrices", "num_evals",
    "status", "reason",
)  # fmt: skip
_INT_COLUMNS = ("layer_id", "N", "M", "num_matrices", "num_evals", "num_pl_spikes", "matrix_rank")
#: Count columns of the reference-tool options (added after DETAIL_COLUMNS when computed).
_OPTION_INT_COLUMNS = (
    "slice_id", "num_fingers", "num_spikes", "rand_num_spikes", "num_traps", "detX_num", "ERG_gap",
    "farms_submatrices",
)  # fmt: skip
#: Columns the CLI table shows (all columns go to CSV/JSON).
TABLE_COLUMNS = (
    "layer_id", "name", "kind", "N", "M", "num_evals", "alpha", "alpha_weighted", "D",
    "log_spectral_norm", "log_norm", "log_alpha_norm", "stable_rank", "warning", "status",
    "note",
)  # fmt: skip
_LABELS = {
    "alpha": "alpha (α)",
    "alpha_weighted": "alpha_weighted (α̂ = α·log₁₀λ_max)",
    "log_norm": "log_norm (log₁₀‖W‖²_F)",
    "log_spectral_norm": "log_spectral_norm (log₁₀λ_max)",
    "log_alpha_norm": "log_alpha_norm (log₁₀Σλ^α)",
    "stable_rank": "stable_rank (Σλ/λ_max)",
}


def coverage_frame(
    plans: Sequence[TensorPlan], failures: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """One row per tensor: what was (or would be) done with it and why."""
    failures = failures or {}
    rows = []
    for plan in plans:
        sized = bool(plan.kind) and plan.num_matrices > 0  # a skipped entry is never sized
        status = {"analyse": "analysed"}.get(plan.status, plan.status)
        reason = plan.reason
        if plan.ref.name in failures:
            status, reason = "failed", failures[plan.ref.name]
        rows.append(
            {
                "layer_id": plan.layer_id,
                "name": plan.ref.name,
                "kind": plan.kind or "",
                "shape": "x".join(map(str, plan.ref.shape)),
                "dtype": plan.ref.dtype,
                "note": plan.ref.note,
                "N": plan.N if sized else None,
                "M": plan.M if sized else None,
                "num_matrices": plan.num_matrices if sized else None,
                "num_evals": plan.num_evals if sized else None,
                "status": status,
                "reason": reason,
            }
        )
    frame = pd.DataFrame(rows, columns=list(COVERAGE_COLUMNS))
    return _typed(frame)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    for col in (*_INT_COLUMNS, *_OPTION_INT_COLUMNS):
        if col in frame.columns:
            frame[col] = frame[col].astype("Int64")
    return frame


def build_provenance(
    source: WeightSource,
    options: Mapping[str, Any] | None = None,
    hashes: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Versions, BLAS, seed and input files (with SHA-256) that produced a report.

    See :mod:`alphahat.report.provenance`; nothing machine- or time-dependent beyond these.
    """
    from alphahat.report.provenance import provenance_record

    return provenance_record(source.description, source.files, options, hashes)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class Summary:
    """The model summary of a report; renders as text, markdown and HTML."""

    model: ModelSummary
    source: str = ""
    #: compact per-block and per-module-kind lines (:func:`~alphahat.report.groups.describe_groups`;
    #: empty for a model without transformer blocks)
    groups: tuple[str, ...] = ()

    @property
    def means(self) -> Mapping[str, float]:
        """Layer-averaged metrics."""
        return self.model.means

    def as_dict(self) -> dict[str, Any]:
        """Means and counts as a plain dict (NaN for undefined means)."""
        m = self.model
        return {
            **dict(m.means),
            "num_layers": m.num_layers,
            "num_analysed": m.num_analysed,
            "num_failed": m.num_failed,
            "num_skipped": m.num_skipped,
            "num_under_trained": m.num_under_trained,
            "num_over_trained": m.num_over_trained,
            "include_embeddings": m.include_embeddings,
        }

    def _counts_line(self) -> str:
        m = self.model
        fitted = m.num_analysed - m.num_failed
        which = _plural(m.num_layers, "layer")
        if not m.include_embeddings:
            which += ", embeddings excluded"
        return (
            f"{fitted} fitted, {m.num_failed} failed, {m.num_skipped} skipped; averaged over "
            f"{which}; {m.num_under_trained} under-trained (α > 6), "
            f"{m.num_over_trained} over-trained (α < 2)"
        )

    def to_text(self) -> str:
        """Plain-text block (control characters of the model's name escaped)."""
        width = max(len(v) for v in _LABELS.values())
        source = printable(self.source)
        lines = [f"Model summary{f' — {source}' if source else ''}"]
        lines += [f"  {_LABELS[k]:<{width}}  {_fmt(self.means[k])}" for k in SUMMARY_METRICS]
        lines.append(f"  ({self._counts_line()})")
        lines += [f"  {line}" for line in self.groups]
        return "\n".join(lines)

    def to_markdown(self) -> str:
        """Markdown table."""
        lines = ["| metric | mean |", "|---|---:|"]
        lines += [f"| {_LABELS[k]} | {_fmt(self.means[k])} |" for k in SUMMARY_METRICS]
        groups = "".join(f"\n{line}\n" for line in self.groups)
        return "\n".join(lines) + f"\n\n_{self._counts_line()}_\n" + groups

    def to_html(self) -> str:
        """HTML table (self-contained, no scripts)."""
        rows = "".join(
            f"<tr><td>{escape_html(_LABELS[k])}</td><td style='text-align:right'>"
            f"{_fmt(self.means[k])}</td></tr>"
            for k in SUMMARY_METRICS
        )
        return (
            "<table class='alphahat-summary'><thead><tr><th>metric</th><th>mean</th></tr>"
            f"</thead><tbody>{rows}</tbody></table><p><em>{escape_html(self._counts_line())}</em></p>"
            + "".join(f"<p>{escape_html(line)}</p>" for line in self.groups)
        )

    def _repr_html_(self) -> str:
        return self.to_html()

    def __str__(self) -> str:
        return self.to_text()


def _json_value(value: Any) -> Any:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _frame_from_records(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    """Inverse of :func:`records`: known columns first; all-number columns as float (NaN)."""
    names = list(dict.fromkeys([*columns, *(k for r in rows for k in r)]))
    data: dict[str, Any] = {}
    for name in names:
        values = [r.get(name) for r in rows]
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
            data[name] = pd.Series([np.nan if v is None else v for v in values], dtype="float64")
        else:
            data[name] = pd.Series(values)
    return _typed(pd.DataFrame(data, columns=names))


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a frame as JSON-able dicts (NaN and <NA> → None, numpy scalars → Python)."""
    return [
        {col: _json_value(val) for col, val in zip(frame.columns, row, strict=True)}
        for row in frame.itertuples(index=False, name=None)
    ]


@dataclass
class Report:
    """Result of :func:`alphahat.analyze`.

    Attributes:
        details: one row per analysed matrix (``fitted`` or ``failed``), columns
            :data:`DETAIL_COLUMNS`.
        coverage: one row per tensor of the model, analysed, failed or skipped, with reasons.
        options: the options used.
        provenance: versions and input files.
        eigenvalues: each layer's sorted ESD, by layer name, when ``keep_eigenvalues`` or
            ``keep_fits`` was set.
        fits: each layer's :class:`~alphahat.pipeline.LayerResult` (its spectrum, the
            power-law fit the row reports with its sample and policy, the MP fit and the
            shuffled ESD where computed), by layer name, when ``keep_fits`` was set: what the
            figures and the HTML report draw. Never written to CSV/JSON.
    """

    details: pd.DataFrame
    coverage: pd.DataFrame
    options: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    eigenvalues: dict[str, Any] = field(default_factory=dict, repr=False)
    fits: dict[str, LayerResult] = field(default_factory=dict, repr=False, compare=False)
    #: how the run went (executor, workers, layers resumed from a journal); never written out
    run_info: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_rows(
        cls,
        rows: Sequence[Mapping[str, Any]],
        *,
        plans: Sequence[TensorPlan],
        options: dict[str, Any],
        provenance: dict[str, Any],
        include_embeddings: bool,
        eigenvalues: dict[str, Any],
        fits: dict[str, LayerResult] | None = None,
    ) -> Report:
        """Assemble a report from the analysis' layer rows and tensor plans."""
        extra = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in DETAIL_COLUMNS]
        details = _typed(pd.DataFrame(list(rows), columns=[*DETAIL_COLUMNS, *extra]))
        failures = {str(r["name"]): str(r["reason"]) for r in rows if r.get("status") == "failed"}
        options = {**options, "include_embeddings": include_embeddings}
        return cls(
            details,
            coverage_frame(plans, failures),
            options,
            provenance,
            eigenvalues,
            dict(fits or {}),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """Rebuild a report from :meth:`to_dict` (as read back from :meth:`to_json`).

        Eigenvalues are not part of the JSON, so ``eigenvalues`` is empty; null becomes NaN in
        numeric columns.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("layers"), list):
            raise ValueError("not an alphahat report: no 'layers' list")
        details = _frame_from_records(data["layers"], DETAIL_COLUMNS)
        coverage = _frame_from_records(data.get("tensors", []), COVERAGE_COLUMNS)
        return cls(
            details, coverage, dict(data.get("options", {})), dict(data.get("provenance", {}))
        )

    @classmethod
    def from_json(cls, path: str | Path) -> Report:
        """Read a report written by :meth:`to_json` (see :meth:`from_dict`)."""
        with open(path, encoding="utf-8") as handle:
            return cls.from_dict(json.load(handle))

    def summary(self, include_embeddings: bool | None = None) -> Summary:
        """Layer-averaged metrics over fitted layers (embeddings per the analysis option)."""
        if include_embeddings is None:
            include_embeddings = bool(self.options.get("include_embeddings", True))
        num_skipped = int((self.coverage["status"] == "skipped").sum())
        model = summarize(
            records(self.details), include_embeddings=include_embeddings, num_skipped=num_skipped
        )
        return Summary(model, str(self.provenance.get("source", "")), tuple(self._group_lines()))

    def _group_lines(self) -> list[str]:
        try:
            return describe_groups(self.details)
        except (KeyError, ValueError):  # a table without the columns (e.g. read from old JSON)
            return []

    def aggregate(
        self, by: GroupBy | str = "block", block_pattern: str | None = None
    ) -> pd.DataFrame:
        """Mean, std, min and max of α and α̂ per block, module kind or both (``count`` too).

        See :func:`alphahat.report.groups.aggregate`; ``block_pattern`` is a regex whose first
        group is the block index (default: ``layers.12.``, ``layer.12.``, ``h.12.``,
        ``blocks.12.``, ``block.12.``).
        """
        return aggregate(self.details, by, block_pattern)

    def by_block(self, block_pattern: str | None = None) -> pd.DataFrame:
        """:meth:`aggregate` per transformer block."""
        return self.aggregate("block", block_pattern)

    def by_kind(self, block_pattern: str | None = None) -> pd.DataFrame:
        """:meth:`aggregate` per module kind (q, k, v, o, gate, up, down, embedding, …)."""
        return self.aggregate("kind", block_pattern)

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-able data (NaN → null)."""
        return {
            "alphahat_version": self.provenance.get("alphahat_version", __version__),
            "provenance": self.provenance,
            "options": self.options,
            "summary": {k: _json_value(v) for k, v in self.summary().as_dict().items()},
            "layers": records(self.details),
            "tensors": records(self.coverage),
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """JSON text of :meth:`to_dict`; written atomically to ``path`` when given."""
        return json_output(self.to_dict(), path)

    def to_csv(self, path: str | Path | None = None) -> str:
        """CSV of ``details`` (full float precision); written atomically to ``path`` when given."""
        return csv_output(self.details, path)

    def _repr_html_(self) -> str:
        return self.summary().to_html() + self.details.to_html(index=False, na_rep="—")

    def __repr__(self) -> str:
        s = self.summary().model
        return (
            f"<Report {self.provenance.get('source', '')!r}: {s.num_analysed - s.num_failed} "
            f"fitted, {s.num_failed} failed, {s.num_skipped} skipped>"
        )


__all__ = [
    "COVERAGE_COLUMNS",
    "DETAIL_COLUMNS",
    "TABLE_COLUMNS",
    "Report",
    "Summary",
    "aggregate",
    "coverage_frame",
    "records",
]
