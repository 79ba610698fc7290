"""PyTorch: a live ``nn.Module`` and ``.pt/.bin/.pth`` state-dict files (safe loading only)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alphahat._imports import require
from alphahat.errors import SourceError
from alphahat.sources.arrays import MappingSource, ref_from_value
from alphahat.sources.base import TensorRef, WeightSource

#: module class name → layer kind; subclasses are matched through their MRO
_MODULE_KINDS = {
    "Linear": "linear",
    "LazyLinear": "linear",
    "Bilinear": "linear",
    "Conv1D": "linear",  # Hugging Face GPT-2 style: a linear layer stored as (in, out)
    "Conv1d": "conv1d",
    "Conv2d": "conv2d",
    "Conv3d": "conv3d",
    "ConvTranspose1d": "conv1d",
    "ConvTranspose2d": "conv2d",
    "ConvTranspose3d": "conv3d",
    "Embedding": "embedding",
    "EmbeddingBag": "embedding",
}


def module_kind(module: Any) -> str | None:
    """Layer kind of a module from its class (or its bases), None for other modules."""
    for cls in type(module).__mro__:
        kind = _MODULE_KINDS.get(cls.__name__)
        if kind is not None:
            return kind
    return None


class ModuleSource(WeightSource):
    """A live ``torch.nn.Module``: its parameters (tied ones once) and buffers, in model order.

    The model is never modified: tensors are detached and copied when read.
    """

    def __init__(self, model: Any) -> None:
        self.description = type(model).__name__
        modules = dict(model.named_modules())
        refs: list[TensorRef] = []
        for name, param in model.named_parameters():
            owner, _, attr = name.rpartition(".")
            kind = module_kind(modules.get(owner)) if attr == "weight" else None
            refs.append(ref_from_value(name, param, self.description, module_kind=kind))
        for name, buffer in model.named_buffers():
            refs.append(ref_from_value(name, buffer, self.description))
        self._refs = refs

    def tensors(self) -> Iterator[TensorRef]:
        """Parameters in registration order, then buffers."""
        return iter(self._refs)


def load_torch_file(path: Path, unsafe_load: bool = False) -> WeightSource:
    """A ``.pt/.bin/.pth`` file, loaded with ``weights_only=True`` unless ``unsafe_load``."""
    torch = require("torch", f"reading {path.name}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not unsafe_load, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise SourceError(f"{path}: not a readable PyTorch file ({_first_line(exc)})") from exc
        obj = _load_without_mmap(torch, path, unsafe_load)
    except Exception as exc:  # torch raises many types for bad pickles
        raise _load_error(path, exc, unsafe_load) from exc
    if isinstance(obj, torch.nn.Module):
        source: WeightSource = ModuleSource(obj)
    elif isinstance(obj, dict):
        source = MappingSource(obj, description=str(path))
    elif isinstance(obj, torch.Tensor):
        source = MappingSource({path.stem: obj}, description=str(path))
    else:
        raise SourceError(
            f"{path}: holds a {type(obj).__name__}, not a state_dict, tensor or nn.Module"
        )
    source.files = (path,)
    source.description = str(path)
    return source


def _load_without_mmap(torch: Any, path: Path, unsafe_load: bool) -> Any:
    """Legacy (non-zip) files cannot be memory-mapped."""
    try:
        return torch.load(path, map_location="cpu", weights_only=not unsafe_load)
    except Exception as exc:
        raise _load_error(path, exc, unsafe_load) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _load_error(path: Path, exc: BaseException, unsafe_load: bool) -> SourceError:
    text = str(exc)
    # torch wraps every unpickling error of a weights_only load; only a forbidden global
    # means the file needs a full (code-running) unpickle — anything else is a corrupt file.
    if not unsafe_load and ("Unsupported global" in text or "not an allowed global" in text):
        return SourceError(
            f"{path}: refused: loading it needs a full unpickle, which can run arbitrary code. "
            "If you trust this file, pass --unsafe-load (Python: unsafe_load=True)."
        )
    return SourceError(f"{path}: not a readable PyTorch file ({_first_line(exc)})")
