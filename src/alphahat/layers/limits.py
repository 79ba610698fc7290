"""Resource limits: skip (with the reason) a layer too large to process, before reading it.

A layer's matrices and its memory footprint are known from the header alone, so a limit is
checked at planning time and the tensor is never loaded: a forged or simply huge tensor
becomes a ``skipped`` row instead of an out-of-memory kill that would lose every other layer.

The memory estimate (bytes) of one layer, with its matrices N × M (N ≥ M), ``k`` of them:

    numel · (itemsize + 4 if bf16/float8)   the tensor as read (bf16, float8 widened to float32)
  + 3 · 8 · N · M                           float64 copy, scaled copy, LAPACK's working copy
  + 8 · (N + 8 · M)                         LAPACK ``gesdd`` workspace (no singular vectors)
  + 320 · M · k                             the M·k eigenvalues and the power-law fit's
                                            working arrays (measured: about 250 bytes each)
  + 1 MiB                                   fixed overhead (Python objects, the row)

It describes the default CPU SVD; it is an estimate, not a bound enforced by the OS
(``tests/hostile`` checks it against the peak that ``tracemalloc`` measures).

Without ``max_memory`` a layer may take :data:`DEFAULT_MEMORY_FRACTION` of the memory this
process can have — the smaller of the machine's physical memory and the address-space limit
(``RLIMIT_AS``) — so a header claiming more than the machine holds gives a ``skipped`` row
with the bytes it would need instead of an out-of-memory kill. Both are fixed for the life of
the process and inherited by workers, so every process plans the same rows.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
from dataclasses import dataclass

from alphahat.sources.base import TensorRef

#: Bytes per element of the weight dtypes as stored.
_ITEMSIZE = {
    "float16": 2,
    "bfloat16": 2,
    "float32": 4,
    "float64": 8,
    "float8_e4m3fn": 1,
    "float8_e5m2": 1,
}
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "k": 2**10,
    "m": 2**20,
    "g": 2**30,
    "t": 2**40,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_OVERHEAD = 2**20
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?(?:e\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_byte_size(value: int | str, name: str = "max_memory") -> int:
    """Bytes from ``8GiB``, ``512MB``, ``1.5G``, ``1e9`` or an integer.

    kB/MB/GB/TB are powers of 1000; KiB/MiB/GiB/TiB and the bare K/M/G/T powers of 1024.

    Raises:
        ValueError: not a positive size; the message names ``name`` and the accepted forms.
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a size in bytes such as 8GiB, 512MB or 1000000")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(str(value))
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in _UNITS:
            raise ValueError(
                f"{name} must be a size in bytes such as 8GiB, 512MB or 1000000; got {value!r}"
            )
        size = int(float(match.group(1)) * _UNITS[unit])
    if size < 1:
        raise ValueError(f"{name} must be at least 1 byte; got {value!r}")
    return size


def format_bytes(size: int) -> str:
    """``1536`` → ``1.5 KiB`` (powers of 1024)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class ResourceLimits:
    """Limits on one layer: elements of one matrix (N·M) and estimated peak memory (bytes)."""

    max_matrix_elements: int | None = None
    max_memory: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_matrix_elements", "max_memory"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise ValueError(f"{name} must be None or an integer ≥ 1; got {value!r}")

    @property
    def empty(self) -> bool:
        """True when nothing is limited."""
        return self.max_matrix_elements is None and self.max_memory is None


def estimated_peak_bytes(ref: TensorRef, N: int, M: int, num_matrices: int) -> int:
    """Estimated peak memory of analysing a layer (the formula in the module docstring)."""
    widened = ref.dtype == "bfloat16" or ref.dtype.startswith("float8")
    itemsize = _ITEMSIZE.get(ref.dtype, 8) + (4 if widened else 0)
    tensor = math.prod(ref.shape) * itemsize
    return tensor + 3 * 8 * N * M + 8 * (N + 8 * M) + 320 * M * num_matrices + _OVERHEAD


#: share of the process's memory (physical memory or address-space limit) one layer may take
DEFAULT_MEMORY_FRACTION = 0.5


@functools.cache
def default_max_memory() -> int | None:
    """The memory budget of one layer without ``max_memory`` (bytes).

    :data:`DEFAULT_MEMORY_FRACTION` of min(physical memory, ``RLIMIT_AS``); None where
    neither is known.
    """
    sizes = []
    with contextlib.suppress(AttributeError, ValueError, OSError):
        sizes.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY and soft > 0:
            sizes.append(soft)
    except (ImportError, OSError, ValueError):
        pass
    sizes = [s for s in sizes if s > 0]
    return int(min(sizes) * DEFAULT_MEMORY_FRACTION) if sizes else None


def limit_reason(
    ref: TensorRef, N: int, M: int, num_matrices: int, limits: ResourceLimits
) -> str | None:
    """Why a layer exceeds ``limits`` (the skip reason), or None when it is within them."""
    elements = N * M
    if limits.max_matrix_elements is not None and elements > limits.max_matrix_elements:
        return (
            f"too large: {N}×{M} = {elements} elements per matrix > "
            f"max_matrix_elements={limits.max_matrix_elements}"
        )
    budget = limits.max_memory if limits.max_memory is not None else default_max_memory()
    if budget is not None:
        peak = estimated_peak_bytes(ref, N, M, num_matrices)
        if peak > budget:
            how = (
                ""
                if limits.max_memory is not None
                else f" (the default: {DEFAULT_MEMORY_FRACTION:.0%} of this process's memory; "
                "--max-memory to change)"
            )
            return (
                f"too large: needs about {format_bytes(peak)} > "
                f"max_memory={format_bytes(budget)}{how}"
            )
    return None
