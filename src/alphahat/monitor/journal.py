"""The monitor's journal: one fsync'd JSON line per layer and step, resumable after a crash.

A path ending in ``.parquet`` (or an existing folder) is a Parquet journal instead: a folder
with one part file per complete step (:mod:`alphahat.monitor.parquet`); both read back to the
same :class:`MonitorRecords`. The JSON-lines journal is built on :mod:`alphahat.engine.journal`
(same header, one ``write`` + ``fsync`` per record, a torn last record ignored). The header's
key says what the rows depend on (the model's class and the analysis options that change rows);
every further line is one of::

    {"type": "layer", "step": 500, "epoch": 1, "layer_id": 0, "name": "0.weight", "row": {...}}
    {"type": "alert", "step": 500, "epoch": 1, "row": {"rule": "alpha_below", ...}}
    {"type": "step",  "step": 500, "epoch": 1, "row": {...the model means...}}

A step's ``step`` record is written last: a step is complete when it is there. Reopening a
journal keeps the complete steps and drops the records of a step cut short (the journal is
rewritten atomically without them), so a resumed run records that step again, once: no row is
lost and none is duplicated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from alphahat.engine.journal import (
    Journal,
    JournalContents,
    JournalError,
    key_differences,
    read_journal,
)

#: ``key["kind"]`` of a monitor journal (an analysis run's journal has none).
MONITOR_KIND = "alphahat-monitor"
#: The journal formats: JSON lines (one file) or Parquet (a folder of parts).
JournalFormat = Literal["jsonl", "parquet"]


class MonitorJournal(Protocol):
    """An open monitor journal: records appended durably, one at a time."""

    path: Path

    def append(self, record: Mapping[str, Any]) -> None:
        """Record ``record`` (a step's records are durable once its ``step`` record is)."""

    def close(self) -> None:
        """Close the journal (it stays on disk)."""


def journal_format(path: str | Path) -> JournalFormat:
    """``parquet`` for a path ending in ``.parquet`` or an existing folder, else ``jsonl``."""
    path = Path(path)
    return "parquet" if path.suffix.lower() == ".parquet" or path.is_dir() else "jsonl"


@dataclass
class MonitorRecords:
    """The complete steps of a monitor journal, in file order.

    Attributes:
        key: the journal's key.
        records: every record of a complete step (layers, alerts, the step's own).
        dropped: how many records of an unfinished step were left out.
    """

    key: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)
    dropped: int = 0

    def steps(self) -> list[int]:
        """The complete steps, in order of recording."""
        return [int(r["step"]) for r in self.records if r.get("type") == "step"]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        """The records of one type (``layer``, ``alert``, ``step``)."""
        return [r for r in self.records if r.get("type") == kind]

    def layer_rows(self) -> list[dict[str, Any]]:
        """One row per layer and step: the layer's row with ``step`` and ``epoch`` first."""
        return [
            {"step": r["step"], "epoch": r.get("epoch"), **r["row"]} for r in self.of_type("layer")
        ]

    def alert_rows(self) -> list[dict[str, Any]]:
        """One row per alert."""
        return [{"epoch": r.get("epoch"), **r["row"]} for r in self.of_type("alert")]

    def step_rows(self) -> list[dict[str, Any]]:
        """One row per step: the model means."""
        return [
            {"step": r["step"], "epoch": r.get("epoch"), **r["row"]} for r in self.of_type("step")
        ]


def read_monitor_journal(path: str | Path) -> MonitorRecords:
    """The complete steps of the monitor journal at ``path``.

    ``path`` is a JSON-lines file or a Parquet journal's folder.

    Raises:
        JournalError: unreadable, not a journal, or an analysis run's journal.
        MissingDependencyError: a Parquet journal, and pyarrow is not installed.
    """
    return _complete(path, _read_any(path))


def _complete(path: str | Path, contents: JournalContents) -> MonitorRecords:
    """The records of the complete steps (those whose ``step`` record is there).

    Raises:
        JournalError: ``contents`` are not a monitor journal's.
    """
    if contents.key.get("kind") != MONITOR_KIND:
        raise JournalError(f"{path}: not a monitor journal (an analysis run's journal?)")
    complete = {int(r["step"]) for r in contents.records if r.get("type") == "step"}
    kept = [r for r in contents.records if _step_of(r) in complete]
    return MonitorRecords(contents.key, kept, len(contents.records) - len(kept))


def _read_any(path: str | Path) -> JournalContents:
    from alphahat.monitor.parquet import looks_like_parquet_file, read_parquet_journal

    path = Path(path)
    if path.is_dir():
        return read_parquet_journal(path)
    if looks_like_parquet_file(path):
        raise JournalError(
            f"{path}: a single Parquet file, not a monitor journal (a Parquet monitor journal "
            "is a folder of parts, written by Monitor(model, 'NAME.parquet'))"
        )
    return read_journal(path)


def _step_of(record: Mapping[str, Any]) -> int | None:
    try:
        return int(record["step"])
    except (KeyError, TypeError, ValueError):
        return None


def open_monitor_journal(
    path: str | Path,
    key: Mapping[str, Any],
    *,
    resume: bool = True,
    fmt: JournalFormat | None = None,
) -> tuple[MonitorJournal, MonitorRecords]:
    """Open the journal at ``path`` for appending, with the complete steps it already holds.

    With ``resume`` an existing journal of the same key is continued (its unfinished step
    dropped); one written with a different key is an error. Without, it is started afresh.
    ``fmt`` (default: :func:`journal_format` of the path) chooses JSON lines or Parquet.

    Raises:
        JournalError: the existing journal is unreadable or belongs to another run.
        MissingDependencyError: a Parquet journal, and pyarrow is not installed.
    """
    path = Path(path)
    key = {"kind": MONITOR_KIND, **key}
    fmt = fmt or journal_format(path)
    if fmt not in ("jsonl", "parquet"):
        raise ValueError(f"journal format must be 'jsonl' or 'parquet'; got {fmt!r}")
    if fmt == "parquet":
        return _open_parquet(path, key, resume)
    if resume and path.exists():
        found = _checked(path, read_monitor_journal(path), key)
        records: Sequence[Mapping[str, Any]] = found.records
    else:
        found = MonitorRecords(dict(key))
        records = ()
    try:
        journal = Journal.create(path, key, records)
    except OSError as exc:
        raise JournalError(f"{path}: cannot write the journal: {exc.strerror or exc}") from exc
    return journal, found


def _open_parquet(
    path: Path, key: dict[str, Any], resume: bool
) -> tuple[MonitorJournal, MonitorRecords]:
    from alphahat.monitor.parquet import ParquetJournal, parquet_modules, read_parquet_journal

    parquet_modules()  # a missing pyarrow is said now, before training starts
    if path.exists() and not path.is_dir():
        raise JournalError(
            f"{path}: a file, not a Parquet journal's folder (a Parquet journal is a folder "
            "of parts); use another path"
        )
    try:
        holds = path.is_dir() and any(path.iterdir())
    except OSError as exc:
        raise JournalError(f"{path}: cannot read the journal: {exc.strerror or exc}") from exc
    if resume and holds:
        contents = read_parquet_journal(path)
        found = _checked(path, _complete(path, contents), key)
        return ParquetJournal.create(path, key, contents), found
    return ParquetJournal.create(path, key), MonitorRecords(dict(key))


def _checked(path: Path, found: MonitorRecords, key: Mapping[str, Any]) -> MonitorRecords:
    """``found`` when its key is ``key``, else the error of a journal of another monitor."""
    diffs = key_differences(found.key, key)
    if diffs:
        raise JournalError(
            f"{path}: written by a different monitor ({', '.join(diffs)} differ); "
            "use another journal, or resume=False to start it over"
        )
    return found


__all__ = [
    "MONITOR_KIND",
    "JournalFormat",
    "MonitorJournal",
    "MonitorRecords",
    "journal_format",
    "open_monitor_journal",
    "read_monitor_journal",
]
