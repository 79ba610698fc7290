"""Analyse every model of a manifest, re-using cached reports.

Each model is analysed in its own error scope: a model file that is missing or cannot be
analysed becomes a ``missing`` or ``failed`` result with the reason (naming the manifest line),
and the other models are still analysed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from alphahat.compare.cache import ReportCache, cache_key
from alphahat.compare.manifest import Manifest, ManifestRow
from alphahat.errors import AlphahatError
from alphahat.pipeline import AnalysisOptions
from alphahat.report import Report
from alphahat.run import run_analysis
from alphahat.sources import WeightSource, file_sha256, open_source
from alphahat.sources.safetensors_files import INDEX_SUFFIX

ModelStatus = Literal["analysed", "cached", "failed", "missing"]
#: Called before each model with (models done, total, model as written in the manifest).
ModelProgress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class ModelResult:
    """One manifest row and what its analysis gave (``report`` is None unless it ran)."""

    row: ManifestRow
    status: ModelStatus
    report: Report | None = None
    reason: str = ""

    @property
    def usable(self) -> bool:
        """Whether the model has a report with at least one fitted layer."""
        return self.report is not None and self.status in ("analysed", "cached")


def _key_files(path: Path, source: WeightSource) -> tuple[Path, ...]:
    """The files a model's cache key covers: what its source reads (plus a folder's index)."""
    files = tuple(Path(f) for f in source.files)
    if path.is_file():
        return files or (path,)
    return (*files, *sorted(path.glob(f"*{INDEX_SUFFIX}")))


def analyse_model(
    row: ManifestRow,
    options: AnalysisOptions,
    *,
    cache: ReportCache | None = None,
    unsafe_load: bool = False,
) -> ModelResult:
    """Analyse (or load from ``cache``) the model of one manifest row; never raises for it.

    The model is opened once (headers): its files are hashed once for the cache key, and on a
    miss the same open source is analysed, the key's digests serving as the provenance's.
    """
    if not row.path.exists():
        return ModelResult(row, "missing", reason=f"{row.where}: {row.path}: no such file")
    try:
        with open_source(row.path, unsafe_load=unsafe_load) as source:
            key = None
            digests: dict[str, str] = {}
            if cache is not None:
                digests = {str(p): file_sha256(p) for p in _key_files(row.path, source)}
                key = cache_key(row.path, [Path(p) for p in digests], options.as_dict(), digests)
                cached = cache.load(key)
                if cached is not None:
                    return _checked(row, "cached", cached)
            report = run_analysis(source, options, file_hashes=digests)
        if cache is not None and key is not None:
            cache.store(key, report)
    except (AlphahatError, ValueError, OSError, MemoryError) as exc:
        return ModelResult(row, "failed", reason=f"{row.where}: {exc}")
    return _checked(row, "analysed", report)


def _checked(row: ManifestRow, status: ModelStatus, report: Report) -> ModelResult:
    if report.summary().model.num_layers == 0:
        return ModelResult(
            row, "failed", report, f"{row.where}: no layer could be fitted (see its report)"
        )
    return ModelResult(row, status, report)


def analyse_manifest(
    manifest: Manifest,
    options: AnalysisOptions,
    *,
    cache: ReportCache | None = None,
    unsafe_load: bool = False,
    progress: ModelProgress | None = None,
) -> list[ModelResult]:
    """:func:`analyse_model` for every row of ``manifest``, in order."""
    results = []
    total = len(manifest.rows)
    for done, row in enumerate(manifest.rows):
        if progress is not None:
            progress(done, total, row.model)
        results.append(analyse_model(row, options, cache=cache, unsafe_load=unsafe_load))
    if progress is not None:
        progress(total, total, "")
    return results
