"""Weights packed several codes to a word or byte, dequantized to float32 before analysis.

Five layouts are read, each recognised from its tensor names and shapes alone:

* **compressed-tensors ``pack-quantized``** (llm-compressor / vLLM W4A16, W8A16 checkpoints):
  ``X.weight_packed`` int32 ``[out, ⌈in·b/32⌉]`` holds the b-bit codes of each row as one dense
  little-endian bit stream (element k at bits k·b … k·b + b − 1), each stored as the unsigned
  value q + 2^(b−1); ``X.weight_shape`` the real ``[out, in]``; ``X.weight_scale`` one scale
  per output channel and group (``[out, groups]``, ``[out, 1]`` per channel, one value per
  tensor); optional ``X.weight_zero_point`` (asymmetric: packed the same way along the output
  axis, ``[⌈out·b/32⌉, groups]``, or as plain integers ``[out, groups]``) and ``X.weight_g_idx``
  (the group of each input column, activation ordering). W = (q − zero_point) · scale.
* **NVFP4** (compressed-tensors ``nvfp4-pack-quantized``, ModelOpt): ``X.weight_packed``
  uint8 ``[out, in/2]``, two FP4 E2M1 codes per byte (low nibble first; magnitudes 0, ½, 1,
  1½, 2, 3, 4, 6, bit 3 the sign); ``X.weight_scale`` float8 E4M3 ``[out, in/16]``; optional
  ``X.weight_global_scale``. W = e2m1 · scale / global_scale.
* **MXFP4** (gpt-oss): ``X_blocks`` uint8 ``[…, groups, 16]``, 32 E2M1 codes a group (low
  nibble first), and ``X_scales`` uint8 ``[…, groups]``, E8M0 exponents: w = e2m1 · 2^(e − 127);
  the weight is ``X``, ``[…, groups·32]`` (an ``experts`` tensor then splits per expert, each
  decoded from its own bytes).
* **AutoAWQ GEMM** (4-bit): ``X.qweight`` int32 ``[in, out/8]``, ``X.qzeros`` int32
  ``[groups, out/8]``, ``X.scales`` ``[groups, out]``. Each word holds 8 nibbles (least
  significant first) in AWQ's interleaved order: the nibble at position p of a word is output
  column 8·w + (0, 2, 4, 6, 1, 3, 5, 7)[p]. Wᵀ = (q − zero) · scale with groups of input rows.
* **GPTQ** (AutoGPTQ/GPTQModel ``gptq`` format, 2/3/4/8-bit): ``X.qweight`` int32
  ``[in·b/32, out]`` packs each output column's codes along the input axis, ``X.qzeros`` int32
  ``[groups, out·b/32]`` along the output axis, each as one dense bit stream, least significant
  bits first (3-bit codes straddle words: 32 codes in 3 words),
  ``X.scales`` ``[groups, out]``, ``X.g_idx`` the group of each input row (act-order).
  W[o, i] = scale[g, o] · (q[i, o] − (zero[g, o] + 1)), g = g_idx[i]: the "+ 1" is the
  ``gptq`` (v1) checkpoint convention (a symmetric 4-bit layer stores its zeros 8 as 7s,
  ``0x77777777``); ``quantization_config.checkpoint_format = "gptq_v2"`` in the checkpoint's
  ``config.json`` drops it. Told apart from AWQ by the shape of ``qweight``.

The dequantized weight takes the name ``X.weight`` (the name of the same layer in the
unquantized model) and says ``dequantized (…)`` in its note; the metadata tensors are listed
as skipped. Shapes are checked when planning; the small ``weight_shape`` tensor is read then.
Nothing else is read until the layer is analysed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from alphahat.errors import AlphahatError
from alphahat.sources.base import FLOAT_DTYPES, RowReader, TensorRef, read_rows

Array = npt.NDArray[np.generic]

#: Metadata tensors of a compressed-tensors packed weight ``X.weight_packed``.
COMPRESSED_TENSORS_META = (
    "weight_shape",
    "weight_scale",
    "weight_zero_point",
    "weight_g_idx",
    "weight_global_scale",
    "input_global_scale",
)
#: The 8 magnitudes of FP4 E2M1 (codes 0–7; bit 3 is the sign), as in the OCP MX specification.
E2M1_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
#: Elements per float8 scale of NVFP4.
NVFP4_GROUP = 16
#: Name suffixes of an MXFP4 weight (gpt-oss): ``X_blocks`` codes and ``X_scales`` exponents.
MXFP4_BLOCKS, MXFP4_SCALES = "_blocks", "_scales"
#: AutoAWQ's order of the 8 output columns inside one int32 word (position → column).
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
#: Group sizes tried, in order, when a partial last group makes the size ambiguous.
_GROUP_SIZES = (128, 64, 32, 256, 16, 512, 1024)


def unpack_bits(words: npt.NDArray[np.integer], bits: int, count: int) -> npt.NDArray[np.uint8]:
    """The first ``count`` unsigned ``bits``-bit codes of each row of int32 ``words``.

    Each row is one little-endian bit stream: code k occupies bits k·b … k·b + b − 1 counted
    from the least significant bit of the row's first word.
    """
    rows = words.shape[0]
    raw = np.ascontiguousarray(words, dtype="<u4").reshape(rows, -1).view(np.uint8)
    if bits == 8:
        return np.ascontiguousarray(raw[:, :count])
    if bits == 4:
        return _nibbles(raw, count)
    stream = np.unpackbits(raw, axis=1, bitorder="little")[:, : count * bits]
    weights = (1 << np.arange(bits, dtype=np.uint16)).astype(np.uint16)
    values = (stream.reshape(rows, count, bits).astype(np.uint16) * weights).sum(axis=2)
    codes_any: npt.NDArray[np.uint8] = values.astype(np.uint8)
    return codes_any


def _group_size(size: int, groups: int) -> int | None:
    """The group length g with ⌈size / g⌉ = groups: exact when it divides, else a usual one."""
    if groups <= 0:
        return None
    if size % groups == 0:
        return size // groups
    return next((g for g in _GROUP_SIZES if -(-size // g) == groups), None)


def _bits_for(columns: int, packed_columns: int) -> int | None:
    """The code width b in 1…8 with ⌈columns·b/32⌉ = packed_columns, when exactly one fits."""
    fits = [b for b in range(1, 9) if -(-columns * b // 32) == packed_columns]
    return fits[0] if len(fits) == 1 else None


def _int_values(ref: TensorRef) -> list[int]:
    values = np.asarray(ref.load()).reshape(-1)
    if values.dtype.kind not in "iu":
        raise AlphahatError(f"{ref.name} holds {values.dtype}, not integers")
    return [int(v) for v in values]


def packed_metadata_skip(ref: TensorRef, names: Collection[str]) -> str | None:
    """Why a metadata tensor of a compressed-tensors packed weight is not a layer, or None."""
    owner, _, attr = ref.name.rpartition(".")
    if attr in COMPRESSED_TENSORS_META and f"{owner}.weight_packed" in names:
        return f"compressed-tensors quantization metadata ({attr}) of {owner}.weight_packed"
    return None


def dequantize_packed(
    ref: TensorRef, refs: dict[str, TensorRef], model_config: Mapping[str, Any] | None = None
) -> TensorRef:
    """A packed weight (see the module docstring) as float32; others unchanged.

    ``model_config``: the checkpoint's ``config.json``, whose ``quantization_config.
    checkpoint_format`` says which zero-point convention a GPTQ checkpoint uses.
    """
    owner, _, attr = ref.name.rpartition(".")
    if ref.name.endswith(MXFP4_BLOCKS) and ref.dtype == "uint8" and ref.ndim >= 3:
        return _mxfp4(ref, refs)
    if ref.ndim != 2 or f"{owner}.weight" in refs:
        return ref
    if attr == "weight_packed" and ref.dtype == "uint8" and f"{owner}.weight_scale" in refs:
        return _nvfp4(ref, owner, refs)
    if ref.dtype != "int32":
        return ref
    if attr == "weight_packed" and f"{owner}.weight_scale" in refs:
        return _compressed_tensors(ref, owner, refs)
    if attr == "qweight" and f"{owner}.scales" in refs and f"{owner}.qzeros" in refs:
        scales = refs[f"{owner}.scales"]
        if scales.ndim == 2 and ref.shape[1] * 8 == scales.shape[1]:  # AWQ: [in, out/8]
            return _awq(ref, owner, refs)
        if scales.ndim == 2 and ref.shape[1] == scales.shape[1]:  # GPTQ: [in·b/32, out]
            quantization = (model_config or {}).get("quantization_config") or {}
            v2 = isinstance(quantization, dict) and quantization.get("checkpoint_format") == (
                "gptq_v2"
            )
            return _gptq(ref, owner, refs, zero_offset=0 if v2 else 1)
    return ref


def _input_groups(
    g_idx: TensorRef | None, inp: int, group: int, groups: int
) -> npt.NDArray[np.intp]:
    """The scale group of each input: ``g_idx`` (act-order) if given, else i // ``group``."""
    if g_idx is None:
        return np.arange(inp) // group
    index = np.asarray(g_idx.load(), dtype=np.intp).reshape(-1)
    if index.min(initial=0) < 0 or index.max(initial=0) >= groups:
        raise AlphahatError(f"{g_idx.name} names groups outside 0…{groups - 1}")
    return index


def _failed(ref: TensorRef, owner: str, reason: str) -> TensorRef:
    return replace(ref, name=f"{owner}.weight", problem=reason)


def _linear_weight(
    ref: TensorRef, owner: str, shape: tuple[int, int], load: Callable[[], Array], how: str
) -> TensorRef:
    """The dequantized ``owner.weight`` (out, in), float32, noting ``how`` and the stored name."""
    return replace(
        ref,
        name=f"{owner}.weight",
        shape=shape,
        dtype="float32",
        load=load,
        module_kind=ref.module_kind or "linear",
        note=f"dequantized ({how}; stored as {ref.name})",
    )


def _compressed_tensors(ref: TensorRef, owner: str, refs: dict[str, TensorRef]) -> TensorRef:
    scale = refs[f"{owner}.weight_scale"]
    zero = refs.get(f"{owner}.weight_zero_point")
    g_idx = refs.get(f"{owner}.weight_g_idx")
    shape_ref = refs.get(f"{owner}.weight_shape")
    try:
        shape = _int_values(shape_ref) if shape_ref is not None else []
    except (AlphahatError, OSError, ValueError) as exc:
        return _failed(ref, owner, f"compressed-tensors weight_shape: {exc}")
    if len(shape) != 2 or min(shape) <= 0 or shape[0] != ref.shape[0]:
        return _failed(ref, owner, f"compressed-tensors weight_shape {shape} does not fit")
    out, inp = shape
    bits = _bits_for(inp, ref.shape[1])
    if bits is None:
        return _failed(ref, owner, f"cannot tell the code width of {inp} columns in {ref.shape}")
    if scale.dtype not in FLOAT_DTYPES:
        return _failed(ref, owner, f"compressed-tensors weight_scale is {scale.dtype}")
    if scale.numel == 1:
        groups, how = 1, "per tensor"
    elif scale.ndim == 2 and scale.shape[0] == out:
        groups = scale.shape[1]
        how = "per channel" if groups == 1 else f"groups of {_group_size(inp, groups)}"
    else:
        return _failed(ref, owner, f"weight_scale of shape {list(scale.shape)} does not fit")
    group = _group_size(inp, groups)
    if group is None:
        return _failed(ref, owner, f"{groups} scale groups do not divide {inp} columns")
    if g_idx is not None and g_idx.shape != (inp,):
        return _failed(ref, owner, f"weight_g_idx of shape {list(g_idx.shape)}, not [{inp}]")
    zero_packed = (
        zero is not None
        and zero.dtype == "int32"
        and zero.shape == (-(-out * bits // 32), groups)
        and groups * out > 1
    )
    if zero is not None and not zero_packed and zero.numel != out * groups and zero.numel != 1:
        return _failed(ref, owner, f"weight_zero_point of shape {list(zero.shape)} does not fit")
    offset = 1 << (bits - 1)

    def load() -> Array:
        codes = unpack_bits(np.asarray(ref.load()), bits, inp).astype(np.float32) - offset
        scales = np.asarray(scale.load(), dtype=np.float32).reshape(-1, groups)
        if scales.shape[0] == 1:
            scales = np.broadcast_to(scales, (out, groups))
        columns = _input_groups(g_idx, inp, group, groups)
        if zero is not None:
            raw = np.asarray(zero.load())
            zeros = (
                unpack_bits(raw.T, bits, out).T.astype(np.float32) - offset
                if zero_packed
                else np.broadcast_to(raw.astype(np.float32).reshape(-1, groups), (out, groups))
            )
            codes -= zeros[:, columns]
        values: Array = np.multiply(codes, scales[:, columns])
        return values

    zero_note = ", asymmetric" if zero is not None else ""
    how = f"compressed-tensors int{bits}, {how}{zero_note}"
    return _linear_weight(ref, owner, (out, inp), load, how)


def _nvfp4(ref: TensorRef, owner: str, refs: dict[str, TensorRef]) -> TensorRef:
    """NVFP4: two E2M1 codes per byte (low nibble first), one float8 scale per 16 inputs."""
    scale = refs[f"{owner}.weight_scale"]
    global_scale = refs.get(f"{owner}.weight_global_scale")
    out, inp = ref.shape[0], ref.shape[1] * 2
    if (
        scale.dtype not in FLOAT_DTYPES
        or scale.shape != (out, -(-inp // NVFP4_GROUP))
        or (global_scale is not None and global_scale.numel != 1)
    ):
        return _failed(
            ref,
            owner,
            f"FP4 weight_packed {list(ref.shape)} with weight_scale {list(scale.shape)} "
            f"({scale.dtype}): layout not recognised",
        )
    table = np.asarray(E2M1_VALUES, dtype=np.float32)
    signed = np.concatenate([table, -table])

    def load() -> Array:
        codes = _nibbles(np.asarray(ref.load(), dtype=np.uint8), inp)
        scales = np.asarray(scale.load(), dtype=np.float32)
        if global_scale is not None:
            scales = scales / np.float32(np.asarray(global_scale.load()).reshape(-1)[0])
        groups = np.arange(inp) // NVFP4_GROUP
        values: Array = np.multiply(signed[codes], scales[:, groups])
        return values

    glob = "with a global scale" if global_scale is not None else "no global scale"
    how = f"NVFP4: E2M1 · float8 scale per {NVFP4_GROUP}, {glob}"
    return _linear_weight(ref, owner, (out, inp), load, how)


def _nibbles(packed: npt.NDArray[np.uint8], count: int) -> npt.NDArray[np.uint8]:
    """The 4-bit codes of each row of bytes, low nibble first."""
    codes = np.empty((packed.shape[0], packed.shape[1] * 2), dtype=np.uint8)
    codes[:, 0::2] = packed & 0x0F
    codes[:, 1::2] = packed >> 4
    return np.ascontiguousarray(codes[:, :count])


def mxfp4_scales_skip(ref: TensorRef, names: Collection[str]) -> str | None:
    """Why the exponent tensor of an MXFP4 weight is not a layer of its own, or None."""
    if ref.name.endswith(MXFP4_SCALES):
        blocks = ref.name.removesuffix(MXFP4_SCALES) + MXFP4_BLOCKS
        if blocks in names:
            return f"MXFP4 block exponents of {blocks} (used to dequantize it)"
    return None


def _mxfp4(ref: TensorRef, refs: dict[str, TensorRef]) -> TensorRef:
    """MXFP4 (gpt-oss): ``X_blocks`` and ``X_scales`` → the weight ``X``, ``[…, groups·32]``.

    ``X_blocks`` uint8 ``[…, groups, 16]`` holds 32 E2M1 codes a group (low nibble first),
    ``X_scales`` uint8 ``[…, groups]`` their E8M0 exponents e (scale 2^(e − 127)). A range of
    the first axis (one expert) is decoded alone when the source can read it alone.
    """
    name = ref.name.removesuffix(MXFP4_BLOCKS)
    scales = refs.get(name + MXFP4_SCALES)
    if scales is None:
        return ref
    if ref.shape[-1] != 16 or scales.shape != ref.shape[:-1] or scales.dtype != "uint8":
        return replace(
            ref,
            name=name,
            problem=f"MXFP4 blocks {list(ref.shape)} with scales {list(scales.shape)} "
            f"({scales.dtype}): layout not recognised",
        )
    shape = (*ref.shape[:-2], ref.shape[-2] * 32)
    table = np.asarray(E2M1_VALUES, dtype=np.float32)
    signed = np.concatenate([table, -table])

    def read(start: int, stop: int) -> Array:
        blocks = np.asarray(read_rows(ref.load, start, stop), dtype=np.uint8)
        exponents = np.asarray(read_rows(scales.load, start, stop), dtype=np.int32) - 127
        codes = _nibbles(blocks.reshape(-1, 16), 32).reshape(*blocks.shape[:-1], 32)
        values = np.ldexp(signed[codes], exponents[..., None]).astype(np.float32, copy=False)
        out: Array = values.reshape((stop - start, *shape[1:]))
        return out

    return replace(
        ref,
        name=name,
        shape=shape,
        dtype="float32",
        load=RowReader(read, shape[0]),
        note=f"dequantized (MXFP4: E2M1 · 2^(e − 127) per 32; stored as {ref.name})",
    )


def _gptq(ref: TensorRef, owner: str, refs: dict[str, TensorRef], zero_offset: int) -> TensorRef:
    """GPTQ: codes packed along the input axis, zeros along the output axis (both LSB first)."""
    scale, zero, g_idx = (
        refs[f"{owner}.scales"],
        refs[f"{owner}.qzeros"],
        refs.get(f"{owner}.g_idx"),
    )
    groups, out = scale.shape
    inp = g_idx.numel if g_idx is not None and g_idx.ndim == 1 else ref.shape[0] * 8
    bits = ref.shape[0] * 32 // inp if inp and (ref.shape[0] * 32) % inp == 0 else 0
    group = _group_size(inp, groups)
    if (
        bits not in (2, 3, 4, 8)
        or group is None
        or zero.shape != (groups, -(-out * bits // 32))
        or zero.dtype != "int32"
        or scale.dtype not in FLOAT_DTYPES
    ):
        return _failed(
            ref,
            owner,
            f"GPTQ qweight {list(ref.shape)} with qzeros {list(zero.shape)}, scales "
            f"{list(scale.shape)} ({scale.dtype}) and {inp} inputs: layout not recognised",
        )

    def load() -> Array:
        codes = unpack_bits(np.asarray(ref.load()).T, bits, inp).astype(np.float32)  # (out, in)
        zeros = unpack_bits(np.asarray(zero.load()), bits, out).astype(np.float32) + zero_offset
        scales = np.asarray(scale.load(), dtype=np.float32)
        rows = _input_groups(g_idx, inp, group, groups)
        values: Array = np.multiply(codes - zeros[rows].T, scales[rows].T)
        return values

    convention = "zero + 1, GPTQ v1" if zero_offset else "gptq_v2 zeros"
    how = f"GPTQ int{bits}, groups of {group}, {convention}"
    return _linear_weight(ref, owner, (out, inp), load, how)


def _awq(ref: TensorRef, owner: str, refs: dict[str, TensorRef]) -> TensorRef:
    scale, zero = refs[f"{owner}.scales"], refs[f"{owner}.qzeros"]
    inp, out = ref.shape[0], scale.shape[1]
    groups = scale.shape[0]
    group = _group_size(inp, groups)
    if group is None or zero.shape != (groups, ref.shape[1]) or scale.dtype not in FLOAT_DTYPES:
        return _failed(
            ref,
            owner,
            f"AWQ qweight {list(ref.shape)} with qzeros {list(zero.shape)} and scales "
            f"{list(scale.shape)} ({scale.dtype}): layout not recognised",
        )
    # position p of each word holds column AWQ_ORDER[p]: gather the columns back in order
    order = np.argsort(np.asarray(AWQ_ORDER))
    columns = (np.arange(out) // 8 * 8 + order[np.arange(out) % 8]).astype(np.intp)

    def unpack(words: Array) -> npt.NDArray[np.float32]:
        codes = unpack_bits(np.asarray(words), 4, out)
        return codes[:, columns].astype(np.float32)

    def load() -> Array:
        rows = np.arange(inp) // group
        q = unpack(ref.load())
        zeros = unpack(zero.load())
        scales = np.asarray(scale.load(), dtype=np.float32)
        transposed = (q - zeros[rows]) * scales[rows]  # (in, out)
        values: Array = np.ascontiguousarray(transposed.T)
        return values

    how = f"AWQ int4, groups of {group}, stored (in, out/8)"
    return _linear_weight(ref, owner, (out, inp), load, how)


__all__ = [
    "AWQ_ORDER",
    "mxfp4_scales_skip",
    "COMPRESSED_TENSORS_META",
    "dequantize_packed",
    "packed_metadata_skip",
    "unpack_bits",
]
