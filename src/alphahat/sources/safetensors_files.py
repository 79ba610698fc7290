"""safetensors files and sharded Hugging Face folders, read without torch, one tensor at a time.

The format: an 8-byte little-endian header length H, H bytes of JSON mapping each tensor name
to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the end of the
header), then the raw little-endian data. The header is validated before anything is
allocated: a tensor whose bytes lie outside the file gets a ``problem`` (the other tensors stay
readable); a header that is not a safetensors header is a :class:`SourceError`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from alphahat.errors import SourceError
from alphahat.sources.base import (
    RowReader,
    TensorRef,
    WeightSource,
    bfloat16_to_float32,
    float8_to_float32,
    natural_key,
    open_regular_file,
    parse_json_bytes,
)

#: safetensors dtype code → (our dtype name, numpy dtype used to read it, bytes per element)
_DTYPES: dict[str, tuple[str, str, int]] = {
    "F64": ("float64", "<f8", 8),
    "F32": ("float32", "<f4", 4),
    "F16": ("float16", "<f2", 2),
    "BF16": ("bfloat16", "<u2", 2),
    "I64": ("int64", "<i8", 8),
    "I32": ("int32", "<i4", 4),
    "I16": ("int16", "<i2", 2),
    "I8": ("int8", "i1", 1),
    "U64": ("uint64", "<u8", 8),
    "U32": ("uint32", "<u4", 4),
    "U16": ("uint16", "<u2", 2),
    "U8": ("uint8", "u1", 1),
    "BOOL": ("bool", "?", 1),
    "F8_E4M3": ("float8_e4m3fn", "u1", 1),
    "F8_E5M2": ("float8_e5m2", "u1", 1),
}
#: headers larger than this are refused (the format's own reference limit is 100 MB)
MAX_HEADER_BYTES = 100_000_000
#: shard indexes larger than this are refused (real ones are a few hundred kB)
MAX_INDEX_BYTES = 100_000_000
#: tensors with more dimensions than this are refused as a forged header
MAX_DIMS = 64
_MAX_DIM = 2**63 - 1
INDEX_SUFFIX = ".safetensors.index.json"


def _header(path: Path) -> tuple[dict[str, Any], int, int]:
    """Parsed JSON header, the offset where data starts, and the data size in bytes."""
    with open_regular_file(path) as f:
        try:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if len(head) < 8:
                raise SourceError(f"{path}: not a safetensors file (only {size} bytes)")
            header_len = int.from_bytes(head, "little")
            if header_len > MAX_HEADER_BYTES or header_len > size - 8:
                raise SourceError(
                    f"{path}: not a valid safetensors file: header claims {header_len} bytes "
                    f"but the file has {size} (truncated or not safetensors)"
                )
            raw = f.read(header_len)
        except OSError as exc:
            raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if len(raw) != header_len:
        raise SourceError(f"{path}: not a valid safetensors file: header truncated while reading")
    header = parse_json_bytes(raw, path, "safetensors file: header")
    if not isinstance(header, dict):
        raise SourceError(f"{path}: not a valid safetensors file: header is not a JSON object")
    return header, 8 + header_len, size - 8 - header_len


def _numel(dims: tuple[int, ...], limit: int) -> int:
    """Product of ``dims``, or ``limit + 1`` as soon as it exceeds ``limit`` (no huge ints)."""
    if 0 in dims:
        return 0
    total = 1
    for d in dims:
        total *= d
        if total > limit:
            return limit + 1
    return total


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_entry(name: str, entry: Any, data_size: int) -> tuple[str, tuple[int, ...], int, str]:
    """Validate one header entry: (dtype code, shape, begin offset, problem or '').

    Nothing is allocated from the header's numbers: sizes are compared with the file size.
    """
    if not isinstance(entry, dict):
        return "", (), 0, "header entry is not an object"
    code = entry.get("dtype")
    shape = entry.get("shape")
    offsets = entry.get("data_offsets")
    if not isinstance(code, str):
        code = repr(code)[:40]
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_DIMS
        or not all(_is_int(d) and 0 <= d <= _MAX_DIM for d in shape)
    ):
        return code, (), 0, f"invalid shape {_short(shape)} in header"
    dims = tuple(shape)
    if code not in _DTYPES:
        return code, dims, 0, f"unknown safetensors dtype {code!r}"
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(map(_is_int, offsets)):
        return code, dims, 0, f"invalid data_offsets {_short(offsets)} in header"
    begin, end = offsets
    if not 0 <= begin <= end:
        return code, dims, 0, f"invalid data_offsets {_short(offsets)} in header"
    itemsize = _DTYPES[code][2]
    limit = max(end - begin, data_size) // itemsize
    numel = _numel(dims, limit)
    if end - begin != numel * itemsize:
        needs = f"more than {limit * itemsize}" if numel > limit else f"{numel * itemsize}"
        return (
            code,
            dims,
            0,
            f"header says {end - begin} bytes but shape {_short(list(dims))} of {code} "
            f"needs {needs}",
        )
    if end > data_size:
        return (
            code,
            dims,
            0,
            f"data truncated: tensor needs bytes up to {end} but the file holds {data_size}",
        )
    return code, dims, begin, ""


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _overlaps(spans: dict[str, tuple[int, int]]) -> dict[str, str]:
    """Tensors whose bytes overlap an accepted tensor's (name → that tensor's name).

    In order of offset, a tensor is accepted when it starts at or after the end of every
    accepted one (ties: the first in the header); a rejected tensor blocks nothing.
    """
    found: dict[str, str] = {}
    reach, owner = -1, ""
    for name, (begin, end) in sorted(spans.items(), key=lambda item: item[1]):  # stable
        if begin == end:
            continue
        if begin < reach:
            found[name] = owner
        else:
            reach, owner = end, name
    return found


def _loader(path: Path, offset: int, code: str, shape: tuple[int, ...], problem: str) -> Any:
    """``load()`` of one tensor (Callable[[], ndarray]); it raises when the entry is invalid.

    For a tensor of at least one dimension it is a :class:`RowReader`: a range of the first
    axis is read alone (one expert of a packed MoE tensor reads its own bytes only).
    """
    name, read_as, itemsize = _DTYPES.get(code, ("", "u1", 1))  # an unknown code has a problem
    row = math.prod(shape[1:])

    def read(start: int, stop: int) -> npt.NDArray[np.generic]:
        if problem:
            raise SourceError(f"{path}: {problem}")
        count = (stop - start) * row if shape else 1
        with open_regular_file(path) as f:
            try:
                values = np.fromfile(
                    f, dtype=np.dtype(read_as), count=count, offset=offset + start * row * itemsize
                )
            except OSError as exc:
                raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        if values.size != count:
            raise SourceError(f"{path}: data truncated while reading")
        if code == "BF16":
            values = bfloat16_to_float32(values)
        elif code.startswith("F8_"):
            values = float8_to_float32(values, name)
        return values.reshape((stop - start, *shape[1:]) if shape else ())

    if not shape:
        return lambda: read(0, 1)
    return RowReader(read, shape[0])


def read_safetensors_header(path: Path) -> list[TensorRef]:
    """All tensors of one safetensors file, in natural name order (the format keeps none).

    A tensor whose header entry is invalid (unknown dtype, bad shape or offsets, bytes outside
    the file, bytes shared with another tensor) gets a ``problem``; the others stay readable.
    """
    header, data_start, data_size = _header(path)
    checked = {
        name: _check_entry(name, header[name], data_size)
        for name in header
        if name != "__metadata__"
    }
    spans = {
        name: (begin, begin + _DTYPES[code][2] * math.prod(shape))
        for name, (code, shape, begin, problem) in checked.items()
        if not problem
    }
    overlapping = _overlaps(spans)
    refs = []
    for name in sorted(checked, key=natural_key):
        code, shape, begin, problem = checked[name]
        if not problem and name in overlapping:
            problem = (
                f"data_offsets overlap those of tensor {overlapping[name]!r} "
                "(a forged or corrupt header)"
            )
        dtype = _DTYPES[code][0] if code in _DTYPES else code
        refs.append(
            TensorRef(
                name=name,
                shape=shape,
                dtype=dtype,
                load=_loader(path, data_start + begin, code, shape, problem),
                origin=str(path),
                problem=problem or None,
            )
        )
    return refs


class SafetensorsSource(WeightSource):
    """One ``.safetensors`` file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.files = (path,)
        self.description = str(path)
        self._refs = read_safetensors_header(path)

    def tensors(self) -> Iterator[TensorRef]:
        """Tensors in natural name order."""
        return iter(self._refs)


def _missing_ref(name: str, origin: str, reason: str) -> TensorRef:
    def load() -> npt.NDArray[np.generic]:
        raise SourceError(f"{name}: {reason}")

    return TensorRef(name=name, shape=(), dtype="unknown", load=load, origin=origin, problem=reason)


def _allowed_roots(folder: Path) -> list[Path]:
    """Where files of ``folder`` may resolve to.

    The folder itself, and for a Hugging Face cache snapshot
    (``models--org--name/snapshots/<revision>/``) that repository's ``blobs/`` folder, which
    its symlinks point into.
    """
    root = folder.resolve()
    roots = [root]
    repo = root.parent.parent
    if root.parent.name == "snapshots" and repo.name.startswith(("models--", "datasets--")):
        roots.append(repo / "blobs")
    return roots


def path_inside(folder: Path, entry: str) -> Path | None:
    """``folder / entry`` if it names a file inside ``folder``, else None.

    Refused: absolute paths, backslashes, NUL bytes, ``..`` that leaves the folder, and
    symlinks whose target lies outside it (the one exception: a Hugging Face cache snapshot's
    links into its repository's ``blobs/``).
    """
    if not entry or os.path.isabs(entry) or "\\" in entry or "\x00" in entry:
        return None
    candidate = folder / entry
    try:
        target = candidate.resolve()
    except (OSError, RuntimeError, ValueError):  # symlink loops, unencodable names
        return None
    if any(target.is_relative_to(root) for root in _allowed_roots(folder)):
        return candidate
    return None


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long, no permission: not a shard we can read
        return False


class ShardedSafetensorsSource(WeightSource):
    """A Hugging Face checkpoint folder: ``*.safetensors.index.json`` or several shards.

    Each shard's header is read once; tensors are read one at a time. Tensors whose shard is
    missing stay listed, with the reason, so they are never dropped silently.
    """

    def __init__(self, folder: Path, index: Path | None, shards: list[Path]) -> None:
        self.folder = folder
        self.description = str(folder)
        refs: list[TensorRef] = []
        files: list[Path] = []
        if index is not None:
            refs, files = self._from_index(index)
            files.insert(0, index)  # an input too (provenance hashes every file read)
        else:
            for shard in shards:
                refs.extend(read_safetensors_header(shard))
                files.append(shard)
            refs.sort(key=lambda r: natural_key(r.name))
        self.files = tuple(files)
        self._refs = refs

    def _from_index(self, index: Path) -> tuple[list[TensorRef], list[Path]]:
        with open_regular_file(index) as f:
            try:
                raw = f.read(MAX_INDEX_BYTES + 1)
            except OSError as exc:
                raise SourceError(f"{index}: cannot read: {exc.strerror or exc}") from exc
        if len(raw) > MAX_INDEX_BYTES:
            raise SourceError(
                f"{index}: not a valid shard index: larger than {MAX_INDEX_BYTES} bytes"
            )
        content = parse_json_bytes(raw, index, "shard index")
        weight_map = content.get("weight_map") if isinstance(content, dict) else None
        if not isinstance(weight_map, dict) or not all(
            isinstance(v, str) for v in weight_map.values()
        ):
            raise SourceError(
                f"{index}: not a valid shard index (needs a 'weight_map' object mapping "
                "tensor names to shard file names)"
            )
        by_shard: dict[str, list[str]] = {}
        for tensor, shard in weight_map.items():
            by_shard.setdefault(shard, []).append(tensor)
        refs: list[TensorRef] = []
        files: list[Path] = []
        for shard, names in sorted(by_shard.items()):
            path = path_inside(self.folder, shard)
            if path is None:
                reason = f"shard {_short(shard)} in {index.name} points outside {self.folder}"
                refs.extend(_missing_ref(n, str(index), reason) for n in names)
                continue
            if not _exists(path):
                reason = f"shard {_short(shard)} listed in {index.name} is missing"
                refs.extend(_missing_ref(n, str(path), reason) for n in names)
                continue
            try:
                in_file = {r.name: r for r in read_safetensors_header(path)}
            except SourceError as exc:
                refs.extend(_missing_ref(n, str(path), str(exc)) for n in names)
                continue
            files.append(path)
            for n in names:
                if n in in_file:
                    refs.append(in_file[n])
                else:
                    reason = f"listed in {index.name} but not found in shard {_short(shard)}"
                    refs.append(_missing_ref(n, str(path), reason))
        refs.sort(key=lambda r: natural_key(r.name))
        return refs, files

    def tensors(self) -> Iterator[TensorRef]:
        """Tensors of all shards in natural name order."""
        return iter(self._refs)
