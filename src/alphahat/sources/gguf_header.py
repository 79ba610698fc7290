"""A GGUF file's header, read by a bounded walk (the ``gguf`` package's reader is not used).

The ``gguf`` package's reader builds one Python object per element of every metadata array,
so a small hostile file declaring a long array (a 4 MB file with 1.9 million strings takes
2.6 GB and most of a minute) would stall the analysis, and one bad tensor entry makes it
reject the whole file. This walk materialises no metadata value except ``general.alignment``:
it reads only the numbers that give sizes, checks each against the bytes left in the file,
and refuses a header that declares more metadata array elements in total than
:data:`MAX_ARRAY_ITEMS` (real models have under a million: vocabulary, scores, token types,
merges). Tensor entries are returned as they are declared (:class:`GGUFTensorInfo`); the
source checks each against the file on its own, so one bad entry fails only its tensor.

Layout (GGUF v2/v3, little-endian, or big-endian when the version reads byte-swapped): magic
``GGUF``, u32 version, u64 tensor count, u64 key-value count; each key-value: string key, u32
type, value; a string is a u64 length and bytes; an array is a u32 item type, a u64 count and
the items; each tensor info: string name, u32 dimension count, u64 dimensions, u32 type, u64
offset.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

from alphahat.errors import SourceError
from alphahat.sources.base import open_regular_file

#: most metadata array elements accepted in one file (all arrays together)
MAX_ARRAY_ITEMS = 2_000_000
#: most dimensions of a tensor (ggml has 4)
MAX_DIMS = 8
#: deepest nesting of arrays in arrays
MAX_ARRAY_DEPTH = 3
#: largest tensor or key name kept (longer ones are cut, with a marker)
MAX_NAME = 1000
_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9
_UINT32 = 4
_DEFAULT_ALIGNMENT = 32


@dataclass(frozen=True)
class GGUFTensorInfo:
    """One tensor entry as declared (checked later, tensor by tensor).

    ``dims`` fastest-first (``ne``), the ggml type id, the offset from the data section.
    """

    name: str
    dims: tuple[int, ...]
    type_id: int
    offset: int


@dataclass(frozen=True)
class GGUFHeader:
    """What the analysis uses of a GGUF header: byte order, where the data starts, tensors."""

    byte_order: str
    alignment: int
    data_start: int
    file_size: int
    tensors: tuple[GGUFTensorInfo, ...]


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

    def skip_strings(self, count: int) -> None:
        """Skip ``count`` strings, each length checked against the bytes left."""
        data, pos, end = self.data, self.pos, len(self.data)
        unpack = struct.Struct(self.order + "Q").unpack_from
        for _ in range(count):
            if pos + 8 > end:
                raise self.fail(f"header truncated at byte {pos}")
            pos += 8 + unpack(data, pos)[0]
            if pos > end:
                raise self.fail(f"a string in an array runs past the end of the file ({end})")
        self.pos = pos

    def text(self, what: str) -> str:
        """A string value, decoded (at most :data:`MAX_NAME` characters kept)."""
        start = self.pos + 8
        self.string(what)
        raw = bytes(self.data[start : min(self.pos, start + MAX_NAME)])
        cut = "…" if self.pos - start > MAX_NAME else ""
        return raw.decode("utf-8", errors="replace") + cut

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
        if kind == _STRING:  # the common long array (a vocabulary): one tight loop
            self.skip_strings(count)
            return
        for _ in range(count):
            self.value(kind, depth)


def read_gguf_header(path: Path) -> GGUFHeader:
    """The header of ``path``; :class:`SourceError` naming it unless within bounds."""
    with open_regular_file(path) as f:
        head = f.read(8)
        if len(head) < 8 or head[:4] != b"GGUF":
            raise SourceError(f"{path}: not a valid GGUF file (no GGUF magic)")
        try:
            data: bytes | mmap.mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            raise SourceError(f"{path}: cannot read: {exc}") from exc
    try:
        return _walk(data, path)
    finally:
        if isinstance(data, mmap.mmap):
            data.close()


def check_gguf_header(path: Path) -> None:
    """Raise :class:`SourceError` naming ``path`` unless its GGUF header is within bounds."""
    read_gguf_header(path)


def _walk(data: bytes | mmap.mmap, path: Path) -> GGUFHeader:
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
    alignment = _DEFAULT_ALIGNMENT
    for _ in range(n_kv):
        key = walker.text("a metadata key")
        kind = walker.number("I")
        if key == "general.alignment" and kind == _UINT32:
            alignment = walker.number("I")
            if alignment <= 0 or alignment & (alignment - 1):
                raise walker.fail(f"general.alignment {alignment} is not a power of two")
        else:
            walker.value(kind, 0)
    tensors = []
    for _ in range(n_tensors):
        name = walker.text("a tensor name")
        n_dims = walker.number("I")
        if n_dims > MAX_DIMS:
            raise walker.fail(f"tensor {name!r} with {n_dims} dimensions")
        dims = tuple(walker.number("Q") for _ in range(n_dims))
        type_id = walker.number("I")
        offset = walker.number("Q")
        tensors.append(GGUFTensorInfo(name, dims, type_id, offset))
    data_start = -(-walker.pos // alignment) * alignment
    return GGUFHeader(order, alignment, data_start, len(data), tuple(tensors))
