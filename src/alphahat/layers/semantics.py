"""Layer semantics: what a tensor means beyond its shape, decided from names, siblings and kinds.

* **Mixture-of-Experts**: a 3-D weight ``[experts, out, in]`` whose name has an ``experts``
  component (``mlp.experts.gate_up_proj``, ``block_sparse_moe.experts.w1``) is analysed as one
  matrix per expert, ``name [expert e]``.
* **Stacked RNN directions**: a 3-D ``rnn`` weight (ONNX ``LSTM``/``GRU``/``RNN``:
  ``[directions, gates·hidden, in]``) is one matrix per direction, ``name [direction d]``.
* **RNN gates** (opt-in, ``split_fused``): a PyTorch LSTM/GRU ``weight_ih_l*``/``weight_hh_l*``
  stacks its gates along the rows, (W_i|W_f|W_g|W_o) or (W_r|W_z|W_n); each becomes
  ``name [i]`` … (the gate count is read off the ``weight_hh`` sibling, (gates·h, h)).
* **Fused QKV** (opt-in, ``split_fused``): ``in_proj_weight`` (``nn.MultiheadAttention``),
  ``c_attn`` (GPT-2, stored (in, 3·out)), ``qkv_proj``, ``qkv``, ``Wqkv``, ``to_qkv`` are split
  into three equal contiguous blocks along the output axis, ``name [q]``, ``[k]``, ``[v]``.
  ``query_key_value`` (GPT-NeoX, BLOOM, Falcon) interleaves q/k/v per head, so it is split only
  when the number of heads is given (``fused_heads``); otherwise it stays whole and says why.
* **Quantized checkpoints**: a ``qweight`` (several codes packed per int32) that is not
  GPTQ's or AWQ's layout (both dequantized by :mod:`alphahat.layers.packed`, as are
  compressed-tensors, NVFP4 and MXFP4) is never read as a matrix: skipped with the reason,
  its metadata (``qzeros``, ``scales``, ``g_idx``) too. bitsandbytes LLM.int8 (``weight``
  int8 with a ``SCB`` row scale) is dequantized exactly: W = W_int8 · SCB[:, None] / 127;
  bitsandbytes 4-bit NF4/FP4 (``weight`` as packed uint8 with ``weight.quant_state.*``,
  :func:`dequantize_bnb_4bit`) from its stored code table and block scales; float8 with its
  scales (:func:`dequantize_float8`); all labelled ``dequantized``, their metadata tensors
  listed as skipped.

Nothing here reads a file: derived tensors wrap the original tensor's ``load()``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from alphahat.errors import AlphahatError, LayerError
from alphahat.sources.base import (
    FLOAT8_DTYPES,
    FLOAT_DTYPES,
    RowReader,
    TensorRef,
    parse_json_bytes,
    read_rows,
)

Array = npt.NDArray[np.generic]

#: Last name component (before ``.weight``) of fused q/k/v projections split into equal blocks.
FUSED_QKV_NAMES = frozenset({"c_attn", "qkv_proj", "qkv", "wqkv", "to_qkv"})
#: Per-head interleaved fused projections (GPT-NeoX, BLOOM, Falcon).
INTERLEAVED_QKV_NAMES = frozenset({"query_key_value"})
_EXPERTS = re.compile(r"(^|\.)experts?(\.|$)")
_RNN_NAME = re.compile(r"(^|\.)weight_(ih|hh)_l\d+(_reverse)?$")
_PART = re.compile(r" \[[^\]]*\]$")

_GPTQ_META = ("qzeros", "scales", "g_idx", "bias_scales")
_BNB_META = ("absmax", "quant_map", "nested_absmax", "nested_quant_map", "quant_state")


def base_name(name: str) -> str:
    """The tensor name without a bracketed part: ``x.weight [expert 3]`` → ``x.weight``."""
    return _PART.sub("", name)


def is_rnn_name(name: str) -> bool:
    """``weight_ih_l0``, ``weight_hh_l2_reverse``: PyTorch RNN/LSTM/GRU weight matrices."""
    return _RNN_NAME.search(name) is not None


def _owner_and_attr(name: str) -> tuple[str, str]:
    owner, _, attr = name.rpartition(".")
    return owner, attr


def quantization_skip(ref: TensorRef, names: Collection[str]) -> str | None:
    """Why a tensor of a quantized checkpoint is not analysed as a matrix, or None."""
    owner, attr = _owner_and_attr(ref.name)
    if attr == "qweight":  # GPTQ and AWQ layouts are dequantized before this (layers.packed)
        return (
            f"packed quantized weights ({ref.dtype}) of a layout not recognised as GPTQ or AWQ "
            "(no scales/qzeros of matching shapes): never read as a matrix"
        )
    if attr in _GPTQ_META and f"{owner}.qweight" in names:
        return f"quantization metadata ({attr}) of {owner}.qweight"
    if attr == "SCB" and f"{owner}.weight" in names:
        return f"LLM.int8 row scales of {owner}.weight (used to dequantize it)"
    if attr == "weight_format" and f"{owner}.weight" in names:
        return f"bitsandbytes layout tag of {owner}.weight"
    # bitsandbytes 4-bit: x.weight.absmax, x.weight.quant_map, x.weight.quant_state.…
    parts = ref.name.split(".")
    for i, part in enumerate(parts):
        if part in _BNB_META and i > 0 and ".".join(parts[:i]) in names:
            return f"bitsandbytes quantization state ({part}) of {'.'.join(parts[:i])}"
    prefix = f"{ref.name}.quant_state."
    if ref.dtype in ("uint8", "int8") and ref.problem is None:  # nf4/fp4 are dequantized
        kind = next((n for n in names if n.startswith(prefix)), "__").rsplit("__", 1)[-1]
        if kind and kind not in BNB_4BIT_TYPES:
            return (
                f"bitsandbytes 4-bit ({kind}) packed weights ({ref.dtype}, two values per "
                "byte): never read as a matrix; no dequantizer for this type"
            )
    return None


def dequantize_int8(
    ref: TensorRef, names: Collection[str], refs: dict[str, TensorRef]
) -> TensorRef:
    """An LLM.int8 weight (int8 + ``SCB`` row scales) as float32 W·SCB/127; others unchanged."""
    owner, attr = _owner_and_attr(ref.name)
    scb = refs.get(f"{owner}.SCB")
    if attr != "weight" or ref.dtype != "int8" or ref.ndim != 2 or scb is None:
        return ref
    if scb.shape != (ref.shape[0],) or scb.dtype not in FLOAT_DTYPES:
        return replace(ref, problem=f"LLM.int8 scales {scb.name} have shape {scb.shape}")

    def load() -> Array:
        weights = np.asarray(ref.load(), dtype=np.float32)
        scales = np.asarray(scb.load(), dtype=np.float32)
        out: Array = weights * (scales[:, None] / np.float32(127.0))
        return out

    return replace(
        ref, dtype="float32", load=load, note="dequantized (LLM.int8: W·SCB/127)", module_kind=None
    )


#: Names of float8 weight scales: DeepSeek-V3 / Hugging Face fine-grained FP8 store
#: ``weight_scale_inv`` per 128 × 128 block; compressed-tensors, FBGEMM and ModelOpt store
#: ``weight_scale`` per tensor, per output channel or per group. Both multiply: W = W₈ · s.
FLOAT8_SCALE_NAMES = ("weight_scale_inv", "weight_scale")
#: Block sizes tried, in order, when a block-wise scale's block size must be inferred.
_FLOAT8_BLOCKS = (128, 64, 256, 32, 512, 16, 1024)


def float8_scale_skip(ref: TensorRef, refs: dict[str, TensorRef]) -> str | None:
    """Why a float8 weight's scale tensor is not a layer of its own, or None."""
    owner, attr = _owner_and_attr(ref.name)
    weight = refs.get(f"{owner}.weight")
    if attr in FLOAT8_SCALE_NAMES and weight is not None and weight.dtype in FLOAT8_DTYPES:
        return f"{weight.dtype} scales ({attr}) of {owner}.weight (used to dequantize it)"
    return None


def _block_size(size: int, blocks: int) -> int | None:
    """The block length b with ⌈size / b⌉ = blocks: a usual one first, else an exact split."""
    for b in _FLOAT8_BLOCKS:
        if -(-size // b) == blocks:
            return b
    if blocks > 0 and size % blocks == 0:
        return size // blocks
    return None


def _float8_scale_plan(
    shape: tuple[int, ...], scale_shape: tuple[int, ...]
) -> tuple[str, bool, Callable[[Array], Array]] | None:
    """How float8 scales apply to a weight of ``shape``; None if the layout is unknown.

    Returns (how, whether the scales have one entry per expert, scales → an array broadcasting
    against W). W is (out, in), or (experts, out, in) with scales per tensor or with a leading
    experts axis.
    """
    if math.prod(scale_shape) == 1:
        return "per tensor", False, lambda s: s.reshape(())
    if len(shape) not in (2, 3):
        return None
    experts = len(shape) == 3
    if experts and (len(scale_shape) < 2 or scale_shape[0] != shape[0]):
        return None
    core = scale_shape[1:] if experts else scale_shape
    out, inp = shape[-2:]
    lead = 1 if experts else 0
    if core in ((out,), (out, 1)):
        return "per output channel", experts, lambda s: s.reshape(*s.shape[:lead], out, 1)
    if len(core) != 2:
        return None
    b0, b1 = _block_size(out, core[0]), _block_size(inp, core[1])
    if b0 is None or b1 is None:
        return None

    def blocks(s: Array) -> Array:
        full: Array = np.repeat(np.repeat(s, b0, axis=-2), b1, axis=-1)[..., :out, :inp]
        return full

    return f"per {b0} × {b1} block", experts, blocks


def dequantize_float8(ref: TensorRef, refs: dict[str, TensorRef]) -> TensorRef:
    """A float8 weight with its scale tensor as float32 W₈ · s; others unchanged.

    W₈ is decoded exactly (``sources.base.float8_to_float32``); the scale is per tensor, per
    output channel, or per block (``weight_scale_inv`` of shape ⌈out/b⌉ × ⌈in/b⌉, b = 128 as
    in DeepSeek-V3 unless the shapes say otherwise), with a leading experts axis for a packed
    ``[experts, out, in]`` weight (each expert then reads its own rows of both). Without a scale
    tensor the values are analysed as stored, and the note says so; scales of an unknown
    layout make the layer fail with the reason rather than give the spectrum of wrongly
    scaled weights.
    """
    owner, attr = _owner_and_attr(ref.name)
    if ref.dtype not in FLOAT8_DTYPES or attr != "weight" or ref.ndim == 0:
        return ref
    scale = next((refs[n] for n in (f"{owner}.{a}" for a in FLOAT8_SCALE_NAMES) if n in refs), None)
    if scale is None:
        note = f"{ref.dtype} values as stored (no weight_scale or weight_scale_inv found)"
        return replace(ref, note=f"{ref.note}; {note}" if ref.note else note)
    plan = _float8_scale_plan(ref.shape, scale.shape)
    if plan is None or scale.dtype not in FLOAT_DTYPES - FLOAT8_DTYPES:
        return replace(
            ref,
            problem=(
                f"{ref.dtype} weight of shape {list(ref.shape)} with scales {scale.name} of "
                f"shape {list(scale.shape)} ({scale.dtype}): layout not recognised"
            ),
        )
    how, per_expert, broadcast = plan

    def read(start: int, stop: int) -> Array:
        weights = np.asarray(read_rows(ref.load, start, stop), dtype=np.float32)
        raw = read_rows(scale.load, start, stop) if per_expert else scale.load()
        out: Array = np.multiply(weights, broadcast(np.asarray(raw, dtype=np.float32)))
        return out

    attr_name = scale.name.rsplit(".", 1)[-1]
    rows = ref.shape[0]
    return replace(
        ref,
        dtype="float32",
        load=RowReader(read, rows),
        note=f"dequantized ({ref.dtype} · {attr_name}, {how})",
    )


#: The 4-bit data types of bitsandbytes, each with its 16-value code table stored in the file.
BNB_4BIT_TYPES = ("nf4", "fp4")


def _bnb_state(ref: TensorRef, refs: dict[str, TensorRef]) -> tuple[str, TensorRef] | None:
    """(quant type, its quant_state tensor) of a bitsandbytes 4-bit weight, or None."""
    for quant_type in BNB_4BIT_TYPES:
        state = refs.get(f"{ref.name}.quant_state.bitsandbytes__{quant_type}")
        if state is not None:
            return quant_type, state
    return None


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _bnb_meta(state: TensorRef) -> dict[str, Any]:
    """The JSON object of a bitsandbytes ``quant_state`` tensor, checked; LayerError if bad."""
    raw = np.asarray(state.load(), dtype=np.uint8).tobytes()
    meta = parse_json_bytes(raw, Path(state.name), "bitsandbytes quant_state")
    shape = meta.get("shape") if isinstance(meta, dict) else None
    if not (isinstance(shape, list) and len(shape) == 2 and all(map(_positive_int, shape))):
        raise LayerError(f"{state.name}: no valid 2-D shape")
    if not _positive_int(meta.get("blocksize")):
        raise LayerError(f"{state.name}: no valid blocksize")
    if "nested_blocksize" in meta and not (
        _positive_int(meta["nested_blocksize"])
        and isinstance(meta.get("nested_offset", 0.0), int | float)
    ):
        raise LayerError(f"{state.name}: invalid nested_blocksize or nested_offset")
    checked: dict[str, Any] = meta
    return checked


def dequantize_bnb_4bit(ref: TensorRef, refs: dict[str, TensorRef]) -> TensorRef:
    """A bitsandbytes 4-bit (NF4/FP4) weight as float32; others unchanged.

    The layout (``Linear4bit`` saved by ``transformers``): ``W`` packed two codes per byte,
    the first element in the high nibble; ``W.quant_map`` the 16 code values; ``W.absmax``
    one scale per block of ``blocksize`` elements (flat order); ``W.quant_state.
    bitsandbytes__nf4`` a JSON object (``quant_type``, ``blocksize``, ``shape``, …) stored as
    bytes. With double quantization the absmax are themselves 8-bit codes:
    absmax = ``nested_quant_map``[code] · ``nested_absmax``[block of ``nested_blocksize``]
    + ``nested_offset``. Then w = quant_map[code] · absmax[block]. The JSON is read at planning
    time (it holds the real shape); a state that does not add up makes the layer fail with the
    reason.
    """
    found = _bnb_state(ref, refs) if ref.dtype == "uint8" else None
    if found is None:
        return ref
    quant_type, state = found
    try:
        meta = _bnb_meta(state)
    except (AlphahatError, OSError, ValueError) as exc:
        return replace(ref, problem=f"bitsandbytes quant_state: {exc}")
    out, inp = (int(d) for d in meta["shape"])
    count, blocksize = out * inp, int(meta["blocksize"])
    nested = "nested_blocksize" in meta
    wanted = ("absmax", "quant_map") + (("nested_absmax", "nested_quant_map") if nested else ())
    missing = [k for k in wanted if f"{ref.name}.{k}" not in refs]
    if missing:
        return replace(ref, problem=f"bitsandbytes 4-bit state incomplete: no {', '.join(missing)}")
    parts = {k: refs[f"{ref.name}.{k}"] for k in wanted}
    problem = None
    if meta.get("quant_type", quant_type) != quant_type:
        problem = f"bitsandbytes quant_state says {meta.get('quant_type')!r}, named {quant_type}"
    elif ref.numel * 2 < count:
        problem = f"{ref.numel} packed bytes cannot hold shape {[out, inp]}"
    elif parts["quant_map"].numel != 16 or parts["absmax"].numel != -(-count // blocksize):
        problem = f"bitsandbytes 4-bit quant_map/absmax sizes do not fit shape {[out, inp]}"
    elif nested and (
        parts["nested_quant_map"].numel != 256
        or parts["nested_absmax"].numel
        != -(-parts["absmax"].numel // int(meta["nested_blocksize"]))
    ):
        problem = "bitsandbytes double-quantized absmax: nested state sizes do not fit"
    if problem is not None:
        return replace(ref, problem=problem)

    def load() -> Array:
        packed = np.asarray(ref.load(), dtype=np.uint8).reshape(-1)
        codes = np.empty(packed.size * 2, dtype=np.uint8)
        codes[0::2] = packed >> 4
        codes[1::2] = packed & 0x0F
        table = np.asarray(parts["quant_map"].load(), dtype=np.float32).reshape(-1)
        scales = np.repeat(_bnb_absmax(parts, meta), blocksize)[:count]
        values: Array = np.multiply(table[codes[:count]], scales).reshape(out, inp)
        return values

    how = ", double-quantized scales" if nested else ""
    note = f"dequantized (bitsandbytes {quant_type}, blocks of {blocksize}{how})"
    return replace(ref, shape=(out, inp), dtype="float32", load=load, note=note)


def _bnb_absmax(parts: dict[str, TensorRef], meta: dict[str, Any]) -> Array:
    """The float32 block scales, decoding double-quantized ones."""
    absmax = parts["absmax"].load()
    if "nested_absmax" not in parts:
        scales: Array = np.asarray(absmax, dtype=np.float32).reshape(-1)
        return scales
    codes = np.asarray(absmax, dtype=np.uint8).reshape(-1)
    table = np.asarray(parts["nested_quant_map"].load(), dtype=np.float32).reshape(-1)
    outer = np.asarray(parts["nested_absmax"].load(), dtype=np.float32).reshape(-1)
    repeated = np.repeat(outer, int(meta["nested_blocksize"]))[: codes.size]
    decoded: Array = table[codes] * repeated + np.float32(meta.get("nested_offset", 0.0))
    return decoded


def _index_loader(load: Callable[[], Array], index: int) -> Callable[[], Array]:
    def part() -> Array:
        values: Array = read_rows(load, index, index + 1)[0]  # this part's bytes only
        return values

    return part


def _block_loader(
    load: Callable[[], Array], axis: int, start: int, stop: int
) -> Callable[[], Array]:
    def part() -> Array:
        if axis == 0:
            return read_rows(load, start, stop)  # this block's bytes only
        block: Array = load()[:, start:stop]
        return block

    return part


def _interleaved_loader(load: Callable[[], Array], heads: int, which: int) -> Callable[[], Array]:
    def part() -> Array:
        values = load()
        rows, cols = values.shape
        per_head = values.reshape(heads, 3, rows // (3 * heads), cols)
        block: Array = per_head[:, which].reshape(rows // 3, cols)
        return block

    return part


def _parts_along_first_axis(ref: TensorRef, label: str, kind: str | None) -> list[TensorRef]:
    return [
        replace(
            ref,
            name=f"{ref.name} [{label} {i}]",
            shape=ref.shape[1:],
            load=_index_loader(ref.load, i),
            module_kind=kind,
            note=(f"{ref.note}; " if ref.note else "") + f"{label} {i} of {list(ref.shape)}",
        )
        for i in range(ref.shape[0])
    ]


def interleaved_qkv_heads(config: Mapping[str, Any] | None) -> int | None:
    """The head count of a per-head interleaved ``query_key_value`` weight from ``config.json``.

    Only for the architectures whose fused weight is ``[heads, 3, head_dim, hidden]``:
    GPT-NeoX (``num_attention_heads``), BLOOM (``n_head``) and Falcon without multi-query or
    grouped attention (``multi_query`` and ``new_decoder_architecture`` false; those layouts
    hold fewer k/v heads than q heads and are left whole). None otherwise.
    """
    if not config:
        return None
    model_type = str(config.get("model_type", "")).lower()
    if model_type == "falcon" or model_type.startswith("refinedweb"):
        if config.get("multi_query", True) or config.get("new_decoder_architecture", False):
            return None
    elif model_type not in ("gpt_neox", "bloom"):
        return None
    for key in ("num_attention_heads", "n_head"):
        heads = config.get(key)
        if isinstance(heads, int) and not isinstance(heads, bool) and heads > 0:
            return heads
    return None


def fused_qkv_note(ref: TensorRef, fused_heads: int | None) -> str | None:
    """Why a fused q/k/v weight is left whole (None when it can be split)."""
    owner, attr = _owner_and_attr(ref.name)
    module = owner.rsplit(".", 1)[-1].lower()
    if module in INTERLEAVED_QKV_NAMES and attr == "weight" and fused_heads is None:
        return "fused q/k/v interleaved per head: pass fused_heads to split it"
    return None


def _split_qkv(ref: TensorRef, fused_heads: int | None) -> list[TensorRef] | None:
    owner, attr = _owner_and_attr(ref.name)
    module = owner.rsplit(".", 1)[-1].lower()
    if ref.ndim != 2:
        return None
    if attr == "in_proj_weight" or (attr == "weight" and module in FUSED_QKV_NAMES):
        # GPT-2's Conv1D stores (in, 3·out); everything else (3·out, in)
        axis = 1 if module == "c_attn" else 0
        size = ref.shape[axis]
        if size % 3:
            return None
        third = size // 3
        shape = (ref.shape[0], third) if axis else (third, ref.shape[1])
        return [
            replace(
                ref,
                name=f"{ref.name} [{label}]",
                shape=shape,
                load=_block_loader(ref.load, axis, i * third, (i + 1) * third),
                module_kind="linear",
                note=(f"{ref.note}; " if ref.note else "") + f"{label} block of fused q/k/v",
            )
            for i, label in enumerate("qkv")
        ]
    if attr == "weight" and module in INTERLEAVED_QKV_NAMES and fused_heads:
        rows = ref.shape[0]
        if rows % (3 * fused_heads):
            return None
        return [
            replace(
                ref,
                name=f"{ref.name} [{label}]",
                shape=(rows // 3, ref.shape[1]),
                load=_interleaved_loader(ref.load, fused_heads, i),
                module_kind="linear",
                note=(f"{ref.note}; " if ref.note else "")
                + f"{label} of fused q/k/v interleaved over {fused_heads} heads",
            )
            for i, label in enumerate("qkv")
        ]
    return None


def is_experts(ref: TensorRef) -> bool:
    """A 3-D Mixture-of-Experts weight stored ``[experts, out, in]``."""
    return ref.ndim == 3 and (
        ref.module_kind == "experts"
        or (ref.module_kind is None and _EXPERTS.search(ref.name) is not None)
    )


#: PyTorch's gate order in ``weight_ih_l*``/``weight_hh_l*`` (blocks of rows), by gate count.
RNN_GATES = {4: ("i", "f", "g", "o"), 3: ("r", "z", "n")}


def rnn_gate_count(ref: TensorRef, refs: dict[str, TensorRef]) -> int | None:
    """Gates stacked in a PyTorch LSTM (4) or GRU (3) weight, from its ``weight_hh`` sibling.

    ``weight_hh_l{k}`` is (gates · hidden, hidden): the ratio of its sides is the gate count.
    None for a plain RNN, an LSTM with ``proj_size`` (no integer ratio) or another name.
    """
    if not is_rnn_name(ref.name) or ref.ndim != 2:
        return None
    sibling = refs.get(ref.name.replace("weight_ih_", "weight_hh_"))
    if sibling is None or sibling.ndim != 2 or sibling.shape[1] == 0:
        return None
    rows, hidden = sibling.shape
    gates = rows // hidden if rows % hidden == 0 else 0
    if gates not in RNN_GATES or ref.shape[0] != gates * hidden:
        return None
    return gates


def _split_gates(ref: TensorRef, gates: int) -> list[TensorRef]:
    hidden = ref.shape[0] // gates
    kind = "LSTM" if gates == 4 else "GRU"
    return [
        replace(
            ref,
            name=f"{ref.name} [{label}]",
            shape=(hidden, ref.shape[1]),
            load=_block_loader(ref.load, 0, i * hidden, (i + 1) * hidden),
            module_kind="rnn",
            note=(f"{ref.note}; " if ref.note else "") + f"{label} gate of a {kind} weight",
        )
        for i, label in enumerate(RNN_GATES[gates])
    ]


def expand(
    ref: TensorRef,
    *,
    split_fused: bool,
    fused_heads: int | None = None,
    rnn_gates: int | None = None,
) -> list[TensorRef]:
    """The matrices-to-be of one tensor: itself, or its experts / directions / q, k, v parts.

    With ``split_fused``, a PyTorch LSTM/GRU weight of ``rnn_gates`` stacked gates
    (:func:`rnn_gate_count`) gives one part per gate (``[i]``, ``[f]``, ``[g]``, ``[o]``;
    ``[r]``, ``[z]``, ``[n]``).
    """
    if ref.skip_reason is not None or ref.problem is not None:
        return [ref]
    if is_experts(ref):
        return _parts_along_first_axis(ref, "expert", "linear")
    if ref.ndim == 3 and ref.module_kind == "rnn":
        return _parts_along_first_axis(ref, "direction", "rnn")
    if split_fused:
        if rnn_gates in RNN_GATES:
            return _split_gates(ref, rnn_gates)
        parts = _split_qkv(ref, fused_heads)
        if parts is not None:
            return parts
        why = fused_qkv_note(ref, fused_heads)
        if why is not None:
            return [replace(ref, note=(f"{ref.note}; " if ref.note else "") + why)]
    return [ref]
