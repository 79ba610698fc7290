"""Sources: enumerate a model's tensors from headers and read them one at a time.

:func:`open_source` accepts a ``torch.nn.Module``, a ``keras.Model``, a ``state_dict`` or any
``{name: array}`` mapping, or a path: ``.safetensors``, a sharded Hugging Face folder,
``.pt/.bin/.pth``, ``.npy``/``.npz``, ``.onnx``, ``.gguf``, ``.keras``/``.h5``, or a PEFT
LoRA adapter folder. :func:`open_with_base` adds a base checkpoint: LoRA merged/base views, or
fine-tune deltas W − W_base. Only this package knows about frameworks and file formats.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alphahat._imports import loaded
from alphahat.engine.files import file_sha256
from alphahat.errors import SourceError
from alphahat.sources.arrays import MappingSource, NpySource, NpzSource
from alphahat.sources.base import (
    FLOAT_DTYPES,
    TensorRef,
    WeightSource,
    natural_key,
    read_model_config,
)
from alphahat.sources.deltas import DeltaSource
from alphahat.sources.gguf_files import GGUFSource
from alphahat.sources.keras_files import KerasFileSource, KerasModelSource, is_keras_model
from alphahat.sources.onnx_files import OnnxSource
from alphahat.sources.peft_adapters import LoraSource, adapter_weights_file, is_adapter_folder
from alphahat.sources.safetensors_files import (
    INDEX_SUFFIX,
    SafetensorsSource,
    ShardedSafetensorsSource,
    path_inside,
)
from alphahat.sources.torch_sources import ModuleSource, load_torch_file

__all__ = [
    "FLOAT_DTYPES",
    "SUPPORTED_SUFFIXES",
    "TensorRef",
    "SourceSpec",
    "WeightSource",
    "file_sha256",
    "open_source",
    "open_with_base",
]

_TORCH_SUFFIXES = (".pt", ".bin", ".pth")
_KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
SUPPORTED_SUFFIXES = (
    ".safetensors", *_TORCH_SUFFIXES, ".npy", ".npz", ".onnx", ".gguf", *_KERAS_SUFFIXES
)  # fmt: skip


def open_source(model: Any, *, unsafe_load: bool = False, base: Any = None) -> WeightSource:
    """The :class:`WeightSource` for a model object or a path.

    With ``base`` (a checkpoint), the model is read against it: see :func:`open_with_base`.

    Raises:
        SourceError: the path does not exist, holds no weights, or has an unknown format.
        MissingDependencyError: the format needs an extra that is not installed.
    """
    if base is not None:
        return open_with_base(model, base, unsafe_load=unsafe_load)
    if isinstance(model, WeightSource):
        return model
    if is_keras_model(model):  # before torch: Keras layers on the torch backend are nn.Modules
        return KerasModelSource(model)
    torch = loaded("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        return ModuleSource(model)
    if isinstance(model, Mapping):
        return MappingSource(model)
    if isinstance(model, str | os.PathLike):
        path = Path(model)
        with warnings.catch_warnings():  # a reader library's warnings are not ours to print
            warnings.simplefilter("ignore")
            source = _open_path(path, unsafe_load)
        if source.model_config is None:
            source.model_config = read_model_config(path if path.is_dir() else path.parent)
        return source
    raise SourceError(
        f"cannot analyse a {type(model).__name__}: pass a torch.nn.Module, a state_dict or "
        f"{{name: array}} mapping, or a path to a {', '.join(SUPPORTED_SUFFIXES)} file or a "
        "checkpoint folder"
    )


def _open_path(path: Path, unsafe_load: bool) -> WeightSource:
    if not path.exists():
        raise SourceError(f"{path}: no such file or directory")
    if path.is_dir():
        return _open_folder(path, unsafe_load)
    if not path.is_file():  # a FIFO or device would block or never end when read
        raise SourceError(f"{path}: not a regular file (a FIFO, socket or device)")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return SafetensorsSource(path)
    if suffix in _TORCH_SUFFIXES:
        return load_torch_file(path, unsafe_load)
    if suffix == ".npy":
        return NpySource(path)
    if suffix == ".npz":
        return NpzSource(path)
    if suffix == ".onnx":
        return OnnxSource(path)
    if suffix == ".gguf":
        return GGUFSource(path)
    if suffix in _KERAS_SUFFIXES:
        return KerasFileSource(path)
    if path.name.endswith(INDEX_SUFFIX):
        return _open_folder(path.parent, unsafe_load, index=path)
    raise SourceError(
        f"{path}: unknown weight file format {suffix or '(no extension)'!r}; "
        f"supported: {', '.join(SUPPORTED_SUFFIXES)}, or a checkpoint folder"
    )


def _open_folder(folder: Path, unsafe_load: bool, index: Path | None = None) -> WeightSource:
    if index is None and is_adapter_folder(folder):
        return _lora(folder, unsafe_load)
    indexes = sorted(folder.glob(f"*{INDEX_SUFFIX}"))
    if index is None and len(indexes) > 1:
        names = ", ".join(p.name for p in indexes)
        raise SourceError(f"{folder}: several shard indexes ({names}); pass the one to use")
    index = index or (indexes[0] if indexes else None)
    shards = sorted(folder.glob("*.safetensors"), key=lambda p: natural_key(p.name))
    _refuse_escapes(folder, [index] if index is not None else shards)
    if index is not None or len(shards) > 1:
        return ShardedSafetensorsSource(folder, index, shards)
    if shards:
        return SafetensorsSource(shards[0])
    torch_files = sorted(
        (p for s in _TORCH_SUFFIXES for p in folder.glob(f"*{s}")),
        key=lambda p: natural_key(p.name),
    )
    _refuse_escapes(folder, torch_files)
    if len(torch_files) == 1:
        return load_torch_file(torch_files[0], unsafe_load)
    if len(torch_files) > 1:
        return _ConcatenatedSource(folder, [load_torch_file(p, unsafe_load) for p in torch_files])
    raise SourceError(
        f"{folder}: no weights found (looked for *.safetensors, a *{INDEX_SUFFIX}, "
        f"and {', '.join('*' + s for s in _TORCH_SUFFIXES)})"
    )


def _lora(folder: Path, unsafe_load: bool, base: WeightSource | None = None) -> WeightSource:
    """A LoRA adapter folder, its weight file opened as an ordinary checkpoint."""
    adapter = open_source(adapter_weights_file(folder), unsafe_load=unsafe_load)
    return LoraSource(folder, adapter, base)


def _refuse_escapes(folder: Path, paths: list[Path]) -> None:
    """A :class:`SourceError` for a file of ``folder`` that is a symlink to somewhere outside it."""
    for path in paths:
        if path.parent == folder and path_inside(folder, path.name) is None:
            raise SourceError(
                f"{path}: a symlink to a file outside {folder}; refused (pass the target "
                "file itself if you trust it)"
            )


class _ConcatenatedSource(WeightSource):
    """Several state-dict shards (``pytorch_model-00001-of-00002.bin`` …) read as one model."""

    def __init__(self, folder: Path, parts: list[WeightSource]) -> None:
        self.description = str(folder)
        self.files = tuple(f for p in parts for f in p.files)
        self._parts = parts

    def tensors(self):  # type: ignore[no-untyped-def]
        """Tensors of each shard in turn."""
        for part in self._parts:
            yield from part.tensors()


def open_with_base(model: Any, base: Any, *, unsafe_load: bool = False) -> WeightSource:
    """A model read against a base checkpoint.

    A PEFT LoRA adapter folder gives ΔW plus the merged (W + ΔW) and base (W) views of each
    adapted module; any other model gives the fine-tune deltas W − W_base, matched by full name.
    """
    base_source = open_source(base, unsafe_load=unsafe_load)
    if isinstance(model, str | os.PathLike) and is_adapter_folder(Path(model)):
        return _lora(Path(model), unsafe_load, base_source)
    return DeltaSource(open_source(model, unsafe_load=unsafe_load), base_source)


@dataclass(frozen=True)
class SourceSpec:
    """How another process opens the same model: ``open_source(path, **options)``.

    A model named by path (absolute, so a worker with another working directory finds it) plus
    the keyword arguments of :func:`open_source`; no weights travel with it. A worker opens it
    (reading headers only) and reads just the tensors its tasks name.

    Attributes:
        path: absolute path of the model file or checkpoint folder.
        options: keyword arguments of ``open_source`` as sorted (name, value) pairs.
    """

    path: str
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, model: Any, **options: Any) -> SourceSpec | None:
        """The spec of a path-like ``model``; None for in-memory models."""
        if not isinstance(model, str | os.PathLike):
            return None
        return cls(str(Path(model).resolve()), tuple(sorted(options.items())))

    def open(self) -> WeightSource:
        """Open the source (headers only)."""
        return open_source(self.path, **dict(self.options))
