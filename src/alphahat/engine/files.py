"""Files: atomic writes (temporary file beside the target, fsync, rename) and streaming hashes."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


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


def sync_folder(folder: Path) -> None:
    """Make the entries of ``folder`` durable (fsync the folder): a file renamed into it stays.

    A no-op where a folder cannot be opened or synced (Windows, some network file systems).
    """
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def file_sha256(
    path: str | Path,
    *,
    chunk_size: int = 8 << 20,
    cancelled: Callable[[], bool] | None = None,
) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks into one reused buffer (constant memory).

    Chunks are large on purpose: a thread hashing beside busy Python code waits for the GIL
    once per chunk (up to the 5 ms switch interval), so 1 MiB chunks made a 90 MB file take
    four times longer in the background than alone.

    Raises:
        InterruptedError: ``cancelled`` (polled between chunks) returned true.
    """
    import hashlib

    digest = hashlib.sha256()
    buffer = bytearray(chunk_size)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while size := handle.readinto(view):
            if cancelled is not None and cancelled():
                raise InterruptedError(f"{path}: hashing was cancelled")
            digest.update(view[:size])
    return digest.hexdigest()


__all__ = ["file_sha256", "sync_folder", "write_atomic"]
