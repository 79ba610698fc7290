"""File hashes computed by a background thread while the caller works on something else."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence

from alphahat.engine.files import file_sha256


class FileHashes:
    """SHA-256 of files computed by a daemon thread (hashlib and reads release the GIL).

    A 100 GB checkpoint takes minutes to hash; overlapping it with the analysis hides that.
    ``known`` digests (path → hex) are not recomputed. :meth:`cancel` stops the thread between
    chunks (a failed or interrupted run does not wait for it).
    """

    def __init__(
        self, files: Sequence[os.PathLike[str] | str], known: Mapping[str, str] | None = None
    ) -> None:
        self._files = [str(f) for f in files]
        self._hashes: dict[str, str] = {f: known[f] for f in self._files if known and f in known}
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alphahat-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for name in self._files:
                if name not in self._hashes:
                    self._hashes[name] = file_sha256(name, cancelled=self._stop.is_set)
        except InterruptedError:
            return  # cancelled: result() says so
        except BaseException as exc:  # re-raised by result()
            self._error = exc

    def cancel(self) -> None:
        """Ask the thread to stop (it finishes its current chunk)."""
        self._stop.set()

    def result(self) -> dict[str, str]:
        """Path → SHA-256 hex of every file (waits for the thread)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        if self._stop.is_set() and len(self._hashes) < len(self._files):
            raise RuntimeError("file hashing was cancelled")
        return dict(self._hashes)


__all__ = ["FileHashes"]
