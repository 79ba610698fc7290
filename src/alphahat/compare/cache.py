"""A cache of analysis reports, keyed by the model's bytes, the analysis options and our version.

The key is the SHA-256 of a JSON document holding the SHA-256 of every file the source reads
(:attr:`~alphahat.sources.WeightSource.files`, plus a sharded folder's index; for a folder each
with its name relative to the folder), the analysis options
(:meth:`~alphahat.analysis.AnalysisOptions.as_dict`) and the alphahat version. A report is
stored as ``<key>.json`` (:meth:`~alphahat.report.Report.to_json`, written atomically), so a
changed file, option or version is a cache miss, and a renamed or moved file is a hit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alphahat._version import __version__
from alphahat.report import Report
from alphahat.sources import file_sha256

#: Folder name of the default cache, created next to the manifest.
DEFAULT_CACHE_DIR = ".alphahat-cache"


def cache_key(
    model: Path,
    files: Sequence[Path],
    options: dict[str, Any],
    digests: Mapping[str, str] | None = None,
) -> str:
    """Hex SHA-256 over the files' contents, the analysis options and the alphahat version.

    ``digests`` (``str(path)`` → SHA-256 hex) are used where given; the other files are hashed.
    """
    model = Path(model)
    entries = []
    for path in sorted({Path(p) for p in files}):
        name = ""
        if model.is_dir():
            try:
                name = str(Path(path).resolve().relative_to(model.resolve()))
            except ValueError:
                name = str(path)
        digest = (digests or {}).get(str(path)) or file_sha256(path)
        entries.append([name, digest])
    document = {"files": entries, "options": options, "alphahat_version": __version__}
    text = json.dumps(document, sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ReportCache:
    """Reports stored as ``<key>.json`` files in ``directory`` (created on the first store)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        """The file of a key."""
        return self.directory / f"{key}.json"

    def load(self, key: str) -> Report | None:
        """The cached report, or None when absent or unreadable (then it is recomputed)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return Report.from_json(path)
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def store(self, key: str, report: Report) -> Path:
        """Write ``report`` atomically under ``key``; return its path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(key)
        report.to_json(path)
        return path
