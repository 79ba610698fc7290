"""In-memory mappings of arrays or tensors, and NumPy ``.npy``/``.npz`` files (never unpickled)."""

from __future__ import annotations

import math
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from alphahat._imports import loaded
from alphahat.errors import SourceError
from alphahat.sources.base import TensorRef, WeightSource

Loader = Callable[[], npt.NDArray[np.generic]]


def is_torch_tensor(value: object) -> bool:
    """True for a ``torch.Tensor`` (without importing torch)."""
    torch = loaded("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def torch_dtype_name(tensor: Any) -> str:
    """``torch.bfloat16`` → ``bfloat16``."""
    return str(tensor.dtype).removeprefix("torch.")


def torch_to_numpy(tensor: Any) -> npt.NDArray[np.generic]:
    """A detached CPU copy as numpy; bfloat16 and float8 (numpy lacks them) become float32."""
    t = tensor.detach()
    if t.device.type != "cpu":
        t = t.to("cpu")
    if str(t.dtype) in ("torch.bfloat16", "torch.float8_e4m3fn", "torch.float8_e5m2"):
        t = t.float()
    result: npt.NDArray[np.generic] = t.numpy()
    return result


def ref_from_value(name: str, value: Any, origin: str, module_kind: str | None = None) -> TensorRef:
    """A :class:`TensorRef` for an in-memory numpy array or torch tensor."""
    if is_torch_tensor(value):
        return TensorRef(
            name=name,
            shape=tuple(int(d) for d in value.shape),
            dtype=torch_dtype_name(value),
            load=lambda: torch_to_numpy(value),
            module_kind=module_kind,
            origin=origin,
        )
    array = np.asarray(value) if isinstance(value, np.ndarray | np.generic) else None
    if array is None:
        reason = f"not a tensor ({type(value).__name__})"
        return TensorRef(
            name, (), type(value).__name__, _raiser(name, reason), None, origin, skip_reason=reason
        )
    return TensorRef(name, array.shape, array.dtype.name, lambda: array, module_kind, origin)


def _raiser(name: str, reason: str) -> Loader:
    def load() -> npt.NDArray[np.generic]:
        raise SourceError(f"{name}: {reason}")

    return load


def _storage_key(value: Any) -> tuple[object, ...] | None:
    """Identity of a tensor's memory (same buffer, shape, strides and dtype), or None."""
    if is_torch_tensor(value):
        if value.numel() == 0:
            return None
        return ("torch", value.data_ptr(), tuple(value.shape), tuple(value.stride()), value.dtype)
    if isinstance(value, np.ndarray) and value.size:
        address = value.__array_interface__["data"][0]
        return ("numpy", address, value.shape, value.strides, value.dtype)
    return None


def mark_tied(pairs: Iterable[tuple[TensorRef, Any]]) -> list[TensorRef]:
    """Refs in order; a tensor sharing its memory with an earlier one is marked as tied to it."""
    seen: dict[tuple[object, ...], str] = {}
    refs: list[TensorRef] = []
    for ref, value in pairs:
        key = _storage_key(value)
        if key is not None and key in seen:
            ref = replace(ref, skip_reason=f"tied to {seen[key]} (the same weights, analysed once)")
        elif key is not None:
            seen[key] = ref.name
        refs.append(ref)
    return refs


def flatten_mapping(mapping: Mapping[Any, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted name, leaf) pairs of a nested mapping, in insertion order."""
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from flatten_mapping(value, prefix=f"{name}.")
        else:
            yield name, value


def unwrap_checkpoint(mapping: Mapping[Any, Any]) -> Mapping[Any, Any]:
    """The state dict inside a training checkpoint (``{'state_dict': …, 'epoch': 3}``)."""
    for key in ("state_dict", "model_state_dict", "model"):
        inner = mapping.get(key)
        if isinstance(inner, Mapping) and inner:
            return inner
    return mapping


class MappingSource(WeightSource):
    """A ``{name: array or tensor}`` mapping, e.g. a PyTorch ``state_dict`` (insertion order)."""

    def __init__(self, mapping: Mapping[Any, Any], description: str = "state_dict") -> None:
        self.description = description
        self._refs = mark_tied(
            (ref_from_value(name, value, description), value)
            for name, value in flatten_mapping(unwrap_checkpoint(mapping))
        )

    def tensors(self) -> Iterator[TensorRef]:
        """Tensors in insertion order."""
        return iter(self._refs)


class NpySource(WeightSource):
    """A single ``.npy`` array (memory-mapped; the tensor is named after the file)."""

    def __init__(self, path: Path) -> None:
        self.files = (path,)
        self.description = str(path)
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            if "allow_pickle" in str(exc):
                raise SourceError(
                    f"{path}: holds Python objects, which would need unpickling; refused"
                ) from exc
            raise SourceError(f"{path}: not a valid .npy file ({exc})") from exc
        except (OSError, EOFError) as exc:
            raise SourceError(f"{path}: not a valid .npy file ({exc or 'empty'})") from exc
        self._ref = TensorRef(
            path.stem, array.shape, array.dtype.name, lambda: array, None, str(path)
        )

    def tensors(self) -> Iterator[TensorRef]:
        """The one array."""
        return iter([self._ref])


def _member_problem(shape: tuple[int, ...], dtype: np.dtype[Any], available: int) -> str | None:
    """Why an ``.npz`` member's header cannot be right, checked before anything is allocated.

    numpy would allocate the whole declared array before reading a member, so a forged header
    claiming terabytes is refused here by comparing with the member's stored size.
    """
    if any(d < 0 for d in shape):
        return f"invalid shape {shape} in the member header"
    if dtype.hasobject:
        return "holds Python objects, which would need unpickling; refused"
    needed = math.prod(shape) * dtype.itemsize
    if needed > available:
        return (
            f"member header claims {needed} bytes of data but the member holds {available} "
            "(truncated or forged)"
        )
    return None


class NpzSource(WeightSource):
    """A ``.npz`` archive; each member is read only when its layer is analysed."""

    def __init__(self, path: Path) -> None:
        self.files = (path,)
        self.description = str(path)
        self.path = path
        try:
            self._archive = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise SourceError(f"{path}: not a valid .npz file ({exc})") from exc
        if not hasattr(self._archive, "files"):
            raise SourceError(f"{path}: not an .npz archive")
        self._refs = [self._ref(name) for name in self._archive.files]

    def _ref(self, name: str) -> TensorRef:
        try:
            info = self._archive.zip.getinfo(f"{name}.npy")
            with self._archive.zip.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = read_header(member)
                header_size = member.tell()
        except (
            KeyError,
            ValueError,
            OSError,
            EOFError,
            zlib.error,
            zipfile.BadZipFile,
            NotImplementedError,  # an unsupported compression method
        ) as exc:
            unreadable = f"unreadable member ({exc or type(exc).__name__})"
            return TensorRef(
                name, (), "unknown", _raiser(name, unreadable), None, str(self.path), unreadable
            )
        problem = _member_problem(tuple(shape), np.dtype(dtype), info.file_size - header_size)
        if problem is not None:
            return TensorRef(
                name,
                tuple(d if d >= 0 else 0 for d in shape),
                np.dtype(dtype).name,
                _raiser(name, problem),
                None,
                str(self.path),
                problem,
            )

        def load() -> npt.NDArray[np.generic]:
            try:
                value: npt.NDArray[np.generic] = self._archive[name]
            except (ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
                if "allow_pickle" in str(exc):
                    reason = "holds Python objects, which would need unpickling; refused"
                else:
                    reason = str(exc) or type(exc).__name__
                raise SourceError(f"{self.path}: member {name!r}: {reason}") from exc
            return value

        return TensorRef(name, tuple(shape), np.dtype(dtype).name, load, None, str(self.path))

    def tensors(self) -> Iterator[TensorRef]:
        """Members in archive order."""
        return iter(self._refs)

    def close(self) -> None:
        """Close the archive."""
        self._archive.close()
