"""GGUF files written by ``gguf.GGUFWriter``: float, bf16, quantized (dequantized and labelled),
unsupported quantizations, experts, and broken files. Q8_0 is decoded independently here from
its published block layout (a float16 scale d, then 32 int8 values q; x = d·q)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import alphahat
from alphahat.errors import SourceError

gguf = pytest.importorskip("gguf")
T = gguf.GGMLQuantizationType
RNG = np.random.default_rng(3)
W = RNG.standard_normal((48, 64)).astype(np.float32)


def log_norm(m: np.ndarray) -> float:
    return math.log10((np.linalg.svd(m.astype(np.float64), compute_uv=False) ** 2).sum())


def write(path: Path, tensors: dict[str, tuple[np.ndarray, object]]) -> Path:
    writer = gguf.GGUFWriter(str(path), "llama")
    for name, (array, qtype) in tensors.items():
        if qtype is None:
            writer.add_tensor(name, array)
        else:
            writer.add_tensor(name, array, raw_shape=array.shape, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    block, size = gguf.GGML_QUANT_SIZES[T.Q8_K]
    unsupported = np.zeros((4, W.shape[1] * 4 // block * size), np.uint8)
    return write(
        tmp_path_factory.mktemp("gguf") / "model.gguf",
        {
            "token_embd.weight": (RNG.standard_normal((100, 64)).astype(np.float32), None),
            "blk.0.attn_q.weight": (W, None),
            "blk.0.attn_k.weight": (W.astype(np.float16), None),
            "blk.0.attn_v.weight": (gguf.quants.quantize(W, T.BF16), T.BF16),
            "blk.0.ffn_up.weight": (gguf.quants.quantize(W, T.Q8_0), T.Q8_0),
            "blk.0.ffn_down.weight": (gguf.quants.quantize(W, T.Q4_0), T.Q4_0),
            "blk.0.ffn_gate_exps.weight": (
                RNG.standard_normal((3, 16, 32)).astype(np.float32),
                None,
            ),
            "blk.0.attn_norm.weight": (np.ones(64, np.float32), None),
            "blk.0.q8k.weight": (unsupported, T.Q8_K),
            "blk.0.counts": (np.arange(12, dtype=np.int32).reshape(3, 4), None),
        },
    )


def test_float_tensors_read_as_stored(model):
    report = alphahat.analyze(model, min_evals=1)
    got = report.details.set_index("name")
    assert got.loc["blk.0.attn_q.weight", "shape"] == "48x64"
    assert got.loc["blk.0.attn_q.weight", "log_norm"] == pytest.approx(log_norm(W), rel=1e-12)
    assert got.loc["blk.0.attn_k.weight", "dtype"] == "float16"
    assert got.loc["blk.0.attn_k.weight", "log_norm"] == pytest.approx(
        log_norm(W.astype(np.float16)), rel=1e-12
    )
    # bf16 widened exactly: the top 16 bits of each float32 (round-to-nearest by the writer)
    bf = got.loc["blk.0.attn_v.weight"]
    assert bf["dtype"] == "bfloat16" and bf["note"] == ""
    assert bf["log_norm"] == pytest.approx(log_norm(W), rel=1e-2)
    assert got.loc["token_embd.weight", "kind"] == "embedding"


def test_quantized_tensors_are_dequantized_and_labelled(model, tmp_path):
    report = alphahat.analyze(model, min_evals=1, keep_eigenvalues=True)
    got = report.details.set_index("name")
    for name, qtype in (("blk.0.ffn_up.weight", "Q8_0"), ("blk.0.ffn_down.weight", "Q4_0")):
        assert got.loc[name, "note"] == f"dequantized from {qtype} (gguf.quants)"
        assert got.loc[name, "dtype"] == "float32"
        assert got.loc[name, "shape"] == "48x64"
    # Q8_0 decoded by hand from the bytes in the file
    reader = gguf.GGUFReader(str(model))
    raw = next(t for t in reader.tensors if t.name == "blk.0.ffn_up.weight").data
    blocks = np.asarray(raw).reshape(48, -1, 34)
    scale = blocks[:, :, :2].copy().view(np.float16).astype(np.float32)
    values = blocks[:, :, 2:].copy().view(np.int8).astype(np.float32)
    decoded = (scale * values).reshape(48, 64)
    assert np.abs(decoded - W).max() < 0.05  # Q8_0 is close to the original
    lam = np.sort(np.linalg.svd(decoded.astype(np.float64), compute_uv=False) ** 2)
    np.testing.assert_allclose(report.eigenvalues["blk.0.ffn_up.weight"], lam, rtol=1e-10)


def test_unsupported_quantization_and_integers_are_skipped_with_reason(model):
    cov = alphahat.describe(model).set_index("name")
    assert cov.loc["blk.0.q8k.weight", "status"] == "skipped"
    assert "Q8_K" in cov.loc["blk.0.q8k.weight", "reason"]
    assert "cannot dequantize" in cov.loc["blk.0.q8k.weight", "reason"]
    assert cov.loc["blk.0.counts", "status"] == "skipped"
    assert "integer" in cov.loc["blk.0.counts", "reason"]
    assert cov.loc["blk.0.attn_norm.weight", "status"] == "skipped"


def test_expert_tensors_are_split(model):
    cov = alphahat.describe(model).set_index("name")
    parts = [n for n in cov.index if n.startswith("blk.0.ffn_gate_exps.weight")]
    assert parts == [f"blk.0.ffn_gate_exps.weight [expert {e}]" for e in range(3)]
    assert (cov.loc[parts, "shape"] == "16x32").all()


def test_every_tensor_listed_once(model):
    reader = gguf.GGUFReader(str(model))
    names = {t.name for t in reader.tensors}
    cov = alphahat.describe(model)
    listed = {n.split(" [")[0] for n in cov["name"]}
    assert listed == names


@pytest.mark.parametrize("keep", [0, 16, 100, 0.5, 0.97])
def test_truncated_file_names_it(model, tmp_path, keep):
    data = model.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(data[:cut])
    try:
        frame = alphahat.describe(bad)
    except SourceError as exc:
        assert "cut.gguf" in str(exc)
    else:  # header intact: the tensors whose bytes are missing are failed, not read
        assert (frame["status"] == "failed").any()
        assert frame.loc[frame["status"] == "failed", "reason"].str.contains("truncated").all()


def test_garbage_file(tmp_path):
    bad = tmp_path / "noise.gguf"
    bad.write_bytes(RNG.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(SourceError, match="noise.gguf"):
        alphahat.describe(bad)


@pytest.mark.parametrize("qtype", [T.Q8_0, T.BF16, None])
def test_a_quantized_packed_expert_is_decoded_alone(tmp_path, qtype):
    """Each expert of a packed [E, out, in] GGUF tensor decodes its own rows of the memory map
    (Q8_0 blocks never straddle rows), equal to the whole tensor's slice; the expert's
    eigenvalues are those of the Q8_0 bytes decoded by hand."""
    from alphahat.layers.semantics import expand
    from alphahat.sources import open_source
    from alphahat.sources.base import RowReader

    experts = RNG.standard_normal((4, 16, 64)).astype(np.float32)
    stored = experts if qtype is None else gguf.quants.quantize(experts, qtype)
    name = "blk.0.ffn_down_exps.weight"
    path = write(tmp_path / "moe.gguf", {name: (stored, qtype)})
    with open_source(path) as source:
        (ref,) = list(source.tensors())
        assert isinstance(ref.load, RowReader)
        whole = ref.load()
        parts = expand(ref, split_fused=False)
        assert [p.name for p in parts] == [f"{name} [expert {e}]" for e in range(4)]
        for e, part in enumerate(parts):
            np.testing.assert_array_equal(part.load(), whole[e])
    if qtype == T.Q8_0:
        raw = np.asarray(next(t for t in gguf.GGUFReader(str(path)).tensors).data)
        blocks = raw.reshape(4, 16, -1, 34)
        scale = blocks[..., :2].copy().view(np.float16).astype(np.float32)
        decoded = (scale * blocks[..., 2:].copy().view(np.int8).astype(np.float32)).reshape(
            4, 16, 64
        )
        report = alphahat.analyze(path, min_evals=1, keep_eigenvalues=True)
        lam = np.sort(np.linalg.svd(decoded[2].astype(np.float64), compute_uv=False) ** 2)
        np.testing.assert_allclose(report.eigenvalues[f"{name} [expert 2]"], lam, rtol=1e-10)
