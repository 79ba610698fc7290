"""ONNX ``.onnx`` files (the ``onnx`` package): initializers mapped back to the nodes using them.

The graph says what each weight is: the second input of ``MatMul`` is a linear weight stored
(in, out), the second input of ``Gemm`` one stored (out, in) when ``transB=1`` and (in, out)
otherwise, the second input of ``Conv``/``ConvTranspose`` a kernel, the first input of
``Gather`` an embedding table, inputs W and R of ``LSTM``/``GRU``/``RNN`` stacked recurrent
weights ``[directions, gates·hidden, in]``. Weights stored (in, out) are presented transposed,
in the PyTorch layout (out, in), so shapes and names agree with the model's other formats; the
``note`` column says so. One ``Identity``/``Cast`` hop is followed, and a ``Transpose`` hop
flips the orientation.

Quantized weights of the QDQ format (an integer initializer feeding ``DequantizeLinear``, as
written by ``onnxruntime.quantization`` and most exporters) are read dequantized, as the
operator defines it: W = (q − zero_point) · scale, per tensor, per ``axis`` or in blocks
(``block_size``, opset 21), with the scale and zero point taken from their initializers; the
``note`` says so. Scales computed at run time, or of shapes that do not fit, fail that weight
with the reason.

Exporters often rename transposed weights (``onnx::MatMul_470``); such a weight takes its name
from its node's scope (``/encoder/layer.0/attention/self/query/MatMul`` → the module whose
``….query.bias`` initializer exists, else ``encoder.layer.0.attention.self.query``) plus
``.weight``, and the note keeps the stored name.

External data (``location``/``offset``/``length``) is read only from files inside the model's
folder, after checking the declared range against the file size.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from alphahat._imports import require
from alphahat.errors import SourceError
from alphahat.sources.base import (
    TensorRef,
    WeightSource,
    first_line,
    open_regular_file,
    problem_ref,
)

Array = npt.NDArray[np.generic]

#: op type → (input index of the weight, layer kind or None for "by rank")
_WEIGHT_INPUTS: dict[str, tuple[int, str | None]] = {
    "MatMul": (1, "linear"),
    "Gemm": (1, "linear"),
    "Conv": (1, None),
    "ConvTranspose": (1, None),
    "Gather": (0, "embedding"),
}
_RNN_OPS = ("LSTM", "GRU", "RNN")
_PASS_THROUGH = ("Identity", "Cast", "DequantizeLinear")
_CONV_BY_NDIM = {3: "conv1d", 4: "conv2d", 5: "conv3d"}
_ANONYMOUS = re.compile(r"^(onnx::|/)|^[^.]*$")
#: TensorProto fields holding values when there is no raw_data
_TYPED_FIELDS = ("float_data", "int32_data", "string_data", "int64_data", "double_data",
                 "uint64_data")  # fmt: skip
#: INT4, UINT4, FLOAT4E2M1: two values per int32_data entry
_PACKED_4BIT = (21, 22, 23)
#: files larger than this are refused (protobuf cannot hold more than 2 GiB)
MAX_ONNX_BYTES = 2**31


@dataclass(frozen=True)
class _Role:
    kind: str | None
    transposed: bool
    node_name: str


def _consumers(graph: Any) -> dict[str, list[tuple[Any, int]]]:
    uses: dict[str, list[tuple[Any, int]]] = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            uses.setdefault(name, []).append((node, i))
    return uses


def _attr_int(node: Any, name: str, default: int) -> int:
    for attr in node.attribute:
        if attr.name == name:
            return int(attr.i)
    return default


def _role(name: str, ndim: int, uses: dict[str, list[tuple[Any, int]]]) -> _Role | None:
    """What the graph does with a weight: its kind and whether it is stored (in, out)."""
    frontier = [(name, False)]
    for _hop in range(3):
        nxt: list[tuple[str, bool]] = []
        for tensor, flipped in frontier:
            for node, index in uses.get(tensor, []):
                op = node.op_type
                if op in _RNN_OPS and index in (1, 2) and ndim == 3:
                    return _Role("rnn", False, node.name)
                if op in _PASS_THROUGH and index == 0:
                    nxt.extend((out, flipped) for out in node.output)
                    continue
                if op == "Transpose" and index == 0 and ndim == 2:
                    nxt.extend((out, not flipped) for out in node.output)
                    continue
                spec = _WEIGHT_INPUTS.get(op)
                if spec is None or spec[0] != index:
                    continue
                kind = spec[1] or _CONV_BY_NDIM.get(ndim)
                if kind is None:
                    continue
                in_out = op == "MatMul" or (op == "Gemm" and not _attr_int(node, "transB", 0))
                if kind in ("linear",) and ndim == 2:
                    return _Role(kind, in_out != flipped, node.name)
                if kind == "embedding" and ndim == 2:
                    return _Role(kind, flipped, node.name)
                if kind.startswith("conv"):
                    return _Role(kind, False, node.name)
        frontier = nxt
    return None


def _scope_name(node_name: str, existing: set[str]) -> str | None:
    """``/a/b.0/c/MatMul`` → ``….c.weight``, matching an existing ``….c.bias`` if there is one."""
    parts = [p for p in node_name.split("/") if p][:-1]
    if not parts:
        return None
    path = ".".join(parts)
    components = path.split(".")
    for start in range(len(components)):
        module = ".".join(components[start:])
        if f"{module}.bias" in existing:
            return f"{module}.weight"
    return f"{path}.weight"


def _np_dtype(onnx: Any, code: int) -> np.dtype[Any] | None:
    try:
        dtype: np.dtype[Any] = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(code))
        return dtype
    except (KeyError, TypeError, ValueError):
        return None


def _dtype_name(dtype: np.dtype[Any]) -> str:
    name = dtype.name
    return "bfloat16" if "bfloat16" in name else name


class OnnxSource(WeightSource):
    """One ``.onnx`` file: its initializers (and ``Constant`` weights) with kinds from the graph."""

    def __init__(self, path: Path) -> None:
        onnx = require("onnx", f"reading {path.name}")
        self.path = path
        self.files = (path,)
        self.description = str(path)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        if size >= MAX_ONNX_BYTES:
            raise SourceError(f"{path}: {size} bytes: larger than an ONNX protobuf can be")
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # protobuf raises DecodeError, RuntimeError, …
            raise SourceError(f"{path}: not a valid ONNX model ({first_line(exc)})") from exc
        graph = model.graph
        if not len(graph.initializer) and not len(graph.node):
            raise SourceError(f"{path}: not a valid ONNX model (empty graph)")
        self._onnx = onnx
        self._model = model
        self._constants: dict[str, Any] | None = None
        uses = _consumers(graph)
        tensors = [(t.name, t) for t in graph.initializer]
        for node in graph.node:  # weights some exporters write as Constant nodes
            if node.op_type == "Constant" and node.output:
                for attr in node.attribute:
                    if (
                        attr.name == "value"
                        and attr.type == onnx.AttributeProto.TENSOR
                        and _role(node.output[0], len(attr.t.dims), uses) is not None
                    ):
                        tensors.append((node.output[0], attr.t))
        existing = {name for name, _ in tensors}
        refs: list[TensorRef] = []
        taken = set(existing)
        for name, tensor in tensors:
            refs.append(self._ref(name, tensor, uses, existing, taken))
        for sparse in graph.sparse_initializer:
            reason = "sparse initializer: not supported"
            refs.append(problem_ref(sparse.values.name or "sparse", str(path), reason))
        self._refs = refs

    def _ref(
        self,
        name: str,
        tensor: Any,
        uses: dict[str, list[tuple[Any, int]]],
        existing: set[str],
        taken: set[str],
    ) -> TensorRef:
        dims = tuple(int(d) for d in tensor.dims)
        origin = str(self.path)
        dtype = _np_dtype(self._onnx, tensor.data_type)
        if any(d < 0 for d in dims):
            return problem_ref(name, origin, f"negative dimension in shape {list(dims)}")
        if dtype is None:
            return problem_ref(name, origin, f"unknown ONNX data type {tensor.data_type}")
        problem = self._check_size(tensor, dims, dtype)
        role = _role(name, len(dims), uses)
        kind = role.kind if role else None
        shown, note = name, ""
        if role is not None and kind in ("linear", "embedding") and _ANONYMOUS.search(name):
            derived = _scope_name(role.node_name, existing)
            if derived is not None and derived not in taken:
                taken.add(derived)
                shown, note = derived, f"stored as {name!r}, named from its node's scope"
        shape = dims
        transposed = role is not None and role.transposed and len(dims) == 2
        if transposed:
            shape = (dims[1], dims[0])
            note = "; ".join(filter(None, [note, f"stored {list(dims)} (in, out), transposed"]))
        load = self._loader(name, tensor, dims, dtype)
        shown_dtype = _dtype_name(dtype)
        dequantize = _dequantize_node(name, uses)
        if dequantize is not None and problem is None:
            load, how, problem = self._dequantized(load, dequantize, dims)
            if problem is None:
                shown_dtype = "float32"
                note = "; ".join(filter(None, [f"dequantized from {dtype.name} ({how})", note]))
        return TensorRef(
            name=shown,
            shape=shape,
            dtype=shown_dtype,
            load=_transposed(load) if transposed else load,
            module_kind=kind,
            origin=origin,
            problem=problem,
            note=note,
        )

    def _constant_tensor(self, name: str) -> Any | None:
        """The TensorProto of an initializer or Constant node output (None if neither)."""
        if self._constants is None:
            graph = self._model.graph
            self._constants = {t.name: t for t in graph.initializer}
            for node in graph.node:
                if node.op_type == "Constant" and node.output:
                    for attr in node.attribute:
                        if attr.name == "value":
                            self._constants.setdefault(node.output[0], attr.t)
        return self._constants.get(name)

    def _operand(self, name: str, what: str) -> tuple[tuple[int, ...], Callable[[], Array]] | str:
        """(dims, load) of a constant operand read like a weight (checked, confined), or why not.

        Its values are read only when the weight is: a scale's bytes are checked against the
        file here, and its external data, like a weight's, only inside the model's folder.
        """
        tensor = self._constant_tensor(name)
        if tensor is None:
            return f"DequantizeLinear {what} {name!r} is not a constant"
        dims = tuple(int(d) for d in tensor.dims)
        dtype = _np_dtype(self._onnx, tensor.data_type)
        if dtype is None or any(d < 0 for d in dims):
            return f"DequantizeLinear {what} {name!r}: invalid type or shape {list(dims)}"
        problem = self._check_size(tensor, dims, dtype)
        if problem is not None:
            return f"DequantizeLinear {what} {name!r}: {problem}"
        return dims, self._loader(name, tensor, dims, dtype)

    def _dequantized(
        self, load: Callable[[], Array], node: Any, dims: tuple[int, ...]
    ) -> tuple[Callable[[], Array], str, str | None]:
        """(load of (q − zero_point)·scale, how, problem) for a ``DequantizeLinear`` input.

        Per tensor (one scale), per axis (a 1-D scale along ``axis``) or blocked (opset 21
        ``block_size``: a scale of the weight's rank, ⌈dims[axis] / block_size⌉ along ``axis``).
        Only shapes are checked here; the scale and zero point are read with the weight, and
        a block's scale is spread over its elements by index (memory: one weight-sized array
        whatever ``block_size`` claims).
        """
        inputs = list(node.input) + ["", ""]
        scale = self._operand(inputs[1], "scale")
        if isinstance(scale, str):
            return load, "", scale
        scale_dims, load_scale = scale
        load_zero: Callable[[], Array] | None = None
        if inputs[2]:
            zero = self._operand(inputs[2], "zero point")
            if isinstance(zero, str):
                return load, "", zero
            if zero[0] != scale_dims:
                return load, "", "DequantizeLinear zero point and scale differ in shape"
            load_zero = zero[1]
        axis = _attr_int(node, "axis", 1)
        axis = axis + len(dims) if axis < 0 else axis
        block = _attr_int(node, "block_size", 0)
        mismatch = (
            f"DequantizeLinear scale of shape {list(scale_dims)} does not match axis {axis} "
            f"of the weight's shape {list(dims)}" + (f" in blocks of {block}" if block else "")
        )
        scale_size = math.prod(scale_dims)
        if not 0 <= axis < len(dims) and scale_size != 1:
            return load, "", mismatch
        if block:
            blocks = tuple(-(-d // block) if i == axis else d for i, d in enumerate(dims))
            if block < 0 or scale_dims != blocks:
                return load, "", mismatch
            how, view = f"blocks of {block} along axis {axis}", blocks
        elif scale_size == 1:
            how, view = "per tensor", ()
        elif len(scale_dims) == 1 and scale_size == dims[axis]:
            how = f"per axis {axis}"
            view = tuple(dims[axis] if i == axis else 1 for i in range(len(dims)))
        else:
            return load, "", mismatch

        def spread(values: Array) -> npt.NDArray[np.float64]:
            out = np.asarray(values, np.float64).reshape(view)
            if block:  # element i along the axis takes its block's value, i // block_size
                out = out.take(np.arange(dims[axis]) // block, axis=axis)
            return out

        def load_dequantized() -> Array:
            scales = spread(load_scale())
            q = np.asarray(load(), dtype=np.float64)
            if load_zero is not None:
                q -= spread(load_zero())
            q *= scales
            out: Array = q.astype(np.float32)
            return out

        return load_dequantized, f"DequantizeLinear (q − zero_point)·scale, {how}", None

    def _check_size(self, tensor: Any, dims: tuple[int, ...], dtype: np.dtype[Any]) -> str | None:
        nbytes = math.prod(dims) * dtype.itemsize
        if self._onnx.external_data_helper.uses_external_data(tensor):
            info = {e.key: e.value for e in tensor.external_data}
            location = self._external_path(info.get("location", ""))
            if location is None:
                where = info.get("location")
                return f"external data {where!r} is not a file inside {self.path.parent}"
            try:
                offset = int(info.get("offset", "0"))
                length = int(info.get("length", str(nbytes)))
            except ValueError:
                return "external data offset/length are not integers"
            try:
                size = location.stat().st_size
            except OSError as exc:
                return f"external data {location.name}: {exc.strerror or exc}"
            if offset < 0 or length != nbytes or offset + length > size:
                return (
                    f"external data range offset={offset} length={length} does not hold "
                    f"{nbytes} bytes inside {location.name} ({size} bytes)"
                )
            return None
        if tensor.HasField("raw_data"):
            if len(tensor.raw_data) != nbytes:
                return (
                    f"raw data holds {len(tensor.raw_data)} bytes but shape {list(dims)} of "
                    f"{dtype.name} needs {nbytes}"
                )
            return None
        stored = sum(len(getattr(tensor, f)) for f in _TYPED_FIELDS)
        numel = math.prod(dims)
        expected = 2 * numel if dtype.kind == "c" else numel
        if tensor.data_type in _PACKED_4BIT:
            expected = -(-numel // 2) if tensor.int32_data else expected
        if stored != expected:
            return f"holds {stored} values but shape {list(dims)} needs {expected}"
        return None

    def _external_path(self, location: str) -> Path | None:
        if not location or os.path.isabs(location) or "\\" in location or "\x00" in location:
            return None
        folder = self.path.parent.resolve()
        try:  # a name too long, a symlink loop: not a file we read
            candidate = (folder / location).resolve()
            if not candidate.is_relative_to(folder) or not candidate.is_file():
                return None
        except (OSError, RuntimeError, ValueError):
            return None
        return candidate

    def _loader(
        self, name: str, tensor: Any, dims: tuple[int, ...], dtype: np.dtype[Any]
    ) -> Callable[[], Array]:
        """``load()`` of the initializer as stored (bf16 widened)."""

        def load() -> Array:
            try:
                if self._onnx.external_data_helper.uses_external_data(tensor):
                    info = {e.key: e.value for e in tensor.external_data}
                    location = self._external_path(info.get("location", ""))
                    if location is None:
                        raise SourceError(f"{self.path}: {name}: external data not found")
                    count = math.prod(dims)
                    with open_regular_file(location) as f:  # a FIFO swapped in: refused
                        values: Array = np.fromfile(
                            f, dtype=dtype, count=count, offset=int(info.get("offset", "0"))
                        )
                    if values.size != count:
                        raise SourceError(f"{self.path}: {name}: external data truncated")
                    values = values.reshape(dims)
                else:
                    values = self._onnx.numpy_helper.to_array(tensor)
            except SourceError:
                raise
            except Exception as exc:
                raise SourceError(f"{self.path}: initializer {name!r}: {first_line(exc)}") from exc
            if values.shape != dims:
                raise SourceError(
                    f"{self.path}: initializer {name!r} holds {values.shape}, declared {dims}"
                )
            if "bfloat16" in values.dtype.name or values.dtype.kind == "V":
                values = values.astype(np.float32)
            return values

        return load

    def tensors(self) -> Iterator[TensorRef]:
        """Initializers in graph order."""
        return iter(self._refs)


def _dequantize_node(name: str, uses: dict[str, list[tuple[Any, int]]]) -> Any | None:
    """The ``DequantizeLinear`` node reading ``name`` as its quantized input, if any."""
    for node, index in uses.get(name, []):
        if node.op_type == "DequantizeLinear" and index == 0:
            return node
    return None


def _transposed(load: Callable[[], Array]) -> Callable[[], Array]:
    def load_transposed() -> Array:
        return load().T

    return load_transposed
