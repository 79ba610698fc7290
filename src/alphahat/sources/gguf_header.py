"""A bounded walk over a GGUF file's header, made before the ``gguf`` package parses it.

The ``gguf`` package's reader builds one Python object per element of every metadata array,
so a small hostile file declaring a long array (a 4 MB file with a million-element array
takes minutes and most of a gigabyte) would stall the analysis. This walk reads only the
numbers that give sizes, checks each against the bytes left in the file, and refuses a header
that declares more metadata array elements in total than :data:`MAX_ARRAY_ITEMS` (real models
have under a million: vocabulary, scores, token types, merges).

Layout (GGUF v2/v3, little-endian, or big-endian when the version reads byte-swapped): magic
``GGUF``, u32 version, u64 tensor count, u64 key-value count; each key-value: string key, u32
type, value; a string is a u64 length and bytes; an array is a u32 item type, a u64 count and
the items; each tensor info: string name, u32 dimension count, u64 dimensions, u32 type, u64
offset.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

from alphahat.errors import SourceError
from alphahat.sources.base import open_regular_file

#: most metadata array elements accepted in one file (all arrays together)
MAX_ARRAY_ITEMS = 2_000_000
#: most dimensions of a tensor (ggml has 4)
MAX_DIMS = 8
#: deepest nesting of arrays in arrays
MAX_ARRAY_DEPTH = 3
_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


class _Walker:
    def __init__(self, data: bytes | mmap.mmap, path: Path, order: str) -> None:
        self.data = data
        self.path = path
        self.order = order
        self.pos = 0
        self.items = 0

    def fail(self, why: str) -> SourceError:
        return SourceError(f"{self.path}: not a valid GGUF file ({why})")

    def left(self) -> int:
        return len(self.data) - self.pos

    def number(self, code: str) -> int:
        size = struct.calcsize(code)
        if self.left() < size:
            raise self.fail(f"header truncated at byte {self.pos}")
        (value,) = struct.unpack_from(self.order + code, self.data, self.pos)
        self.pos += size
        return int(value)

    def string(self, what: str) -> None:
        length = self.number("Q")
        if length > self.left():
            raise self.fail(f"{what} claims {length} bytes, {self.left()} left in the file")
        self.pos += length

    def value(self, kind: int, depth: int) -> None:
        if kind in _FIXED:
            if _FIXED[kind] > self.left():
                raise self.fail(f"header truncated at byte {self.pos}")
            self.pos += _FIXED[kind]
        elif kind == _STRING:
            self.string("a string value")
        elif kind == _ARRAY:
            self.array(depth + 1)
        else:
            raise self.fail(f"unknown metadata value type {kind}")

    def array(self, depth: int) -> None:
        if depth > MAX_ARRAY_DEPTH:
            raise self.fail(f"metadata arrays nested deeper than {MAX_ARRAY_DEPTH}")
        kind = self.number("I")
        count = self.number("Q")
        smallest = _FIXED.get(kind, 8 if kind == _STRING else 12)
        if count * smallest > self.left():
            raise self.fail(f"an array claims {count} items, {self.left()} bytes left")
        self.items += count
        if self.items > MAX_ARRAY_ITEMS:
            raise self.fail(
                f"metadata arrays hold more than {MAX_ARRAY_ITEMS} items in total (refused: "
                "parsing them would take minutes)"
            )
        if kind in _FIXED:
            self.pos += count * _FIXED[kind]
            return
        for _ in range(count):
            self.value(kind, depth)


def check_gguf_header(path: Path) -> None:
    """Raise :class:`SourceError` naming ``path`` unless its GGUF header is within bounds."""
    with open_regular_file(path) as f:
        head = f.read(8)
        if len(head) < 8 or head[:4] != b"GGUF":
            raise SourceError(f"{path}: not a valid GGUF file (no GGUF magic)")
        try:
            data: bytes | mmap.mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            raise SourceError(f"{path}: cannot read: {exc}") from exc
    try:
        version = struct.unpack_from("<I", data, 4)[0]
        order = "<" if version & 0xFFFF else ">"
        walker = _Walker(data, path, order)
        walker.pos = 4
        version = walker.number("I")
        if version not in (2, 3):
            raise walker.fail(f"version {version}; versions 2 and 3 are read")
        n_tensors = walker.number("Q")
        n_kv = walker.number("Q")
        if n_kv * 13 > walker.left() or n_tensors * 24 > walker.left():
            raise walker.fail(
                f"header claims {n_tensors} tensors and {n_kv} metadata entries; the file is "
                f"{len(data)} bytes"
            )
        for _ in range(n_kv):
            walker.string("a metadata key")
            walker.value(walker.number("I"), 0)
        for _ in range(n_tensors):
            walker.string("a tensor name")
            dims = walker.number("I")
            if dims > MAX_DIMS:
                raise walker.fail(f"a tensor with {dims} dimensions")
            for _ in range(dims):
                walker.number("Q")
            walker.number("I")
            walker.number("Q")
    finally:
        if isinstance(data, mmap.mmap):
            data.close()
