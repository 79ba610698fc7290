"""Builders of hostile and broken inputs (made on the fly) and independent checks.

Nothing here uses alphahat: the bytes are laid out by hand from the format specifications,
and expected values come from plain numpy.
"""

from __future__ import annotations

import builtins
import json
import math
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: safetensors dtype codes and their numpy equivalents (little-endian)
ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "U8": "u1"}


def safetensors_bytes(header: Any, data: bytes = b"", *, claimed_len: int | None = None) -> bytes:
    """A safetensors file: u64 LE header length, the JSON header, the data.

    ``header`` may be any JSON-able value or raw ``bytes`` (for malformed JSON);
    ``claimed_len`` forges the length prefix.
    """
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    length = len(raw) if claimed_len is None else claimed_len
    return struct.pack("<Q", length) + raw + data


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    """A valid safetensors file written by hand (contiguous data in name order)."""
    header: dict[str, Any] = {}
    chunks, offset = [], 0
    codes = {np.dtype(v): k for k, v in ST_DTYPES.items()}
    for name, array in tensors.items():
        blob = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {
            "dtype": codes[np.dtype(array.dtype)],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        chunks.append(blob)
        offset += len(blob)
    path.write_bytes(safetensors_bytes(header, b"".join(chunks)))
    return path


def good_matrix(seed: int, shape: tuple[int, ...] = (48, 24)) -> np.ndarray:
    """A heavy-tailed random matrix whose power-law fit succeeds."""
    return np.random.default_rng(seed).standard_t(4, size=shape)


def eigenvalues(w: np.ndarray) -> np.ndarray:
    """Independent ESD: squared singular values of W in float64 (numpy's SVD), ascending."""
    return np.sort(np.linalg.svd(np.asarray(w, dtype=np.float64), compute_uv=False) ** 2)


def log10_frobenius_sq(w: np.ndarray, scale: float = 1.0) -> float:
    """log₁₀ ‖scale·W‖²_F computed without overflow: ‖W‖² in float64, then + 2 log₁₀ scale."""
    w64 = np.asarray(w, dtype=np.float64)
    return math.log10(math.fsum((w64 * w64).ravel())) + 2 * math.log10(scale)


class Payload:
    """Unpickling an instance runs code: it creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


def finishes_within(seconds: float, call: Callable[[], Any]) -> tuple[bool, Any]:
    """Run ``call`` in a daemon thread: (finished in time, its result or exception)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            box["value"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    return (not thread.is_alive()), box.get("value")


def make_fifo(path: Path) -> Path:
    """A named pipe with no writer: opening it for reading blocks forever."""
    os.mkfifo(path)
    return path
