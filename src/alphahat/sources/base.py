"""What every source yields: :class:`TensorRef` — a tensor known from headers, loaded on demand."""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from alphahat.errors import SourceError

#: Floating dtypes whose values are weights (names as numpy / safetensors spell them).
FLOAT8_DTYPES = frozenset({"float8_e4m3fn", "float8_e5m2"})
FLOAT_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64"}) | FLOAT8_DTYPES


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


class RowReader:
    """A tensor's ``load()`` that can also read a range of its first axis alone.

    ``read(start, stop)`` must return ``values[start:stop]`` reading only those rows' bytes;
    calling the object reads the whole tensor. Part loaders (one MoE expert of a packed
    ``[experts, out, in]`` tensor, the q block of a fused ``(3·d, d)`` projection) use
    :func:`read_rows`, so a part costs its own bytes and memory, not the whole tensor's. A
    ``load`` replaced by another function (dequantized, transposed, a LoRA delta) is no longer a
    ``RowReader``, so a derived tensor is never sliced from its raw bytes.
    """

    __slots__ = ("_read", "length")

    def __init__(self, read: Callable[[int, int], npt.NDArray[np.generic]], length: int) -> None:
        self._read = read
        self.length = length

    def __call__(self) -> npt.NDArray[np.generic]:
        """The whole tensor."""
        return self._read(0, self.length)

    def rows(self, start: int, stop: int) -> npt.NDArray[np.generic]:
        """``values[start:stop]`` along the first axis (0 ≤ start ≤ stop ≤ length)."""
        if not 0 <= start <= stop <= self.length:
            raise ValueError(f"rows [{start}, {stop}) outside a first axis of {self.length}")
        return self._read(start, stop)


def read_rows(
    load: Callable[[], npt.NDArray[np.generic]], start: int, stop: int
) -> npt.NDArray[np.generic]:
    """``load()[start:stop]``, reading only those rows when ``load`` is a :class:`RowReader`."""
    if isinstance(load, RowReader):
        return load.rows(start, stop)
    return load()[start:stop]


class WeightSource:
    """A model's tensors, enumerated from metadata and read one at a time.

    Subclasses implement :meth:`tensors`; ``files`` lists the files read (for provenance).
    """

    description: str = ""
    files: Sequence[Path] = ()
    #: The checkpoint's Hugging Face ``config.json`` (parsed), when one lies beside the weights.
    model_config: Mapping[str, Any] | None = None
    #: Whether :meth:`tensors` follows the order the model was built in (a live module's
    #: registration order, a state dict's keys), which ``intra=True`` pairs layers by; else
    #: layers pair in natural name order.
    in_build_order: bool = False

    def tensors(self) -> Iterator[TensorRef]:
        """Tensors in model order (the source's own order where it has one)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release file handles (no-op by default)."""

    def __enter__(self) -> WeightSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_DIGITS = re.compile(r"([0-9]+)")


def natural_key(name: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key putting ``layer.2`` before ``layer.10`` (numbers compared as numbers).

    A run of ASCII digits compares by its value, as (number of digits without leading zeros,
    digits): no int() of an arbitrarily long or non-ASCII digit string from a file.
    """
    parts = []
    for part in _DIGITS.split(name):
        if not part:
            continue
        if part.isascii() and part.isdigit():
            value = part.lstrip("0")
            parts.append((0, len(value), value))
        else:
            parts.append((1, 0, part))
    return tuple(parts)


def bfloat16_to_float32(raw: npt.NDArray[np.uint16]) -> npt.NDArray[np.float32]:
    """Exact bfloat16 → float32: the 16 bits are the high half of a float32."""
    wide = raw.astype(np.uint32)
    wide <<= 16  # in place: no third copy of a large tensor
    return wide.view(np.float32)


def _float8_table(
    exponent_bits: int, mantissa_bits: int, *, finite_only: bool
) -> npt.NDArray[np.float32]:
    """The float32 value of each of the 256 float8 codes (sign, exponent, mantissa bits).

    Exponent bias 2^(e−1) − 1; exponent 0 is subnormal (m · 2^(1−bias−mbits)). With
    ``finite_only`` (E4M3FN) only the all-ones code is NaN and there is no infinity;
    otherwise (E5M2) the all-ones exponent is ±inf (m = 0) or NaN, as in IEEE 754.
    """
    codes = np.arange(256)
    sign = np.where(codes >> 7, -1.0, 1.0)
    exponent = (codes >> mantissa_bits) & ((1 << exponent_bits) - 1)
    mantissa = codes & ((1 << mantissa_bits) - 1)
    bias = (1 << (exponent_bits - 1)) - 1
    fraction = mantissa / (1 << mantissa_bits)
    values = np.where(
        exponent == 0,
        fraction * 2.0 ** (1 - bias),
        (1.0 + fraction) * 2.0 ** (exponent - bias),
    )
    top = (1 << exponent_bits) - 1
    if finite_only:
        all_ones = (exponent == top) & (mantissa == (1 << mantissa_bits) - 1)
        values = np.where(all_ones, np.nan, values)
    else:
        values = np.where(exponent == top, np.where(mantissa == 0, np.inf, np.nan), values)
    return (sign * values).astype(np.float32)


#: float32 value of every float8 code, by dtype name (OCP FP8: E4M3FN max 448, E5M2 IEEE-like).
FLOAT8_VALUES = {
    "float8_e4m3fn": _float8_table(4, 3, finite_only=True),
    "float8_e5m2": _float8_table(5, 2, finite_only=False),
}


def float8_to_float32(raw: npt.NDArray[np.uint8], dtype: str) -> npt.NDArray[np.float32]:
    """Exact float8 (``float8_e4m3fn`` or ``float8_e5m2``) bytes → float32, by table lookup."""
    return FLOAT8_VALUES[dtype][raw]


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON object hook: a key given twice is a forged or corrupt header (parsers disagree)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKeyError(key)
        out[key] = value
    return out


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def parse_json_bytes(raw: bytes, path: Path, what: str) -> Any:
    """JSON from untrusted bytes, or a :class:`SourceError` naming ``path`` (never another error).

    Refuses duplicate keys, integers longer than Python's digit limit and nesting deeper than
    the interpreter's recursion limit.
    """
    try:
        return json.loads(raw, object_pairs_hook=_reject_duplicates)
    except _DuplicateKeyError as exc:
        raise SourceError(f"{path}: not a valid {what}: key {exc.key!r} appears twice") from exc
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: not a valid {what}: not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}: not a valid {what}: not JSON ({exc.msg})") from exc
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise SourceError(f"{path}: not a valid {what}: {one_line(exc)}") from exc
    except RecursionError as exc:
        raise SourceError(f"{path}: not a valid {what}: JSON nested too deeply") from exc


#: A config.json larger than this is not read (real ones are a few kB).
MAX_CONFIG_BYTES = 1_000_000


def read_model_config(folder: Path) -> dict[str, Any] | None:
    """The parsed ``folder/config.json``, or None when absent, unreadable or too large.

    It only ever refines the plan (e.g. head counts), so a bad one is ignored, not an error.
    """
    path = folder / "config.json"
    try:
        if not path.is_file() or path.stat().st_size > MAX_CONFIG_BYTES:
            return None
        with open_regular_file(path) as handle:
            config = parse_json_bytes(handle.read(MAX_CONFIG_BYTES + 1), path, "config.json")
    except (OSError, SourceError):
        return None
    return config if isinstance(config, dict) else None


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def raising_load(origin: str, name: str, reason: str) -> Callable[[], npt.NDArray[np.generic]]:
    """A ``load()`` that raises :class:`SourceError` ``"{origin}: {name}: {reason}"``."""

    def load() -> npt.NDArray[np.generic]:
        raise SourceError(f"{origin}: {name}: {reason}")

    return load


def problem_ref(name: str, origin: str, reason: str) -> TensorRef:
    """A :class:`TensorRef` whose metadata already shows it cannot be read (``problem``)."""
    return TensorRef(name, (), "unknown", raising_load(origin, name, reason), None, origin, reason)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line, at most 200 characters (for error messages)."""
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


def open_regular_file(path: Path) -> BinaryIO:
    """``path`` opened for binary reading; a :class:`SourceError` unless it is a regular file.

    A FIFO, socket or device (``/dev/zero``) would block or never end when read; the check is
    made on the opened descriptor (non-blocking open, then ``fstat``), so a file swapped
    between a check and the read cannot slip through.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SourceError(f"{path}: not a regular file (a FIFO, socket, device or folder)")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
