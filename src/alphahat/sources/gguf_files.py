"""GGUF (llama.cpp) files, read with the ``gguf`` package's own reader and dequantizer.

Float tensors (F32, F16, F64) are read as stored and BF16 is widened exactly; quantized
tensors (Q4_0, Q8_0, K-quants, IQ…) are dequantized to float32 with ``gguf.quants.dequantize``
and labelled ``dequantized from <type>`` in the ``note`` column: their spectra are those of
the dequantized weights, not of the original float model. Quantization types the package
cannot dequantize are skipped with the reason; integer tensors are skipped by the planner.

GGUF stores dimensions fastest-first (``ne``); shapes here are in NumPy/PyTorch order, so a
linear weight is (out, in) as in the original checkpoint, and a Mixture-of-Experts weight
(``ffn_gate_exps``) is ``[experts, out, in]``. The header is parsed by the package; every
tensor's declared size and offset are then checked against the file before anything is read.
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
from alphahat.sources.gguf_header import check_gguf_header

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
        check_gguf_header(path)  # bounded walk first: the package's parser is not bounded
        try:
            size = path.stat().st_size
            reader = gguf.GGUFReader(str(path), "r")
        except OSError as exc:
            raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        except Exception as exc:  # the reader raises ValueError, IndexError, KeyError, …
            raise SourceError(f"{path}: not a valid GGUF file ({first_line(exc)})") from exc
        self._gguf = gguf
        self._reader = reader
        self._refs = [self._ref(tensor, size) for tensor in reader.tensors]

    def _ref(self, tensor: Any, file_size: int) -> TensorRef:
        name = str(tensor.name)
        origin = str(self.path)
        qtype = tensor.tensor_type
        type_name = getattr(qtype, "name", str(qtype))
        try:
            shape = tuple(int(d) for d in reversed(list(tensor.shape)))
            count, nbytes, offset = (
                int(tensor.n_elements),
                int(tensor.n_bytes),
                int(tensor.data_offset),
            )
        except (TypeError, ValueError, OverflowError) as exc:
            return problem_ref(name, origin, f"invalid tensor header ({exc})")
        if any(d < 0 for d in shape) or math.prod(shape) != count:
            return problem_ref(name, origin, f"shape {list(shape)} does not hold {count} elements")
        if offset < 0 or offset + nbytes > file_size or tensor.data.nbytes != nbytes:
            return problem_ref(
                name,
                origin,
                f"data truncated: needs bytes {offset}..{offset + nbytes}, file has {file_size}",
            )
        kind = _module_kind(name, len(shape))
        if type_name in _FLOATS or type_name in _INTS:
            dtype = _FLOATS.get(type_name) or _INTS[type_name]
            return TensorRef(name, shape, dtype, self._plain(tensor, shape), kind, origin)
        if type_name == "BF16":
            return TensorRef(name, shape, "bfloat16", self._bf16(tensor, shape), kind, origin)
        traits = getattr(self._gguf.quants, "_type_traits", {})
        if qtype not in traits:
            reason = f"GGUF quantization {type_name}: the gguf package cannot dequantize it"
            return TensorRef(
                name,
                shape,
                type_name.lower(),
                raising_load(origin, name, reason),
                kind,
                origin,
                skip_reason=reason,
            )
        note = f"dequantized from {type_name} (gguf.quants)"
        return TensorRef(
            name, shape, "float32", self._dequantized(tensor, shape), kind, origin, note=note
        )

    def _plain(self, tensor: Any, shape: tuple[int, ...]) -> Callable[[], Array]:
        return _row_reader(tensor, shape, np.asarray)

    def _bf16(self, tensor: Any, shape: tuple[int, ...]) -> Callable[[], Array]:
        def decode(data: Any) -> Array:
            return bfloat16_to_float32(np.asarray(data).reshape(-1).view(np.uint16))

        return _row_reader(tensor, shape, decode)

    def _dequantized(self, tensor: Any, shape: tuple[int, ...]) -> Callable[[], Array]:
        def decode(data: Any) -> Array:
            try:
                values: Array = self._gguf.quants.dequantize(data, tensor.tensor_type)
            except (ValueError, NotImplementedError, IndexError) as exc:
                raise SourceError(
                    f"{self.path}: {tensor.name}: cannot dequantize ({first_line(exc)})"
                ) from exc
            return values

        return _row_reader(tensor, shape, decode)

    def tensors(self) -> Iterator[TensorRef]:
        """Tensors in file order."""
        return iter(self._refs)

    def close(self) -> None:
        """Drop the memory map."""
        self._refs = []
        self._reader = None


def _row_reader(
    tensor: Any, shape: tuple[int, ...], decode: Callable[[Any], Array]
) -> Callable[[], Array]:
    """``load()`` = ``decode(data)`` in ``shape``; rows of the first axis alone when possible.

    The reader's memory map is in NumPy order with the first axis ours and, for a quantized
    type, the last axis in bytes (blocks never straddle rows), so slicing it slices whole rows:
    one expert of a packed MoE tensor is decoded alone. Other layouts are decoded whole.
    """
    data = tensor.data
    if len(shape) >= 2 and data.ndim == len(shape) and data.shape[0] == shape[0]:

        def read(start: int, stop: int) -> Array:
            return decode(data[start:stop]).reshape((stop - start, *shape[1:]))

        return RowReader(read, shape[0])
    return lambda: decode(data).reshape(shape)
