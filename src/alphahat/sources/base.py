"""What every source yields: :class:`TensorRef` — a tensor known from headers, loaded on demand."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

#: Floating dtypes whose values are weights (names as numpy / safetensors spell them).
FLOAT_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64"})


@dataclass(frozen=True)
class TensorRef:
    """One tensor of a model, described from metadata; ``load()`` reads its values.

    Attributes:
        name: full dotted name (``encoder.layer.0.attention.self.query.weight``), plus a
            bracketed part for a sub-matrix (``… [q]``, ``… [expert 3]``, ``… [delta]``).
        shape: shape in the PyTorch layout, (out, in, kernel…) for a weight: sources of other
            layouts (Keras kernels, ONNX MatMul (in, out)) permute and say so in ``note``.
        dtype: dtype name of what ``load()`` returns before widening (``float32``,
            ``bfloat16``, ``int64``, …); ``note`` says when values were dequantized.
        module_kind: layer kind known from the framework module that owns the tensor
            (``linear``, ``conv2d``, ``embedding``, …), or None when only the tensor is known.
        origin: where it comes from (a file path, or a description of an in-memory object).
        problem: set when the metadata already shows the tensor cannot be read (the reason).
        skip_reason: set when the entry is not to be analysed (not a tensor, or tied to an
            earlier tensor); it is listed with this reason and gets no layer id.
        note: how the values were derived when not read as stored (``dequantized from
            Q4_K``, ``transposed from (in, out)``, ``ΔW = (α/r)·B·A``), shown in reports.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    load: Callable[[], npt.NDArray[np.generic]] = field(repr=False, compare=False)
    module_kind: str | None = None
    origin: str = ""
    problem: str | None = None
    skip_reason: str | None = None
    note: str = ""

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    @property
    def numel(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)


class WeightSource:
    """A model's tensors, enumerated from metadata and read one at a time.

    Subclasses implement :meth:`tensors`; ``files`` lists the files read (for provenance).
    """

    description: str = ""
    files: Sequence[Path] = ()

    def tensors(self) -> Iterator[TensorRef]:
        """Tensors in model order (the source's own order where it has one)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release file handles (no-op by default)."""

    def __enter__(self) -> WeightSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key putting ``layer.2`` before ``layer.10`` (numbers compared as numbers)."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in _DIGITS.split(name) if p)


def bfloat16_to_float32(raw: npt.NDArray[np.uint16]) -> npt.NDArray[np.float32]:
    """Exact bfloat16 → float32: the 16 bits are the high half of a float32."""
    return (raw.astype(np.uint32) << 16).view(np.float32)


def file_sha256(path: str | Path, *, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (constant memory)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
