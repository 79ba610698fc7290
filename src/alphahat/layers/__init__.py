"""Layers: which tensors become which matrices, and why the others are not analysed.

**Model order** is the natural order of the full dotted names (``layer.2`` before
``layer.10``), whatever the source: it is the one order every format keeps (safetensors, GGUF
and ONNX files do not record module registration order), so the same model read from an
``nn.Module``, a state dict, safetensors, a sharded folder or ONNX gets the same layer ids.

Every matrix-to-be with at least two dimensions gets a ``layer_id`` (its position in model
order). A tensor may become several: one per expert of a Mixture-of-Experts weight, per
direction of a stacked RNN weight, or q/k/v of a fused projection on request (see
:mod:`alphahat.layers.semantics`); each part is named ``name [part]``. A 2-D weight is one
matrix; a convolution kernel (out, in, k₁, …) is one (out × in) matrix per kernel position,
whose eigenvalues are pooled into one layer ESD; a bilinear weight (out, in₁, in₂) is one
(in₁ × in₂) matrix per output. Every matrix is oriented N × M with N ≥ M. Nothing is dropped
silently: each tensor gets a :class:`TensorPlan` whose ``status`` is ``analyse``, ``skipped``
or ``failed``, with a reason.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from alphahat.layers.limits import ResourceLimits, limit_reason
from alphahat.layers.packed import dequantize_packed, mxfp4_scales_skip, packed_metadata_skip
from alphahat.layers.semantics import (
    base_name,
    dequantize_bnb_4bit,
    dequantize_float8,
    dequantize_int8,
    expand,
    float8_scale_skip,
    is_rnn_name,
    quantization_skip,
    rnn_gate_count,
)
from alphahat.sources.base import FLOAT_DTYPES, TensorRef, natural_key

#: Layer kinds, as used by filters and reported in the ``kind`` column.
KINDS = ("linear", "embedding", "conv1d", "conv2d", "conv3d", "rnn", "bilinear")
_MATRIX_KINDS = ("linear", "embedding", "rnn")
_CONV_BY_NDIM = {3: "conv1d", 4: "conv2d", 5: "conv3d"}
_EMBEDDING_NAMES = ("wte", "wpe")

ConvScale = Literal["reference", "papers", "none"]
CONV_SCALES: tuple[str, ...] = ("reference", "papers", "none")
#: Per-slice multiplier of conv kernels under the reference tool's convention (λ halved).
REFERENCE_CONV_SCALE = math.sqrt(0.5)


def conv_slice_scale(conv_scale: str, shape: Sequence[int]) -> float:
    """Multiplier of each kernel slice of a conv weight (out, in, k₁, …) under a convention.

    ``reference``: 1/√2 (λ halved), the reference tool's. ``papers``: √(r/2), r = k₁·k₂·…
    the number of kernel positions — k/√2 for a k × k kernel, the rescaling of "Predicting
    trends in the quality of state-of-the-art neural networks without access to training or
    testing data" (Martin, Peng & Mahoney, appendix A) that puts He-initialised slices
    (variance 2/(N k²)) on the scale of linear layers. ``none``: 1.
    """
    if conv_scale == "reference":
        return REFERENCE_CONV_SCALE
    if conv_scale == "papers":
        return math.sqrt(math.prod(shape[2:]) / 2.0)
    return 1.0


PlanStatus = Literal["analyse", "skipped", "failed"]


def infer_kind(ref: TensorRef) -> str | None:
    """Layer kind of a tensor with ≥ 2 dims: from its module when known, else name and shape."""
    if ref.ndim < 2:
        return None
    if ref.module_kind == "bilinear":
        return "bilinear" if ref.ndim == 3 else "linear"
    if ref.module_kind is not None and (ref.ndim == 2) == (ref.module_kind in _MATRIX_KINDS):
        return ref.module_kind
    if ref.ndim == 2:
        if is_rnn_name(ref.name):
            return "rnn"
        lowered = ref.name.lower()
        parts = lowered.split(".")
        owner = parts[-2] if len(parts) > 1 else parts[0]
        if "embed" in lowered or owner in _EMBEDDING_NAMES:
            return "embedding"
        return "linear"
    return _CONV_BY_NDIM.get(ref.ndim)


def _named_like_embedding(name: str) -> bool:
    lowered = name.lower()
    parts = lowered.split(".")
    owner = parts[-2] if len(parts) > 1 else parts[0]
    return not is_rnn_name(name) and ("embed" in lowered or owner in _EMBEDDING_NAMES)


#: config.json keys whose integer values are sizes of embedding tables
_TABLE_SIZE_KEY = re.compile(r"vocab|position|n_ctx|max_seq|num_embeddings|n_vocab")


def _table_sizes(config: Mapping[str, Any] | None) -> set[int]:
    """Integer sizes of embedding tables in a ``config.json`` (top level and one level down)."""
    sizes: set[int] = set()
    for section in [config or {}, *((config or {}).values())]:
        if not isinstance(section, Mapping):
            continue
        for key, value in section.items():
            ok = isinstance(value, int) and not isinstance(value, bool) and value > 1
            if ok and _TABLE_SIZE_KEY.search(str(key)):
                sizes.add(value)
    return sizes


def kind_from_evidence(
    ref: TensorRef, by_name: Mapping[str, TensorRef], model_config: Mapping[str, Any] | None
) -> TensorRef:
    """A state-dict tensor named like an embedding, with its kind decided from the evidence.

    Only the name says "embedding" when no module is known (a state dict, safetensors, .npz);
    protein-design models name ``nn.Linear`` input projections ``…edge_embedding``. Evidence:
    a bias sibling of the output size (an ``nn.Embedding`` has none) → ``linear``; a first
    dimension equal to a table size of the checkpoint's ``config.json`` (vocabulary, positions,
    token types) or an ``lm_head.weight`` tied to it → ``embedding``; otherwise ``embedding``
    with a ``note`` saying the kind is guessed from the name. A known module kind (a live
    ``nn.Module``, Keras, ONNX, GGUF) is never overridden.
    """
    if (
        ref.module_kind is not None
        or ref.ndim != 2
        or ref.dtype not in FLOAT_DTYPES  # integer buffers (position_ids) are not weights
        or not _named_like_embedding(ref.name)
    ):
        return ref
    module = ref.name.removesuffix(".weight") if ref.name.endswith(".weight") else None
    bias = by_name.get(f"{module}.bias") if module else None
    if bias is not None and bias.shape == (ref.shape[0],):
        note = "kind linear: named like an embedding but has a bias (an embedding has none)"
        return replace(ref, module_kind="linear", note="; ".join(filter(None, [ref.note, note])))
    tied = any(
        name.rsplit(".", 2)[-2:] == ["lm_head", "weight"]
        and (other.shape == ref.shape or ref.name in (other.skip_reason or ""))
        for name, other in by_name.items()
    )
    if tied or ref.shape[0] in _table_sizes(model_config):
        return replace(ref, module_kind="embedding")
    note = "kind embedding guessed from the name"
    return replace(ref, module_kind="embedding", note="; ".join(filter(None, [ref.note, note])))


@dataclass(frozen=True)
class LayerFilter:
    """Which layers to analyse: each non-empty criterion must match (AND); within one, any.

    ``ids`` are layer ids; ``names`` match the full layer name (``x.weight [q]``), the tensor
    name (``x.weight``) or its module name (``x``); ``globs`` are fnmatch patterns on the full
    layer name or the tensor name; ``kinds`` are values of :data:`KINDS`.
    """

    ids: tuple[int, ...] = ()
    names: tuple[str, ...] = ()
    globs: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown layer kind(s) {unknown}; choose from {', '.join(KINDS)}")

    @classmethod
    def parse(cls, specs: Iterable[str | int]) -> LayerFilter:
        """Sort user specs: integers → ids, kinds → kinds, ``*?[`` → globs, else names."""
        ids: list[int] = []
        names: list[str] = []
        globs: list[str] = []
        kinds: list[str] = []
        for spec in specs:
            if isinstance(spec, int) and not isinstance(spec, bool):
                ids.append(spec)
                continue
            text = str(spec).strip()
            if not text:
                continue
            if text.lstrip("-").isdigit():
                ids.append(int(text))
            elif text in KINDS:
                kinds.append(text)
            elif any(c in text for c in "*?["):
                globs.append(text)
            else:
                names.append(text)
        return cls(tuple(ids), tuple(names), tuple(globs), tuple(kinds))

    @property
    def empty(self) -> bool:
        """True when the filter keeps every layer."""
        return not (self.ids or self.names or self.globs or self.kinds)

    def matches(self, layer_id: int, name: str, kind: str) -> bool:
        """Whether the layer passes every given criterion."""
        tensor = base_name(name)
        module = tensor.removesuffix(".weight")
        return (
            (not self.ids or layer_id in self.ids)
            and (not self.names or bool({name, tensor, module} & set(self.names)))
            and (
                not self.globs
                or any(
                    fnmatch.fnmatchcase(name, g) or fnmatch.fnmatchcase(tensor, g)
                    for g in self.globs
                )
            )
            and (not self.kinds or kind in self.kinds)
        )


@dataclass(frozen=True)
class TensorPlan:
    """What happens to one tensor, known before its values are read.

    ``N``, ``M``, ``num_matrices`` and ``num_evals`` describe the matrices of a tensor with
    ≥ 2 dims (N ≥ M per matrix; ``num_evals`` = M × ``num_matrices``); ``scale`` multiplies
    the weights before the spectrum (the conv convention).
    """

    ref: TensorRef
    layer_id: int | None
    kind: str | None
    status: PlanStatus
    reason: str = ""
    N: int = 0
    M: int = 0
    num_matrices: int = 0
    scale: float = 1.0
    slice_id: int | None = None  # pool=False: position of the kernel slice (layers.conv)

    @property
    def num_evals(self) -> int:
        """Eigenvalues in the pooled ESD."""
        return self.M * self.num_matrices


def _matrix_shape(shape: Sequence[int], kind: str) -> tuple[int, int, int]:
    """(N, M, number of matrices) for a weight of this shape and kind."""
    if kind == "bilinear":
        rows, cols = shape[1], shape[2]
        return max(rows, cols), min(rows, cols), shape[0]
    rows, cols = shape[0], shape[1]
    return max(rows, cols), min(rows, cols), math.prod(shape[2:])


def _dtype_reason(dtype: str) -> str | None:
    if dtype in FLOAT_DTYPES:
        return None
    if dtype == "bool":
        return "boolean tensor (a mask), not weights"
    if dtype.startswith(("int", "uint")):
        return (
            f"integer tensor ({dtype}): indices, counts or packed quantized weights, "
            "not a float matrix"
        )
    if dtype.startswith("float8"):
        return f"{dtype} tensor: only float8_e4m3fn and float8_e5m2 are read"
    return f"unsupported dtype {dtype}"


def plan_tensors(
    refs: Iterable[TensorRef],
    *,
    layer_filter: LayerFilter | None = None,
    min_evals: int = 0,
    max_evals: int | None = None,
    conv_scale: ConvScale = "reference",
    split_fused: bool = False,
    fused_heads: int | None = None,
    limits: ResourceLimits | None = None,
    model_config: Mapping[str, Any] | None = None,
) -> Iterator[TensorPlan]:
    """A :class:`TensorPlan` for every matrix-to-be, in model order (natural name order).

    Layer ids count the tensors (and tensor parts) with ≥ 2 dims. ``min_evals`` and
    ``max_evals`` bound the eigenvalues of a layer (0 and None: no bound; an analysis passes
    its options, :func:`alphahat.pipeline.plan_layers`). ``split_fused`` splits fused
    q/k/v projections (``fused_heads``: head count of per-head interleaved ones). A layer over
    ``limits`` (:mod:`alphahat.layers.limits`) is skipped with the reason, never loaded.
    ``model_config``: the checkpoint's ``config.json`` (quantization conventions).
    """
    layer_filter = layer_filter or LayerFilter()
    ordered = sorted(refs, key=lambda r: natural_key(r.name))
    by_name = {r.name: r for r in ordered}
    names = by_name.keys()
    next_id = 0
    for original in ordered:
        original = dequantize_packed(dequantize_bnb_4bit(original, by_name), by_name, model_config)
        quantized = (
            quantization_skip(original, names)
            or float8_scale_skip(original, by_name)
            or packed_metadata_skip(original, names)
            or mxfp4_scales_skip(original, names)
        )
        if quantized is not None and original.skip_reason is None:
            original = replace(original, skip_reason=quantized)
        original = dequantize_float8(dequantize_int8(original, names, by_name), by_name)
        original = kind_from_evidence(original, by_name, model_config)
        gates = rnn_gate_count(original, by_name) if split_fused else None
        for ref in expand(
            original, split_fused=split_fused, fused_heads=fused_heads, rnn_gates=gates
        ):
            plan, next_id = _plan_one(ref, next_id, layer_filter, min_evals, max_evals, conv_scale)
            too_large = (
                limit_reason(ref, plan.N, plan.M, plan.num_matrices, limits)
                if limits is not None and plan.status == "analyse"
                else None
            )
            yield plan if too_large is None else replace(plan, status="skipped", reason=too_large)


def _plan_one(
    ref: TensorRef,
    next_id: int,
    layer_filter: LayerFilter,
    min_evals: int,
    max_evals: int | None,
    conv_scale: ConvScale,
) -> tuple[TensorPlan, int]:
    """The plan of one matrix-to-be, and the next free layer id."""
    if ref.skip_reason is not None:
        return TensorPlan(ref, None, infer_kind(ref), "skipped", ref.skip_reason), next_id
    if ref.ndim < 2 and ref.problem is None:
        what = "scalar" if ref.ndim == 0 else "1-D tensor (bias, norm or scale vector)"
        return TensorPlan(ref, None, None, "skipped", f"{what}; not a matrix"), next_id
    layer_id = next_id
    next_id += 1
    if ref.problem is not None:
        return TensorPlan(ref, layer_id, None, "failed", f"cannot read: {ref.problem}"), next_id
    kind = infer_kind(ref)
    if kind is None:
        unsupported = f"{ref.ndim}-D tensor: unsupported rank"
        return TensorPlan(ref, layer_id, None, "skipped", unsupported), next_id
    N, M, count = _matrix_shape(ref.shape, kind)
    scale = conv_slice_scale(conv_scale, ref.shape) if kind.startswith("conv") else 1.0
    plan = TensorPlan(ref, layer_id, kind, "analyse", "", N, M, count, scale)
    reason = _dtype_reason(ref.dtype)
    if reason is None and M == 0:
        reason = "empty tensor"
    if reason is None and not layer_filter.matches(layer_id, ref.name, kind):
        reason = "excluded by the layer filter"
    if reason is None and plan.num_evals < min_evals:
        reason = f"{plan.num_evals} eigenvalue(s) < min_evals={min_evals}"
    if reason is None and max_evals is not None and plan.num_evals > max_evals:
        reason = f"{plan.num_evals} eigenvalues > max_evals={max_evals}"
    if reason is not None:
        plan = TensorPlan(ref, layer_id, kind, "skipped", reason, N, M, count, scale)
    return plan, next_id


def layer_matrices(
    values: npt.NDArray[np.generic], plan: TensorPlan
) -> list[npt.NDArray[np.generic]]:
    """The N × M matrices of a tensor (views where possible), one per kernel position.

    ``values`` is a NumPy array, or a torch tensor where the layer is analysed on its device
    (only indexing, ``reshape`` and ``.T`` are used, which both provide).
    """
    if values.shape != plan.ref.shape:
        raise ValueError(
            f"{plan.ref.name}: read shape {values.shape} differs from declared {plan.ref.shape}"
        )
    if plan.kind == "bilinear":
        # (out, in₁, in₂): one in₁ × in₂ matrix per output
        matrices = [values[k] for k in range(values.shape[0])]
    else:
        slices = values.reshape(values.shape[0], values.shape[1], -1)
        matrices = [slices[:, :, k] for k in range(slices.shape[2])]
    if not matrices:
        return matrices
    rows, cols = matrices[0].shape
    return [m.T for m in matrices] if rows < cols else matrices
