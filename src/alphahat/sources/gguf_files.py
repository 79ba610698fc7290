"""GGUF (llama.cpp) files, read with the ``gguf`` package's own reader and dequantizer.

Float tensors (F32, F16, F64) are read as stored and BF16 is widened exactly; quantized
tensors (Q4_0, Q8_0, K-quants, IQ…) are dequantized to float32 with ``gguf.quants.dequantize``
and labelled ``dequantized from <type>`` in the ``note`` column: their spectra are those of
the dequantized weights, not of the original float model. Quantization types the package
cannot dequantize are skipped with the reason; integer tensors are skipped by the planner.

GGUF stores dimensions fastest-first (``ne``); shapes here are in NumPy/PyTorch order, so a
linear weight is (out, in) as in the original checkpoint, and a Mixture-of-Experts weight
(``ffn_gate_exps``) is ``[experts, out, in]``. The header is read by our own bounded walk
(:mod:`alphahat.sources.gguf_header`: no metadata materialised); every tensor's type id,
dimensions, block layout and offset are then checked against the file on their own before
anything is read, so one bad entry is a ``failed`` row naming the field and the others are
analysed. A tensor is read through a memory map of its own byte range (or of the rows asked
for), so the address space used is the tensor's, not the file's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from alphahat._imports import require
from alphahat.errors import SourceError
from alphahat.sources.base import (
    RowReader,
    TensorRef,
    WeightSource,
    bfloat16_to_float32,
    first_line,
    problem_ref,
    raising_load,
)
from alphahat.sources.gguf_header import GGUFHeader, GGUFTensorInfo, read_gguf_header

Array = npt.NDArray[np.generic]

_FLOATS = {"F32": "float32", "F16": "float16", "F64": "float64"}
_INTS = {"I8": "int8", "I16": "int16", "I32": "int32", "I64": "int64"}


def _module_kind(name: str, ndim: int) -> str | None:
    owner = name.rsplit(".", 1)[0].rsplit(".", 1)[-1]
    if ndim == 2 and owner.endswith("embd"):
        return "embedding"
    if ndim == 3 and owner.endswith("_exps"):
        return "experts"
    return None


class GGUFSource(WeightSource):
    """One ``.gguf`` file; each tensor is read (and dequantized) only when analysed."""

    def __init__(self, path: Path) -> None:
        gguf = require("gguf", f"reading {path.name}")
        self.path = path
        self.files = (path,)
        self.description = str(path)
        self._gguf = gguf
        header = read_gguf_header(path)
        self._header = header
        seen: set[str] = set()
        self._refs = []
        for info in header.tensors:
            if info.name in seen:  # the package's reader refused the whole file for this
                reason = "invalid tensor entry: name: a second tensor of this name"
                self._refs.append(problem_ref(f"{info.name} [duplicate]", str(path), reason))
                continue
            seen.add(info.name)
            self._refs.append(self._ref(info, header))

    def _layout(self, info: GGUFTensorInfo, header: GGUFHeader) -> tuple[Any, int, int] | str:
        """(ggml type, bytes of the tensor, bytes per row of the last axis), or the problem."""
        gguf = self._gguf
        try:
            qtype = gguf.GGMLQuantizationType(info.type_id)
            block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        except (ValueError, KeyError):
            return f"type: unknown ggml type id {info.type_id}"
        ne0 = info.dims[0] if info.dims else 1
        if ne0 % block:
            return (
                f"dims: a row of {ne0} elements is not a whole number of {qtype.name} blocks "
                f"({block} elements each)"
            )
        numel = math.prod(info.dims)
        nbytes = numel // block * type_size
        available = header.file_size - header.data_start
        if info.offset + nbytes > available:
            return (
                f"offset/dims: {list(info.dims)} of {qtype.name} need {nbytes} bytes at offset "
                f"{info.offset}; the data section holds {max(available, 0)} (truncated or forged)"
            )
        return qtype, nbytes, ne0 // block * type_size

    def _ref(self, info: GGUFTensorInfo, header: GGUFHeader) -> TensorRef:
        name, origin = info.name, str(self.path)
        layout = self._layout(info, header)
        if isinstance(layout, str):
            return problem_ref(name, origin, f"invalid tensor entry: {layout}")
        qtype, nbytes, last_bytes = layout
        shape = tuple(reversed(info.dims))
        start = header.data_start + info.offset
        kind = _module_kind(name, len(shape))
        type_name = qtype.name
        big = header.byte_order == ">"
        if type_name in _FLOATS or type_name in _INTS:
            dtype = np.dtype(_FLOATS.get(type_name) or _INTS[type_name])
            stored = dtype.newbyteorder(">") if big else dtype
            load = self._reader(start, shape, last_bytes, lambda raw: raw.view(stored))
            return TensorRef(name, shape, dtype.name, load, kind, origin)
        if type_name == "BF16":
            order = ">u2" if big else "<u2"

            def decode(raw: Array) -> Array:
                return bfloat16_to_float32(raw.view(order).astype(np.uint16))

            load = self._reader(start, shape, last_bytes, decode)
            return TensorRef(name, shape, "bfloat16", load, kind, origin)
        traits = getattr(self._gguf.quants, "_type_traits", {})
        if qtype not in traits or big:
            what = "big-endian quantized tensors" if big else "it"
            reason = f"GGUF quantization {type_name}: the gguf package cannot dequantize {what}"
            return TensorRef(
                name, shape, type_name.lower(), raising_load(origin, name, reason), kind,
                origin, skip_reason=reason,
            )  # fmt: skip
        note = f"dequantized from {type_name} (gguf.quants)"
        load = self._reader(start, shape, last_bytes, self._dequantizer(name, qtype))
        return TensorRef(name, shape, "float32", load, kind, origin, note=note)

    def _dequantizer(self, name: str, qtype: Any) -> Callable[[Array], Array]:
        def decode(raw: Array) -> Array:
            try:
                values: Array = self._gguf.quants.dequantize(raw, qtype)
            except (ValueError, NotImplementedError, IndexError) as exc:
                raise SourceError(
                    f"{self.path}: {name}: cannot dequantize ({first_line(exc)})"
                ) from exc
            return values

        return decode

    def _reader(
        self, start: int, shape: tuple[int, ...], last_bytes: int, decode: Callable[[Array], Array]
    ) -> Callable[[], Array]:
        """``load()`` of a tensor whose rows (of the last axis) are ``last_bytes`` bytes each.

        The raw bytes are viewed as ``(rows…, last_bytes)`` for ``decode`` (a quantized row is
        whole blocks: blocks never straddle rows), so a range of the first axis maps and
        decodes its own bytes alone (one expert of a packed MoE tensor).
        """
        path = self.path
        inner = math.prod(shape[1:-1]) if len(shape) > 1 else 1
        first = shape[0] if len(shape) > 1 else 1
        per_first = inner * last_bytes

        def read(lo: int, hi: int) -> Array:
            rows = (hi - lo, *shape[1:-1], last_bytes) if len(shape) > 1 else (last_bytes,)
            if (hi - lo) * per_first == 0:
                raw: Array = np.zeros(rows, np.uint8)
            else:
                try:
                    raw = np.memmap(path, np.uint8, "r", offset=start + lo * per_first,
                                    shape=rows)  # fmt: skip
                except (OSError, ValueError) as exc:
                    raise SourceError(f"{path}: cannot read: {first_line(exc)}") from exc
            out_shape = (hi - lo, *shape[1:]) if len(shape) > 1 else shape
            return decode(raw).reshape(out_shape)

        if len(shape) >= 2:
            return RowReader(read, first)
        return lambda: read(0, 1)

    def tensors(self) -> Iterator[TensorRef]:
        """Tensors in file order."""
        return iter(self._refs)

    def close(self) -> None:
        """Drop the tensor list (each tensor's memory map is its own)."""
        self._refs = []
