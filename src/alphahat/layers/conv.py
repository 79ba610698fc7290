"""Conv-layer plans for the reference tool's ``pool=False`` and the FFT conv spectrum.

* **Per-slice rows** (``pool=False``): a conv weight (out, in, k₁, …) is analysed as one layer per
  kernel position instead of one pooled ESD. Each slice is a plan of its own that keeps the
  tensor's ``layer_id``, is named ``name [slice i,j]`` (the kernel index; ``[slice i]`` for
  conv1d, ``[slice i,j,l]`` for conv3d) and has ``slice_id`` = its row-major position
  (i·k₂ + j: the reference tool's numbering). The slice is scaled by the conv convention,
  which for ``reference`` is the reference tool's per-slice k/√2 (see :func:`slice_plans`).
  A slice whose M eigenvalues are fewer than ``min_evals`` is skipped with the reason.
* **FFT spectrum** (``fft=True``): the layer's eigenvalues are those of the circular
  convolution operator on an n × n input (see :mod:`alphahat.spectrum.conv_fft`), n^d
  matrices of c_out × c_in (d kernel axes) instead of the k^d kernel slices. A kernel larger
  than n along some axis cannot be the kernel of such an operator: that layer fails with the
  reason.

Nothing here reads a tensor: slices wrap the tensor's ``load()``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from alphahat.layers import TensorPlan, conv_slice_scale

Array = npt.NDArray[np.generic]


def is_conv(plan: TensorPlan) -> bool:
    """A conv layer (conv1d/2d/3d) with its kernel axes still in the tensor."""
    return plan.kind is not None and plan.kind.startswith("conv") and len(plan.ref.shape) >= 3


def _slice_loader(load: Callable[[], Array], index: tuple[int, ...]) -> Callable[[], Array]:
    def part() -> Array:
        key: tuple[slice | int, ...] = (slice(None), slice(None), *index)
        values: Array = load()[key]
        return values

    return part


def slice_plans(plan: TensorPlan, min_evals: int, conv_scale: str) -> list[TensorPlan]:
    """The per-kernel-position plans of an analysed conv layer; other plans unchanged.

    Under ``conv_scale="reference"`` a slice is scaled by √(r/2), r the kernel positions (k/√2
    for k × k), as the reference tool scales its per-slice rows — not by the 1/√2 of its pooled
    ESD (it sets its ``conv2d_count`` to r only in its slice iterator).
    """
    if plan.status != "analyse" or not is_conv(plan):
        return [plan]
    ref = plan.ref
    kernel = tuple(ref.shape[2:])
    scale = conv_slice_scale("papers" if conv_scale == "reference" else conv_scale, ref.shape)
    out = []
    for slice_id, index in enumerate(itertools.product(*(range(k) for k in kernel))):
        label = ",".join(map(str, index))
        part = replace(
            ref,
            name=f"{ref.name} [slice {label}]",
            shape=tuple(ref.shape[:2]),
            load=_slice_loader(ref.load, index),
            note=(f"{ref.note}; " if ref.note else "")
            + f"kernel slice {label} of {list(ref.shape)}",
        )
        sliced = replace(plan, ref=part, num_matrices=1, scale=scale, slice_id=slice_id)
        if min_evals > plan.M:
            reason = f"{plan.M} eigenvalue(s) per slice < min_evals={min_evals} (pool=False)"
            sliced = replace(sliced, status="skipped", reason=reason)
        out.append(sliced)
    return out


def fft_plan(plan: TensorPlan, size: int) -> TensorPlan:
    """The plan of a conv layer whose spectrum is the FFT one on a ``size``^d input."""
    if plan.status != "analyse" or not is_conv(plan):
        return plan
    kernel = tuple(plan.ref.shape[2:])
    count = size ** len(kernel)
    if max(kernel) > size:
        shape = "x".join(map(str, kernel))
        reason = f"fft_size={size} is smaller than the {shape} kernel (the input must hold it)"
        return replace(plan, status="failed", reason=reason, num_matrices=count)
    return replace(plan, num_matrices=count)


__all__ = ["fft_plan", "is_conv", "slice_plans"]
