"""PyTorch: a live ``nn.Module`` and ``.pt/.bin/.pth`` state-dict files (safe loading only)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alphahat._imports import require
from alphahat.errors import SourceError
from alphahat.sources.arrays import MappingSource, mark_tied, ref_from_value
from alphahat.sources.base import TensorRef, WeightSource, first_line, open_regular_file

#: module class name → layer kind; subclasses are matched through their MRO
_MODULE_KINDS = {
    "Linear": "linear",
    "LazyLinear": "linear",
    "Bilinear": "bilinear",  # (out, in1, in2): one in1 × in2 matrix per output
    "Conv1D": "linear",  # Hugging Face GPT-2 style: a linear layer stored as (in, out)
    "Conv1d": "conv1d",
    "Conv2d": "conv2d",
    "Conv3d": "conv3d",
    "ConvTranspose1d": "conv1d",
    "ConvTranspose2d": "conv2d",
    "ConvTranspose3d": "conv3d",
    "Embedding": "embedding",
    "EmbeddingBag": "embedding",
    "RNN": "rnn",
    "LSTM": "rnn",
    "GRU": "rnn",
    "RNNCell": "rnn",
    "LSTMCell": "rnn",
    "GRUCell": "rnn",
    "MultiheadAttention": "linear",  # in_proj_weight (3·E, E), or q/k/v_proj_weight
}
#: parameter names (besides ``weight``) that are weight matrices of their module
_MATRIX_ATTRS = re.compile(
    r"^(weight|in_proj_weight|[qkv]_proj_weight|weight_(ih|hh)(_l\d+)?(_reverse)?)$"
)


def module_kind(module: Any) -> str | None:
    """Layer kind of a module from its class (or its bases), None for other modules."""
    for cls in type(module).__mro__:
        kind = _MODULE_KINDS.get(cls.__name__)
        if kind is not None:
            return kind
    return None


class ModuleSource(WeightSource):
    """A live ``torch.nn.Module``: its parameters and buffers, tied ones listed but analysed once.

    Every name of ``named_parameters(remove_duplicate=False)`` is listed, so the coverage
    matches the module's ``state_dict``; a parameter shared by several modules is analysed
    under its first name (registration order) and its other names say ``tied to …``. The
    model is never modified: tensors are detached and copied when read.
    """

    def __init__(self, model: Any) -> None:
        self.description = type(model).__name__
        modules = dict(model.named_modules(remove_duplicate=False))
        pairs = []
        for name, param in model.named_parameters(remove_duplicate=False):
            owner, _, attr = name.rpartition(".")
            kind = module_kind(modules.get(owner)) if _MATRIX_ATTRS.match(attr) else None
            pairs.append((ref_from_value(name, param, self.description, module_kind=kind), param))
        for name, buffer in model.named_buffers(remove_duplicate=False):
            pairs.append((ref_from_value(name, buffer, self.description), buffer))
        self._refs = mark_tied(pairs)

    def tensors(self) -> Iterator[TensorRef]:
        """Parameters in registration order, then buffers."""
        return iter(self._refs)


#: oldest torch whose ``torch.load(weights_only=True)`` has no known code-execution bypass
MIN_SAFE_TORCH = (2, 6)


def safe_loader_available(version: str) -> bool:
    """Whether torch ``version`` (``2.13.0+cpu``) is at least :data:`MIN_SAFE_TORCH`."""
    numbers = re.findall(r"\d+", version)[:2]
    if len(numbers) < 2:
        return False
    return (int(numbers[0]), int(numbers[1])) >= MIN_SAFE_TORCH


def load_torch_file(path: Path, unsafe_load: bool = False) -> WeightSource:
    """A ``.pt/.bin/.pth`` file, loaded with ``weights_only=True`` unless ``unsafe_load``."""
    open_regular_file(path).close()  # a FIFO or device would block torch.load
    torch = require("torch", f"reading {path.name}")
    if not unsafe_load and not safe_loader_available(str(torch.__version__)):
        raise SourceError(
            f"{path}: refused: torch {torch.__version__} is older than "
            f"{'.'.join(map(str, MIN_SAFE_TORCH))}, whose weights_only loading can run code "
            "from the file (CVE-2025-32434); upgrade torch, or pass --unsafe-load (Python: "
            "unsafe_load=True) if you trust this file."
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not unsafe_load, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise SourceError(f"{path}: not a readable PyTorch file ({first_line(exc)})") from exc
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


def _load_error(path: Path, exc: BaseException, unsafe_load: bool) -> SourceError:
    text = str(exc)
    # torch wraps every unpickling error of a weights_only load; only a forbidden global
    # means the file needs a full (code-running) unpickle — anything else is a corrupt file.
    if not unsafe_load and ("Unsupported global" in text or "not an allowed global" in text):
        return SourceError(
            f"{path}: refused: loading it needs a full unpickle, which can run arbitrary code. "
            "If you trust this file, pass --unsafe-load (Python: unsafe_load=True)."
        )
    return SourceError(f"{path}: not a readable PyTorch file ({first_line(exc)})")
