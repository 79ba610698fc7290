"""The monitor's journal: one fsync'd JSON line per layer and step, resumable after a crash.

Built on :mod:`alphahat.engine.journal` (same header, one ``write`` + ``fsync`` per record,
a torn last record ignored). The header's key says what the rows depend on (the model's class
and the analysis options that change rows); every further line is one of::

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
from typing import Any

from alphahat.engine.journal import Journal, JournalError, key_differences, read_journal

#: ``key["kind"]`` of a monitor journal (an analysis run's journal has none).
MONITOR_KIND = "alphahat-monitor"


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

    Raises:
        JournalError: unreadable, not a journal, or an analysis run's journal.
    """
    contents = read_journal(path)
    if contents.key.get("kind") != MONITOR_KIND:
        raise JournalError(f"{path}: not a monitor journal (an analysis run's journal?)")
    complete = {int(r["step"]) for r in contents.records if r.get("type") == "step"}
    kept = [r for r in contents.records if _step_of(r) in complete]
    return MonitorRecords(contents.key, kept, len(contents.records) - len(kept))


def _step_of(record: Mapping[str, Any]) -> int | None:
    try:
        return int(record["step"])
    except (KeyError, TypeError, ValueError):
        return None


def open_monitor_journal(
    path: str | Path, key: Mapping[str, Any], *, resume: bool = True
) -> tuple[Journal, MonitorRecords]:
    """Open the journal at ``path`` for appending, with the complete steps it already holds.

    With ``resume`` an existing journal of the same key is continued (its unfinished step
    dropped); one written with a different key is an error. Without, it is started afresh.

    Raises:
        JournalError: the existing journal is unreadable or belongs to another run.
    """
    path = Path(path)
    key = {"kind": MONITOR_KIND, **key}
    if resume and path.exists():
        found = read_monitor_journal(path)
        diffs = key_differences(found.key, key)
        if diffs:
            raise JournalError(
                f"{path}: written by a different monitor ({', '.join(diffs)} differ); "
                "use another journal, or resume=False to start it over"
            )
        records: Sequence[Mapping[str, Any]] = found.records
    else:
        found = MonitorRecords(dict(key))
        records = ()
    try:
        journal = Journal.create(path, key, records)
    except OSError as exc:
        raise JournalError(f"{path}: cannot write the journal: {exc.strerror or exc}") from exc
    return journal, found


__all__ = [
    "MONITOR_KIND",
    "MonitorRecords",
    "open_monitor_journal",
    "read_monitor_journal",
]
