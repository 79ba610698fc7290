"""PyTorch: a live ``nn.Module`` and ``.pt/.bin/.pth`` state-dict files (safe loading only)."""

from __future__ import annotations

import io
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

    in_build_order = True

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
    """A ``.pt/.bin/.pth`` file, loaded with ``weights_only=True`` unless ``unsafe_load``.

    Reached through :func:`alphahat.sources.open_source`, which keeps torch's warnings (as any
    reader library's) from the user.
    """
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
            raise _load_error(path, exc, unsafe_load) from exc
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


_ZIP_MAGIC = b"PK\x03\x04"
#: how much of a pickle is read to name what it holds (never unpickled: only scanned)
_SCAN_BYTES = 64 << 20
#: globals a weights-only state dict is made of (the rest is what the refusal names)
_WEIGHT_GLOBALS = re.compile(r"^(torch(\..*)?|collections|_codecs|numpy(\..*)?)\.")


def _load_error(path: Path, exc: BaseException, unsafe_load: bool) -> SourceError:
    """The error of a ``torch.load`` that failed, in our words (torch's advice left out)."""
    text = str(exc)
    head = _file_head(path, 32)
    # torch wraps every unpickling error of a weights_only load; a global or instruction the
    # weights-only reader refuses means the file needs a full (code-running) unpickle
    weights_only = "Weights only load failed" in text
    scanned = pickle_globals(path) if weights_only else []
    found = [g for g in scanned if not _WEIGHT_GLOBALS.match(g)]
    if not unsafe_load and (found or (weights_only and "global" in text.lower())):
        shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        what = "objects that are not tensors" + (f" ({shown})" if found else "")
        return SourceError(
            f"{path}: refused: it holds {what}, and loading it could run code from the file; "
            "pass --unsafe-load (Python: unsafe_load=True) only if you trust this file."
        )
    if not head.startswith(_ZIP_MAGIC) and not head.startswith(b"\x80"):
        return SourceError(
            f"{path}: not a PyTorch file: neither a zip checkpoint nor a pickle; it starts "
            f"with {head[:24]!r}"
        )
    kind = "zip checkpoint" if head.startswith(_ZIP_MAGIC) else "pickle"
    if weights_only:  # torch's text is advice about torch.load: say what is wrong instead
        opcode = re.search(r"Unsupported operand (\d+)", text)
        detail = f"pickle opcode {opcode.group(1)} is not allowed" if opcode else "not weights"
    else:
        detail = first_line(exc)
    return SourceError(f"{path}: a damaged or unreadable PyTorch {kind} ({detail})")


def _file_head(path: Path, size: int) -> bytes:
    try:
        with open_regular_file(path) as handle:
            return handle.read(size)
    except (OSError, SourceError):
        return b""


def pickle_globals(path: Path) -> list[str]:
    """The ``module.name`` globals the pickle of a ``.pt`` file refers to, without running it.

    The pickle (``*/data.pkl`` of a zip checkpoint, or the file itself) is scanned with
    :func:`pickletools.genops` (no object is built): ``GLOBAL`` arguments, and the two strings
    before each ``STACK_GLOBAL``. At most the first 64 MiB are read. Empty when unreadable.
    """
    import zipfile

    try:
        with open_regular_file(path) as handle:
            if handle.read(4) == _ZIP_MAGIC:
                with zipfile.ZipFile(handle) as archive:
                    members = [m for m in archive.infolist() if m.filename.endswith("data.pkl")]
                    if not members:
                        return []
                    with archive.open(members[0]) as member:
                        data = member.read(_SCAN_BYTES)
            else:
                handle.seek(0)
                data = handle.read(_SCAN_BYTES)
    except (OSError, SourceError, zipfile.BadZipFile, RuntimeError):
        return []
    found: dict[str, None] = {}
    stream = io.BytesIO(data)
    for _ in range(8):  # a legacy file is several pickles in a row (magic, info, data…)
        if not _scan_one_pickle(stream, found):
            break
    return list(found)


def _scan_one_pickle(stream: io.BytesIO, found: dict[str, None]) -> bool:
    """Add the globals of the next pickle in ``stream`` to ``found``; False at junk or end."""
    import pickletools

    strings: list[str] = []  # the strings pushed, in order (a STACK_GLOBAL takes the last two)
    memo: dict[int, str] = {}
    top_is_string = False
    try:
        for opcode, arg, _ in pickletools.genops(stream):
            name = opcode.name
            pushed_string = False
            if name == "GLOBAL" and isinstance(arg, str):
                found[arg.replace(" ", ".", 1)] = None
            elif name == "STACK_GLOBAL" and len(strings) >= 2:
                found[f"{strings[-2]}.{strings[-1]}"] = None
            elif isinstance(arg, str) and ("UNICODE" in name or name.endswith("STRING")):
                strings.append(arg)
                pushed_string = True
            elif name == "MEMOIZE" and top_is_string:
                memo[len(memo)] = strings[-1]
                pushed_string = True
            elif name in ("BINPUT", "LONG_BINPUT", "PUT") and top_is_string:
                memo[int(arg or 0)] = strings[-1]
                pushed_string = True
            elif name in ("BINGET", "LONG_BINGET", "GET") and isinstance(arg, int) and arg in memo:
                strings.append(memo[arg])
                pushed_string = True
            top_is_string = pushed_string
    except (ValueError, EOFError, KeyError, TypeError):  # the end of what was read, or junk
        return False
    return True
