"""safetensors files and sharded Hugging Face folders, read without torch, one tensor at a time.

The format: an 8-byte little-endian header length H, H bytes of JSON mapping each tensor name
to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the end of the
header), then the raw little-endian data. The header is validated before anything is
allocated: a tensor whose bytes lie outside the file gets a ``problem`` (the other tensors stay
readable); a header that is not a safetensors header is a :class:`SourceError`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from alphahat.errors import SourceError
from alphahat.sources.base import TensorRef, WeightSource, bfloat16_to_float32, natural_key

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
INDEX_SUFFIX = ".safetensors.index.json"


def _header(path: Path) -> tuple[dict[str, Any], int, int]:
    """Parsed JSON header, the offset where data starts, and the data size in bytes."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
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
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"{path}: not a valid safetensors file: header is not JSON") from exc
    if not isinstance(header, dict):
        raise SourceError(f"{path}: not a valid safetensors file: header is not a JSON object")
    return header, 8 + header_len, size - 8 - header_len


def _check_entry(name: str, entry: Any, data_size: int) -> tuple[str, tuple[int, ...], int, str]:
    """Validate one header entry: (dtype code, shape, begin offset, problem or '')."""
    if not isinstance(entry, dict):
        return "", (), 0, "header entry is not an object"
    code = entry.get("dtype")
    shape = entry.get("shape")
    offsets = entry.get("data_offsets")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        return str(code), (), 0, f"invalid shape {shape!r} in header"
    dims = tuple(shape)
    if code not in _DTYPES:
        return str(code), dims, 0, f"unknown safetensors dtype {code!r}"
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
    ):
        return code, dims, 0, f"invalid data_offsets {offsets!r} in header"
    begin, end = offsets
    nbytes = math.prod(dims) * _DTYPES[code][2]
    if not 0 <= begin <= end:
        return code, dims, 0, f"invalid data_offsets {offsets!r} in header"
    if end - begin != nbytes:
        return (
            code,
            dims,
            0,
            (f"header says {end - begin} bytes but shape {list(dims)} of {code} needs {nbytes}"),
        )
    if end > data_size:
        return (
            code,
            dims,
            0,
            (f"data truncated: tensor needs bytes up to {end} but the file holds {data_size}"),
        )
    return code, dims, begin, ""


def _loader(
    path: Path, offset: int, code: str, shape: tuple[int, ...]
) -> Any:  # Callable[[], ndarray]
    def load() -> npt.NDArray[np.generic]:
        _, read_as, _ = _DTYPES[code]
        count = math.prod(shape)
        try:
            with path.open("rb") as f:
                values = np.fromfile(f, dtype=np.dtype(read_as), count=count, offset=offset)
        except OSError as exc:
            raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        if values.size != count:
            raise SourceError(f"{path}: data truncated while reading")
        if code == "BF16":
            values = bfloat16_to_float32(values)
        return values.reshape(shape)

    return load


def read_safetensors_header(path: Path) -> list[TensorRef]:
    """All tensors of one safetensors file, in natural name order (the format keeps none)."""
    header, data_start, data_size = _header(path)
    refs = []
    for name in sorted((k for k in header if k != "__metadata__"), key=natural_key):
        code, shape, begin, problem = _check_entry(name, header[name], data_size)
        dtype = _DTYPES[code][0] if code in _DTYPES else str(code)
        refs.append(
            TensorRef(
                name=name,
                shape=shape,
                dtype=dtype,
                load=_loader(path, data_start + begin, code, shape),
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


def _inside(folder: Path, entry: str) -> Path | None:
    """The shard path if ``entry`` names a file inside ``folder`` (no traversal), else None."""
    if os.path.isabs(entry) or "\\" in entry:
        return None
    candidate = (folder / entry).resolve()
    root = folder.resolve()
    return candidate if candidate.is_relative_to(root) else None


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
        else:
            for shard in shards:
                refs.extend(read_safetensors_header(shard))
                files.append(shard)
            refs.sort(key=lambda r: natural_key(r.name))
        self.files = tuple(files)
        self._refs = refs

    def _from_index(self, index: Path) -> tuple[list[TensorRef], list[Path]]:
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            if not isinstance(weight_map, dict) or not all(
                isinstance(v, str) for v in weight_map.values()
            ):
                raise TypeError("weight_map must map tensor names to file names")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise SourceError(f"{index}: not a valid shard index ({exc})") from exc
        by_shard: dict[str, list[str]] = {}
        for tensor, shard in weight_map.items():
            by_shard.setdefault(shard, []).append(tensor)
        refs: list[TensorRef] = []
        files: list[Path] = []
        for shard, names in sorted(by_shard.items()):
            path = _inside(self.folder, shard)
            if path is None:
                reason = f"shard {shard!r} in {index.name} points outside {self.folder}"
                refs.extend(_missing_ref(n, str(index), reason) for n in names)
                continue
            if not path.is_file():
                reason = f"shard {shard!r} listed in {index.name} is missing"
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
                    reason = f"listed in {index.name} but not found in shard {shard!r}"
                    refs.append(_missing_ref(n, str(path), reason))
        refs.sort(key=lambda r: natural_key(r.name))
        return refs, files

    def tensors(self) -> Iterator[TensorRef]:
        """Tensors of all shards in natural name order."""
        return iter(self._refs)
