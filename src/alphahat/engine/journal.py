"""The journal: an append-only file of finished tasks, so that no result is lost and runs resume.

Format: JSON lines (UTF-8). The first line identifies the run::

    {"alphahat_journal": 1, "key": {...}}

``key`` holds what determines the results (for an analysis: the alphahat version, the options
and the input — its description and, for each file, its path, size and modification time).
Every further line is one finished task (for an analysis, a layer)::

    {"layer_id": 3, "name": "encoder.layer.0.attention.self.query.weight",
     "transient": false, "row": {...the layer's full row...}}

Each record is appended with one ``write`` and made durable with ``fsync`` before the run moves
on, so a crash, ``SIGINT`` or ``SIGKILL`` loses at most the layer in progress. A record cut short
by a crash (no final newline, or not JSON) is ignored when reading and dropped when the journal
is reopened. Floats are written with ``repr`` precision (NaN as ``NaN``), so a row read back is
bit-identical to the one written, and a resumed run's table equals an uninterrupted run's.

``transient`` marks failures that say nothing about the layer (a timeout, a dead worker): a
resumed run tries those layers again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alphahat.engine.files import write_atomic
from alphahat.errors import AlphahatError

JOURNAL_VERSION = 1
#: Suffix the command line appends to ``-o FILE`` for the journal of that output.
JOURNAL_SUFFIX = ".partial.jsonl"


class JournalError(AlphahatError):
    """A journal cannot be used: unreadable, not a journal, or written by a different run."""


def _json_default(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, allow_nan=True, default=_json_default)


def normalized(key: Mapping[str, Any]) -> dict[str, Any]:
    """``key`` as it reads back from JSON (tuples → lists), for comparisons."""
    value: dict[str, Any] = json.loads(_dumps(dict(key)))
    return value


@dataclass
class JournalContents:
    """A journal as read back: its key and its complete records, in file order."""

    key: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        """The layer rows (later records of the same layer replace earlier ones)."""
        latest: dict[tuple[Any, Any], dict[str, Any]] = {}
        for record in self.records:
            latest[(record.get("layer_id"), record.get("name"))] = record["row"]
        return list(latest.values())


def read_journal(path: str | Path) -> JournalContents:
    """Read a journal, ignoring a last record cut short by a crash.

    Raises:
        JournalError: the file cannot be read or its first line is not a journal header.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JournalError(f"{path}: cannot read the journal: {exc.strerror or exc}") from exc
    lines = data.split(b"\n")
    complete = lines[:-1]  # the part after the last newline is unfinished (or empty)
    try:
        header = json.loads(complete[0]) if complete else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict) or header.get("alphahat_journal") != JOURNAL_VERSION:
        raise JournalError(f"{path}: not an alphahat journal (version {JOURNAL_VERSION})")
    contents = JournalContents(key=dict(header.get("key") or {}))
    for line in complete[1:]:
        try:
            record = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue  # a torn record: only possible as the last one, skip it anyway
        if isinstance(record, dict) and isinstance(record.get("row"), dict):
            contents.records.append(record)
    return contents


def key_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Top-level (and ``options``) entries that differ between two journal keys."""
    old, new = normalized(old), normalized(new)
    diffs = []
    for name in sorted(set(old) | set(new)):
        if old.get(name) == new.get(name):
            continue
        if (
            name == "options"
            and isinstance(old.get(name), dict)
            and isinstance(new.get(name), dict)
        ):
            a, b = old[name], new[name]
            diffs += [f"option {k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        else:
            diffs.append(name)
    return diffs


class Journal:
    """An open journal: :meth:`append` one finished layer at a time (durably)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def create(
        cls, path: str | Path, key: Mapping[str, Any], records: Sequence[Mapping[str, Any]] = ()
    ) -> Journal:
        """Start the journal at ``path`` (atomically replacing any old one) with ``records``."""
        path = Path(path)
        lines = [_dumps({"alphahat_journal": JOURNAL_VERSION, "key": dict(key)})]
        lines += [_dumps(record) for record in records]
        write_atomic(path, "\n".join(lines) + "\n")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        return cls(path, fd)

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one record with a single write, then fsync."""
        data = (_dumps(dict(record)) + "\n").encode("utf-8")
        written = 0
        while written < len(data):
            written += os.write(self._fd, data[written:])
        os.fsync(self._fd)

    def close(self) -> None:
        """Close the file (the journal stays on disk)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def discard(self) -> None:
        """Close and delete the journal (its results are in the final output now)."""
        self.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
