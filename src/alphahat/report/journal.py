"""The journal of an analysis run (:mod:`alphahat.engine.journal`) read back as a table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alphahat.engine.journal import (
    JOURNAL_SUFFIX,
    JOURNAL_VERSION,
    Journal,
    JournalContents,
    JournalError,
    key_differences,
    read_journal,
)


def journal_frame(path: str | Path) -> Any:
    """The finished layers of a journal as a pandas DataFrame (a readable partial table)."""
    import pandas as pd

    return pd.DataFrame(read_journal(path).rows())


__all__ = [
    "JOURNAL_SUFFIX",
    "JOURNAL_VERSION",
    "Journal",
    "JournalContents",
    "JournalError",
    "journal_frame",
    "key_differences",
    "read_journal",
]
