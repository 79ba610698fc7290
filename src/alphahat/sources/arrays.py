"""In-memory mappings of arrays or tensors, and NumPy ``.npy``/``.npz`` files (never unpickled)."""

from __future__ import annotations

import math
import os
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
from alphahat.sources.base import TensorRef, WeightSource, one_line, open_regular_file

Loader = Callable[[], npt.NDArray[np.generic]]


def is_torch_tensor(value: object) -> bool:
    """True for a ``torch.Tensor`` (without importing torch)."""
    torch = loaded("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def torch_dtype_name(tensor: Any) -> str:
    """``torch.bfloat16`` → ``bfloat16``."""
    return str(tensor.dtype).removeprefix("torch.")


def torch_device_name(tensor: Any) -> str:
    """Where a torch tensor is, as a device string: ``cpu``, ``cuda:0``, ``mps``."""
    device = tensor.device
    return device.type if device.index is None else f"{device.type}:{device.index}"


def torch_to_numpy(tensor: Any) -> npt.NDArray[np.generic]:
    """A detached CPU copy as numpy; bfloat16 and float8 (numpy lacks them) become float32."""
    t = tensor.detach()
    if t.device.type != "cpu":
        t = t.to("cpu")
    if str(t.dtype) in ("torch.bfloat16", "torch.float8_e4m3fn", "torch.float8_e5m2"):
        t = t.float()
    result: npt.NDArray[np.generic] = t.numpy()
    return result


class TorchTensorLoader:
    """The loader of an in-memory torch tensor: calling it gives a host copy (numpy).

    ``tensor`` is the tensor itself, where the framework holds it: a spectrum backend that
    computes with torch on that device reads it there (:func:`alphahat.pipeline.walk.load_layer`
    with a device), without the trip through host memory. A ref derived from another one
    (a part of a fused weight, a kernel slice, dequantized values) gets a loader of its own,
    so only a tensor read as stored is ever taken on its device.
    """

    __slots__ = ("tensor",)

    def __init__(self, tensor: Any) -> None:
        self.tensor = tensor

    def __call__(self) -> npt.NDArray[np.generic]:
        """A detached host copy (:func:`torch_to_numpy`)."""
        return torch_to_numpy(self.tensor)


def ref_from_value(name: str, value: Any, origin: str, module_kind: str | None = None) -> TensorRef:
    """A :class:`TensorRef` for an in-memory numpy array or torch tensor."""
    if is_torch_tensor(value):
        return TensorRef(
            name=name,
            shape=tuple(int(d) for d in value.shape),
            dtype=torch_dtype_name(value),
            load=TorchTensorLoader(value),
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

    in_build_order = True

    def __init__(self, mapping: Mapping[Any, Any], description: str = "state_dict") -> None:
        self.description = description
        self._refs = mark_tied(
            (ref_from_value(name, value, description), value)
            for name, value in flatten_mapping(unwrap_checkpoint(mapping))
        )

    def tensors(self) -> Iterator[TensorRef]:
        """Tensors in insertion order."""
        return iter(self._refs)


#: largest ``.npy`` header read (numpy's own default limit of ``np.load``)
MAX_NPY_HEADER = 10_000
_NPY_MAGIC = b"\x93NUMPY"


def npy_header_problem(head: bytes, available: int) -> str | None:
    """Why an ``.npy`` stream whose first 12 bytes are ``head`` cannot be right, or None.

    numpy reads the declared header length before checking it (a 4 GiB read for a forged
    length of 2³²−1), so the length is checked here against :data:`MAX_NPY_HEADER` and the
    ``available`` bytes of the stream first.
    """
    if len(head) < 10 or not head.startswith(_NPY_MAGIC):
        return "no .npy magic"
    major = head[6]
    if major == 1:
        length, start = int.from_bytes(head[8:10], "little"), 10
    elif major in (2, 3) and len(head) >= 12:
        length, start = int.from_bytes(head[8:12], "little"), 12
    else:
        return f"unknown .npy format version {major}"
    if length > MAX_NPY_HEADER or start + length > available:
        return (
            f"header claims {length} bytes (at most {MAX_NPY_HEADER}, and {available - start} "
            "left in the stream)"
        )
    return None


class NpySource(WeightSource):
    """A single ``.npy`` array (memory-mapped; the tensor is named after the file)."""

    def __init__(self, path: Path) -> None:
        self.files = (path,)
        self.description = str(path)
        try:
            with open_regular_file(path) as handle:
                head = handle.read(12)
                size = os.fstat(handle.fileno()).st_size
        except OSError as exc:
            raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        problem = npy_header_problem(head, size)
        if problem is not None:
            raise SourceError(f"{path}: not a valid .npy file ({problem})")
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            if "allow_pickle" in str(exc):
                raise SourceError(
                    f"{path}: holds Python objects, which would need unpickling; refused"
                ) from exc
            raise SourceError(f"{path}: not a valid .npy file ({one_line(exc)})") from exc
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


#: deflate's largest compression ratio (258-byte matches in 2-bit codes: about 1032:1)
MAX_DEFLATE_RATIO = 1032
#: bytes read from a compressed member at a time (the array is filled in place)
_CHUNK = 1 << 20
_Error = (KeyError, ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile,
          NotImplementedError, RuntimeError)  # fmt: skip


def zip_member_problem(info: zipfile.ZipInfo, archive_size: int) -> str | None:
    """Why a zip directory entry cannot be right, checked before anything is decompressed.

    The stored bytes must lie inside the archive, and the claimed size must fit what they can
    hold: the same bytes when stored, at most :data:`MAX_DEFLATE_RATIO` times more when
    deflated (a larger claim is forged; a smaller compression method is not read).
    """
    if info.flag_bits & 0x1:
        return "an encrypted member"
    if info.header_offset + info.compress_size > archive_size:
        return (
            f"the zip directory claims {info.compress_size} compressed bytes at offset "
            f"{info.header_offset}; the archive has {archive_size}"
        )
    if info.compress_type == zipfile.ZIP_STORED:
        if info.file_size != info.compress_size:
            return (
                f"a stored member claiming {info.file_size} bytes in {info.compress_size} (forged)"
            )
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        if info.file_size > MAX_DEFLATE_RATIO * info.compress_size + 1024:
            return (
                f"the zip directory claims {info.file_size} bytes from {info.compress_size} "
                f"compressed bytes; deflate cannot expand more than {MAX_DEFLATE_RATIO}× (forged)"
            )
    else:
        return f"zip compression method {info.compress_type} (only stored and deflate are read)"
    return None


def _fill_from_stream(stream: Any, array: npt.NDArray[np.generic]) -> None:
    """Fill ``array``'s bytes from ``stream`` chunk by chunk (no second copy of the data)."""
    target = memoryview(array.reshape(-1, order="A")).cast("B")  # type: ignore[arg-type]
    done = 0
    while done < len(target):
        chunk = stream.read(min(_CHUNK, len(target) - done))
        if not chunk:
            raise EOFError(f"the data ends after {done} of {len(target)} bytes")
        target[done : done + len(chunk)] = chunk
        done += len(chunk)


class NpzSource(WeightSource):
    """A ``.npz`` archive; each member is read only when its layer is analysed.

    Every member's zip directory entry and ``.npy`` header are checked against the bytes that
    exist before anything is allocated (:func:`zip_member_problem`, :func:`npy_header_problem`);
    a member is decompressed straight into its array, so reading it takes one array's memory.
    """

    def __init__(self, path: Path) -> None:
        self.files = (path,)
        self.description = str(path)
        self.path = path
        try:
            self._archive = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise SourceError(f"{path}: not a valid .npz file ({one_line(exc)})") from exc
        if not hasattr(self._archive, "files"):
            raise SourceError(f"{path}: not an .npz archive")
        self._size = path.stat().st_size
        self._refs = [self._ref(name) for name in self._archive.files]

    def _failed(
        self, name: str, problem: str, shape: tuple[int, ...] = (), dtype: str = "unknown"
    ) -> TensorRef:
        return TensorRef(name, shape, dtype, _raiser(name, problem), None, str(self.path), problem)

    def _ref(self, name: str) -> TensorRef:
        zip_file = self._archive.zip
        try:
            info = zip_file.getinfo(f"{name}.npy")
            problem = zip_member_problem(info, self._size)
            if problem is None:
                with zip_file.open(info) as member:
                    problem = npy_header_problem(member.read(12), info.file_size)
            if problem is not None:
                return self._failed(name, problem)
            with zip_file.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, fortran, dtype = read_header(member)
                header_size = member.tell()
        except _Error as exc:
            return self._failed(name, f"unreadable member ({one_line(exc)})")
        dtype = np.dtype(dtype)
        problem = _member_problem(tuple(shape), dtype, info.file_size - header_size)
        if problem is not None:
            return self._failed(name, problem, tuple(max(d, 0) for d in shape), dtype.name)

        def load() -> npt.NDArray[np.generic]:
            array = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
            try:
                with zip_file.open(info) as member:
                    member.read(header_size)
                    _fill_from_stream(member, array)
                    member.read(1)  # the end of the stream: the CRC is checked
            except _Error as exc:
                raise SourceError(f"{self.path}: member {name!r}: {one_line(exc)}") from exc
            return array

        return TensorRef(name, tuple(shape), dtype.name, load, None, str(self.path))

    def tensors(self) -> Iterator[TensorRef]:
        """Members in archive order."""
        return iter(self._refs)

    def close(self) -> None:
        """Close the archive."""
        self._archive.close()
