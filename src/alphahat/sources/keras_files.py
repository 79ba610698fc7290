"""Keras: ``.keras``, ``.weights.h5`` and legacy ``.h5`` files (h5py), and live models.

Files are read with h5py alone (no TensorFlow); live ``keras.Model`` objects with any backend.

Names are the variables' Keras paths with dots: ``fc1.kernel``, ``lstm.lstm_cell.kernel``,
``mha.query.kernel`` (what ``variable.path`` says on the live model, ``/`` → ``.``), so the
same model gives the same names from a ``.keras`` archive, a ``.h5`` file and the live object.
In the Keras 3 layout (``layers/<attr>/vars/<i>``) a layer's name is the ``name`` attribute
of its ``vars`` group and a variable's name comes from the layer class in ``config.json``
(Dense: kernel, bias; LSTMCell: kernel, recurrent_kernel, bias; …).

Keras stores kernels input-first; they are presented in the PyTorch layout so kinds,
orientation and shapes agree with the model's other formats (the ``note`` column says so):

* ``Dense``/``EinsumDense`` kernel (in, out) → (out, in); ``MultiHeadAttention``'s einsum
  kernels (in, heads, dim) and (heads, dim, out) are first merged to (in, heads·dim) and
  (heads·dim, out);
* ``Conv{1,2,3}D`` kernel (k…, in, out) → (out, in, k…); ``Conv…Transpose`` (k…, out, in) →
  (in, out, k…), as PyTorch stores ``ConvTranspose``;
* ``LSTM``/``GRU``/``SimpleRNN`` ``kernel`` (in, gates·units) and ``recurrent_kernel``
  (units, gates·units) → transposed, kind ``rnn``; ``Embedding`` tables as stored.

Optimizer state (``optimizer/…``, ``optimizer_weights``) is listed and skipped.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import struct
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from alphahat._imports import require
from alphahat.errors import SourceError
from alphahat.sources.arrays import zip_member_problem
from alphahat.sources.base import (
    TensorRef,
    WeightSource,
    first_line,
    parse_json_bytes,
    problem_ref,
    raising_load,
)

Array = npt.NDArray[np.generic]

#: a .keras archive's config.json larger than this (uncompressed) is refused (a zip bomb)
MAX_CONFIG_BYTES = 100_000_000
_KERNEL_BIAS = ("kernel", "bias")
_CELL = ("kernel", "recurrent_kernel", "bias")
#: layer class → its variables in storage order
VARIABLE_NAMES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        (
            "Dense",
            "EinsumDense",
            "Conv1D",
            "Conv2D",
            "Conv3D",
            "Conv1DTranspose",
            "Conv2DTranspose",
            "Conv3DTranspose",
            "DepthwiseConv1D",
            "DepthwiseConv2D",
        ),
        _KERNEL_BIAS,
    ),  # fmt: skip
    "SeparableConv1D": ("depthwise_kernel", "pointwise_kernel", "bias"),
    "SeparableConv2D": ("depthwise_kernel", "pointwise_kernel", "bias"),
    "Embedding": ("embeddings",),
    "LSTMCell": _CELL,
    "GRUCell": _CELL,
    "SimpleRNNCell": _CELL,
    "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance"),
    "LayerNormalization": ("gamma", "beta"),
    "RMSNormalization": ("scale",),
}
#: variables that are never weight matrices, whatever their rank
_NOT_MATRICES = ("bias", "gamma", "beta", "moving_mean", "moving_variance", "scale")
_RNN_LAYERS = {"LSTM": "LSTMCell", "GRU": "GRUCell", "SimpleRNN": "SimpleRNNCell"}
_MHA_OUTPUT = ("attention_output", "output_dense")
_MHA_PARTS = ("query", "key", "value", "query_dense", "key_dense", "value_dense", *_MHA_OUTPUT)


def layer_classes(config: Any) -> dict[str, str]:
    """Layer name → class name, from every layer found anywhere in a Keras config."""
    found: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            cls = node.get("class_name")
            inner = node.get("config")
            if isinstance(cls, str) and isinstance(inner, Mapping):
                name = inner.get("name", node.get("name"))
                if isinstance(name, str):
                    found.setdefault(name, cls)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found


def keras_layout(
    name: str, var: str, cls: str | None, shape: tuple[int, ...]
) -> tuple[str | None, tuple[int, ...], Callable[[Array], Array], str]:
    """(kind, shape in PyTorch layout, values → that layout, note) of one Keras variable."""
    ndim = len(shape)
    cls = cls or ""
    owner = name.rsplit(".", 2)[-2] if name.count(".") else ""

    def same(values: Array) -> Array:
        return values

    if var == "embeddings" and ndim == 2:
        return "embedding", shape, same, ""
    if var in ("kernel", "recurrent_kernel") and ndim == 2:
        kind = "rnn" if cls.endswith("Cell") or var == "recurrent_kernel" else "linear"
        return (
            kind,
            (shape[1], shape[0]),
            _transposed,
            f"stored {list(shape)} (in, out), transposed",
        )
    einsum = cls == "EinsumDense" or (not cls and owner in _MHA_PARTS)
    if var == "kernel" and ndim == 3 and einsum:
        if owner in _MHA_OUTPUT:
            merged, layout = (shape[0] * shape[1], shape[2]), "(heads, dim, out)"
        else:
            merged, layout = (shape[0], shape[1] * shape[2]), "(in, heads, dim)"
        note = f"einsum kernel {list(shape)} {layout} merged to {list(merged)} and transposed"
        return "linear", (merged[1], merged[0]), _merger(merged), note
    if var in ("kernel", "depthwise_kernel", "pointwise_kernel") and 3 <= ndim <= 5:
        kind = {3: "conv1d", 4: "conv2d", 5: "conv3d"}[ndim]
        axes = (ndim - 1, ndim - 2, *range(ndim - 2))
        layout = "(k…, out, in)" if cls.endswith("Transpose") else "(k…, in, out)"
        permuted = tuple(shape[a] for a in axes)
        return kind, permuted, _permuter(axes), f"stored {list(shape)} {layout}, permuted"
    return None, shape, same, ""


def _transposed(values: Array) -> Array:
    return values.T


def _merger(merged: tuple[int, int]) -> Callable[[Array], Array]:
    def convert(values: Array) -> Array:
        return values.reshape(merged).T

    return convert


def _permuter(axes: tuple[int, ...]) -> Callable[[Array], Array]:
    def convert(values: Array) -> Array:
        return np.transpose(values, axes)

    return convert


def _keras_ref(
    name: str,
    var: str,
    cls: str | None,
    shape: tuple[int, ...],
    dtype: str,
    read: Callable[[], Array],
    origin: str,
) -> TensorRef:
    kind, shown, convert, note = keras_layout(name, var, cls, shape)
    skip = None
    if var in _NOT_MATRICES and len(shape) >= 2:
        skip = f"{var} of shape {list(shape)} (an einsum layer's per-head {var}), not weights"

    def load() -> Array:
        values = read()
        if values.shape != shape:
            raise SourceError(f"{origin}: {name}: read shape {values.shape}, declared {shape}")
        return convert(values)

    return TensorRef(name, shown, dtype, load, kind, origin, note=note, skip_reason=skip)


# --------------------------------------------------------------------------- h5 files


#: deflate's largest expansion (as for zip members): more is a forged size
_MAX_DEFLATE_RATIO = 1032
#: HDF5 filters whose output is at most 1032× smaller than their input: deflate, shuffle,
#: fletcher32 (the others, e.g. LZF or SZIP, are not bounded here)
_BOUNDED_FILTERS = (1, 2, 3)
#: deepest group nesting walked (soft links could otherwise make a cycle)
MAX_GROUP_DEPTH = 64


def _storage_problem(dataset: Any, shape: tuple[int, ...], dtype: np.dtype[Any]) -> str | None:
    """Why a dataset's layout shows it cannot be read as weights of this file, or None.

    Checked from the dataset's creation properties before anything is read: data in other
    files (external storage, virtual datasets) is refused — nothing outside the model's file
    is read; chunks never written (they would read as the fill value) and a stored size that
    deflate cannot expand to the declared one are forged sizes.
    """
    if dataset.external:
        files = ", ".join(str(_text(e[0])) for e in dataset.external[:3])
        return f"HDF5 external storage in other files ({files}); refused"
    if dataset.is_virtual:
        return "an HDF5 virtual dataset (its data lies in other files); refused"
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes == 0:
        return None
    dataset_id = dataset.id
    stored = int(dataset_id.get_storage_size())
    chunks = dataset.chunks
    if chunks is None:
        if stored < nbytes:
            return f"declares {nbytes} bytes but {stored} are stored (unallocated)"
        return None
    needed = math.prod(-(-d // c) for d, c in zip(shape, chunks, strict=True))
    allocated = int(dataset_id.get_num_chunks())
    if allocated < needed:
        return (
            f"declares {nbytes} bytes in {needed} chunks but only {allocated} are stored (the "
            "rest would read as the fill value)"
        )
    plist = dataset_id.get_create_plist()
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    if all(f in _BOUNDED_FILTERS for f in filters) and nbytes > _MAX_DEFLATE_RATIO * stored + 2**20:
        return (
            f"declares {nbytes} bytes from {stored} stored bytes; gzip cannot expand more "
            f"than {_MAX_DEFLATE_RATIO}× (forged)"
        )
    return None


def _dataset_ref(name: str, var: str, cls: str | None, dataset: Any, origin: str) -> TensorRef:
    try:
        shape = tuple(int(d) for d in dataset.shape)
        dtype = np.dtype(dataset.dtype)
    except (TypeError, ValueError) as exc:
        return problem_ref(name, origin, f"unreadable dataset ({exc})")
    if dtype.kind not in "fiub" or dtype.byteorder == ">":
        if dtype.kind in "fiu" and dtype.byteorder == ">":
            dtype = dtype.newbyteorder("<")  # h5py converts on read
        else:
            return problem_ref(name, origin, f"unsupported HDF5 dtype {dataset.dtype}")
    try:
        problem = _storage_problem(dataset, shape, dtype)
    except Exception as exc:  # h5py raises OSError, KeyError, RuntimeError, ValueError
        problem = f"unreadable dataset layout ({first_line(exc)})"
    if problem is not None:
        return problem_ref(name, origin, problem)

    def read() -> Array:
        try:
            values: Array = np.asarray(dataset[()])
        except Exception as exc:  # h5py raises OSError, KeyError, RuntimeError
            raise SourceError(f"{origin}: {name}: cannot read ({first_line(exc)})") from exc
        return values

    return _keras_ref(name, var, cls, shape, dtype.name, read, origin)


def _vars_name(group: Any, component: str) -> str:
    vars_group = group.get("vars")
    if vars_group is not None:
        label = vars_group.attrs.get("name")
        if isinstance(label, bytes):
            label = label.decode("utf-8", "replace")
        if isinstance(label, str) and label:
            return label
    return component


#: Keras 3 names a layer's group after its class (``dense``, ``conv2d_1``, ``lstm``)
_CLASS_KEYS = {
    "dense": "Dense", "einsum_dense": "EinsumDense", "embedding": "Embedding",
    "conv1d": "Conv1D", "conv2d": "Conv2D", "conv3d": "Conv3D",
    "conv1d_transpose": "Conv1DTranspose", "conv2d_transpose": "Conv2DTranspose",
    "conv3d_transpose": "Conv3DTranspose", "depthwise_conv1d": "DepthwiseConv1D",
    "depthwise_conv2d": "DepthwiseConv2D", "separable_conv1d": "SeparableConv1D",
    "separable_conv2d": "SeparableConv2D", "lstm": "LSTM", "gru": "GRU",
    "simple_rnn": "SimpleRNN", "batch_normalization": "BatchNormalization",
    "layer_normalization": "LayerNormalization", "multi_head_attention": "MultiHeadAttention",
}  # fmt: skip


def _class_from_key(key: str) -> str | None:
    """``conv2d_transpose_3`` → ``Conv2DTranspose`` (None for unknown keys)."""
    return _CLASS_KEYS.get(re.sub(r"_\d+$", "", key))


def _var_name(cls: str | None, index: int, count: int, dataset: Any) -> str:
    names = VARIABLE_NAMES.get(cls or "")
    if names is not None and (count == len(names) or index == 0) and index < len(names):
        return names[index]
    if names is None and count <= 2 and index < 2:
        ndim = len(getattr(dataset, "shape", ()))
        if index == 0 and ndim >= 2:
            return "kernel"
        if index == 1 and ndim <= 2:
            return "bias"
    return str(index)


class _ExternalLink:
    """An HDF5 link to an object of another file: never followed (reported as refused)."""

    def __init__(self, filename: str, path: str) -> None:
        self.reason = f"an HDF5 external link to {filename}:{path}; refused"


def _child(group: Any, key: str) -> Any:
    """``group[key]`` without following an external link (another file), or None."""
    h5py = require("h5py", "reading Keras weights")
    link = group.get(key, getlink=True)
    if isinstance(link, h5py.ExternalLink):
        return _ExternalLink(_text(link.filename), _text(link.path))
    try:
        return group.get(key)
    except (KeyError, OSError, RuntimeError, ValueError):  # a dangling soft link
        return None


def _child_path(group: Any, path: str) -> Any:
    """``group[path]`` (``a/b/c``) without following external links, or None if missing."""
    item = group
    for key in (k for k in path.split("/") if k):
        if not hasattr(item, "keys") or key not in item:
            return None
        item = _child(item, key)
        if isinstance(item, _ExternalLink) or item is None:
            return item
    return item


def keras3_refs(root: Any, classes: Mapping[str, str], origin: str) -> list[TensorRef]:
    """Tensors of a Keras 3 weights file (``layers/<attr>/vars/<i>``)."""
    h5py = require("h5py", "reading Keras weights")
    refs: list[TensorRef] = []

    def walk(group: Any, names: list[str], owner_cls: str | None, component: str) -> None:
        if len(names) > MAX_GROUP_DEPTH:
            raise SourceError(f"{origin}: HDF5 groups nested deeper than {MAX_GROUP_DEPTH}")
        for key in sorted(group.keys()):
            item = _child(group, key)
            if isinstance(item, _ExternalLink):
                refs.append(problem_ref(".".join([*names, key]), origin, item.reason))
                continue
            if not isinstance(item, h5py.Group):
                continue
            if key == "vars":
                datasets = sorted((k for k in item if k.isdigit()), key=int)
                label = ".".join(names)
                cls = owner_cls
                for k in datasets:
                    dataset = _child(item, k)
                    var = _var_name(cls, int(k), len(datasets), dataset)
                    full = f"{label}.{var}" if label else var
                    if isinstance(dataset, _ExternalLink):
                        refs.append(problem_ref(full, origin, dataset.reason))
                    elif isinstance(dataset, h5py.Dataset):
                        refs.append(_dataset_ref(full, var, cls, dataset, origin))
                continue
            if key == "layers":
                walk(item, names, owner_cls, key)
                continue
            label = _vars_name(item, key)
            cls = classes.get(label) or _class_from_key(key)
            if cls is None and key == "cell" and owner_cls in _RNN_LAYERS:
                cls = _RNN_LAYERS[owner_cls]
            walk(item, [*names, label], cls, key)

    for top in sorted(root.keys()):
        item = _child(root, top)
        if isinstance(item, _ExternalLink):
            refs.append(problem_ref(top, origin, item.reason))
            continue
        if top in ("optimizer", "optimizer_weights"):
            refs.extend(_optimizer_refs(item, origin, top))
        elif top == "layers":
            walk(item, [], None, top)
        elif top == "vars" and isinstance(item, h5py.Group) and len(item):
            walk(root, [], None, "")  # the model's own variables
    return refs


def _optimizer_refs(group: Any, origin: str, prefix: str) -> list[TensorRef]:
    h5py = require("h5py", "reading Keras weights")
    refs: list[TensorRef] = []

    def visit(path: str, item: Any) -> None:
        if isinstance(item, h5py.Dataset):
            name = f"{prefix}.{path.replace('/', '.')}"
            shape = tuple(int(d) for d in item.shape)
            refs.append(
                TensorRef(
                    name,
                    shape,
                    str(item.dtype),
                    raising_load(origin, name, "not model weights"),
                    None,
                    origin,
                    skip_reason="optimizer state, not model weights",
                )
            )

    if isinstance(group, h5py.Group):
        group.visititems(visit)
    return refs


def legacy_h5_refs(root: Any, classes: Mapping[str, str], origin: str) -> list[TensorRef]:
    """Tensors of a legacy (Keras 2 style) ``.h5``: ``layer_names`` / ``weight_names`` attrs."""
    h5py = require("h5py", "reading Keras weights")
    weights = _child(root, "model_weights") if "model_weights" in root else root
    if not isinstance(weights, h5py.Group):
        reason = getattr(weights, "reason", "not a group")
        return [problem_ref("model_weights", origin, reason)]
    refs: list[TensorRef] = []
    for raw_layer in weights.attrs.get("layer_names", []):
        layer = _text(raw_layer)
        group = _child(weights, layer) if layer in weights else None
        if isinstance(group, _ExternalLink):
            refs.append(problem_ref(layer, origin, group.reason))
            continue
        if not isinstance(group, h5py.Group):
            refs.append(problem_ref(layer, origin, "listed in layer_names but missing"))
            continue
        for raw in group.attrs.get("weight_names", []):
            weight = _text(raw)
            name = weight.removesuffix(":0").replace("/", ".")
            dataset = _child_path(group, weight)
            if isinstance(dataset, _ExternalLink):
                refs.append(problem_ref(name, origin, dataset.reason))
                continue
            if not isinstance(dataset, h5py.Dataset):
                refs.append(problem_ref(name, origin, "listed in weight_names but missing"))
                continue
            var = name.rsplit(".", 1)[-1]
            cls = classes.get(layer)
            parts = name.split(".")
            if len(parts) > 2 and cls in _RNN_LAYERS:
                cls = _RNN_LAYERS[cls]
            elif len(parts) > 2:
                cls = classes.get(parts[-2], "EinsumDense" if cls == "MultiHeadAttention" else cls)
            refs.append(_dataset_ref(name, var, cls, dataset, origin))
    if "optimizer_weights" in root:
        refs.extend(_optimizer_refs(root["optimizer_weights"], origin, "optimizer_weights"))
    return refs


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class _Window(io.RawIOBase):
    """A read-only, seekable view of ``size`` bytes at ``offset`` of an open file."""

    def __init__(self, handle: Any, offset: int, size: int) -> None:
        self._handle, self._offset, self._size, self._pos = handle, offset, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = max(0, min(len(view), self._size - self._pos))
        self._handle.seek(self._offset + self._pos)
        data = self._handle.read(count)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


class KerasFileSource(WeightSource):
    """A ``.keras`` archive, a ``.weights.h5`` file or a legacy ``.h5`` model/weights file."""

    def __init__(self, path: Path) -> None:
        h5py = require("h5py", f"reading {path.name}")
        self.path = path
        self.files = (path,)
        self.description = str(path)
        self._handles: list[Any] = []
        origin = str(path)
        config: Any = None
        try:
            if zipfile.is_zipfile(path):
                stream, config = self._open_archive(path)
                root = h5py.File(stream, "r")
            else:
                root = h5py.File(path, "r")
        except SourceError:
            self.close()
            raise
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, struct.error) as exc:
            self.close()
            raise SourceError(f"{path}: not a readable Keras file ({first_line(exc)})") from exc
        self._handles.append(root)
        if config is None and "model_config" in root.attrs:
            try:
                config = parse_json_bytes(_text(root.attrs["model_config"]).encode(), path, "")
            except (SourceError, UnicodeError):
                config = None  # only names the layer classes: the weights are still read
        try:
            classes = layer_classes(config)
        except RecursionError:  # a config nested deeper than Python's stack
            classes = {}
        try:
            if "layers" in root or "vars" in root:
                refs = keras3_refs(root, classes, origin)
            elif "layer_names" in root.attrs or "model_weights" in root:
                refs = legacy_h5_refs(root, classes, origin)
            else:
                raise SourceError(
                    f"{path}: an HDF5 file without Keras weights (no 'layers' group, "
                    "'model_weights' group or 'layer_names' attribute)"
                )
        except SourceError:
            self.close()
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
            self.close()
            raise SourceError(f"{path}: corrupt Keras weights ({first_line(exc)})") from exc
        self._refs = refs

    def _open_archive(self, path: Path) -> tuple[Any, Any]:
        archive = zipfile.ZipFile(path)
        self._handles.append(archive)
        names = archive.namelist()
        archive_size = path.stat().st_size
        for info in archive.infolist():
            if info.filename in ("config.json", "model.weights.h5"):
                problem = zip_member_problem(info, archive_size)
                if problem is not None:
                    raise SourceError(f"{path}: {info.filename}: {problem}")
        config = None
        if "config.json" in names:
            if archive.getinfo("config.json").file_size > MAX_CONFIG_BYTES:
                raise SourceError(f"{path}: config.json is larger than {MAX_CONFIG_BYTES} bytes")
            config = parse_json_bytes(archive.read("config.json"), path, "Keras file: config.json")
        if "model.weights.h5" not in names:
            raise SourceError(f"{path}: a .keras archive without model.weights.h5")
        info = archive.getinfo("model.weights.h5")
        if info.compress_type == zipfile.ZIP_STORED:
            handle = path.open("rb")
            self._handles.append(handle)
            handle.seek(info.header_offset)
            local = handle.read(30)
            if len(local) < 30 or local[:4] != b"PK\x03\x04":
                raise SourceError(f"{path}: corrupt zip entry model.weights.h5")
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            offset = info.header_offset + 30 + name_len + extra_len
            if offset + info.file_size > path.stat().st_size:
                raise SourceError(f"{path}: model.weights.h5 is truncated")
            return io.BufferedReader(_Window(handle, offset, info.file_size)), config
        member = archive.open(info)
        self._handles.append(member)
        return member, config

    def tensors(self) -> Iterator[TensorRef]:
        """Variables in layer-path order."""
        return iter(self._refs)

    def close(self) -> None:
        """Close the HDF5 file and the archive."""
        for handle in reversed(self._handles):
            with contextlib.suppress(Exception):  # closing must never fail
                handle.close()
        self._handles = []


# --------------------------------------------------------------------------- live models


class KerasModelSource(WeightSource):
    """A live ``keras.Model`` (any backend): its variables, named by their Keras path."""

    def __init__(self, model: Any) -> None:
        keras = require("keras", "reading a Keras model")
        self.description = f"{type(model).__name__} {getattr(model, 'name', '')}".strip()
        owner: dict[int, str] = {}
        layers = getattr(model, "_flatten_layers", None)
        sublayers = list(layers(include_self=False, recursive=True)) if layers else model.layers
        for layer in sublayers:
            for variable in getattr(layer, "_trainable_variables", []) + getattr(
                layer, "_non_trainable_variables", []
            ):
                owner[id(variable)] = type(layer).__name__
        refs: list[TensorRef] = []
        seen: set[str] = set()
        for variable in model.weights:
            name = str(getattr(variable, "path", variable.name)).replace("/", ".")
            if name in seen:
                continue
            seen.add(name)
            shape = tuple(int(d) for d in variable.shape)
            dtype = str(getattr(variable, "dtype", "float32"))
            var = name.rsplit(".", 1)[-1]

            def read(v: Any = variable) -> Array:
                values: Array = np.asarray(keras.ops.convert_to_numpy(v.value))
                return values

            refs.append(
                _keras_ref(name, var, owner.get(id(variable)), shape, dtype, read, self.description)
            )
        self._refs = refs

    def tensors(self) -> Iterator[TensorRef]:
        """Variables in the model's order."""
        return iter(self._refs)


def is_keras_model(obj: Any) -> bool:
    """True for a ``keras.Model`` / ``keras.layers.Layer`` (only if keras is already imported)."""
    import sys

    keras = sys.modules.get("keras")
    return keras is not None and isinstance(obj, keras.layers.Layer)


__all__ = ["KerasFileSource", "KerasModelSource", "is_keras_model"]
