"""Atomic file output: write to a temporary file beside the target, fsync, then rename."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def _default_file_mode() -> int:
    """0o666 minus the process umask: the mode ``open(path, "w")`` would give a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write ``text`` (UTF-8, or bytes as given) to ``path``; readers see old or new, never half."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        os.chmod(tmp, _default_file_mode())  # mkstemp makes 0600; outputs are ordinary files
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_output(data: Any, path: str | Path | None = None) -> str:
    """Indented JSON text of ``data`` (NaN refused: use None); written atomically to ``path``."""
    text = json.dumps(data, indent=2, allow_nan=False, ensure_ascii=False) + "\n"
    if path is not None:
        write_atomic(Path(path), text)
    return text


def csv_output(frame: pd.DataFrame, path: str | Path | None = None) -> str:
    """CSV text of a DataFrame (no index, full precision); written atomically to ``path``."""
    text: str = frame.to_csv(index=False, lineterminator="\n")
    if path is not None:
        write_atomic(Path(path), text)
    return text
