"""Layer semantics: fused q/k/v, Mixture-of-Experts, RNNs, bilinear, transposed convs, tied and
quantized weights. Expected spectra are NumPy SVDs of the sub-matrices cut out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

import alphahat

torch = pytest.importorskip("torch")
nn = torch.nn

RNG = np.random.default_rng(7)


def log_norm(matrices: list[np.ndarray]) -> float:
    lam = np.concatenate(
        [np.linalg.svd(m.astype(np.float64), compute_uv=False) ** 2 for m in matrices]
    )
    return math.log10(lam.sum())


def lam_max(m: np.ndarray) -> float:
    return float(np.linalg.svd(m.astype(np.float64), compute_uv=False)[0] ** 2)


def rows(report) -> dict:
    return report.details.set_index("name").to_dict("index")


def test_multihead_attention_in_proj_split_on_request():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(embed_dim=48, num_heads=4)
    w = mha.in_proj_weight.detach().numpy()
    whole = rows(alphahat.analyze(mha))
    assert set(whole) == {"in_proj_weight", "out_proj.weight"}
    assert whole["in_proj_weight"]["kind"] == "linear"
    assert (whole["in_proj_weight"]["N"], whole["in_proj_weight"]["M"]) == (144, 48)
    split = rows(alphahat.analyze(mha, split_fused=True))
    assert set(split) == {"in_proj_weight [q]", "in_proj_weight [k]", "in_proj_weight [v]",
                          "out_proj.weight"}  # fmt: skip
    for i, part in enumerate("qkv"):
        block = w[i * 48 : (i + 1) * 48]
        row = split[f"in_proj_weight [{part}]"]
        assert row["log_norm"] == pytest.approx(log_norm([block]), rel=1e-10)
        assert row["lambda_max"] == pytest.approx(lam_max(block), rel=1e-10)
        assert (row["N"], row["M"]) == (48, 48)
    # the ids count the parts, in order
    ids = [split[f"in_proj_weight [{p}]"]["layer_id"] for p in "qkv"]
    assert ids == [0, 1, 2] and split["out_proj.weight"]["layer_id"] == 3
    # a name filter on the tensor selects all its parts
    picked = alphahat.analyze(mha, split_fused=True, layers=["in_proj_weight"])
    assert len(picked.details) == 3


def test_gpt2_c_attn_split_along_its_output_axis():
    w = RNG.standard_normal((32, 96)).astype(np.float32)  # Conv1D: (in, 3·out)
    split = rows(alphahat.analyze({"h.0.attn.c_attn.weight": w}, split_fused=True))
    for i, part in enumerate("qkv"):
        row = split[f"h.0.attn.c_attn.weight [{part}]"]
        assert row["log_norm"] == pytest.approx(log_norm([w[:, i * 32 : (i + 1) * 32]]), rel=1e-10)


def test_interleaved_query_key_value_needs_the_head_count():
    heads, dim, hidden = 4, 8, 32
    w = RNG.standard_normal((3 * heads * dim, hidden))
    state = {"gpt_neox.layers.0.attention.query_key_value.weight": w}
    name = "gpt_neox.layers.0.attention.query_key_value.weight"
    whole = alphahat.describe(state, split_fused=True).set_index("name")
    assert list(whole.index) == [name]
    assert "fused_heads" in whole.loc[name, "note"]
    split = rows(alphahat.analyze(state, split_fused=True, fused_heads=heads))
    per_head = w.reshape(heads, 3, dim, hidden)
    for i, part in enumerate("qkv"):
        block = per_head[:, i].reshape(heads * dim, hidden)
        assert split[f"{name} [{part}]"]["log_norm"] == pytest.approx(log_norm([block]), rel=1e-10)


def test_moe_experts_are_analysed_one_by_one():
    experts = RNG.standard_normal((4, 24, 16)).astype(np.float32)
    name = "model.layers.0.mlp.experts.gate_proj"
    report = alphahat.analyze({name: experts, "model.layers.0.mlp.gate.weight": experts[0, :4]})
    got = rows(report)
    for e in range(4):
        row = got[f"{name} [expert {e}]"]
        assert row["kind"] == "linear" and row["num_matrices"] == 1
        assert row["log_norm"] == pytest.approx(log_norm([experts[e]]), rel=1e-10)
    ids = [got[f"{name} [expert {e}]"]["layer_id"] for e in range(4)]
    assert ids == sorted(ids) and len(set(ids)) == 4
    # describe lists the parts, and every part names its tensor
    described = alphahat.describe({name: experts})
    assert described["name"].str.startswith(name).all() and len(described) == 4


class Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(16, 12, num_layers=2, bidirectional=True)
        self.gru = nn.GRU(16, 10)
        self.bilinear = nn.Bilinear(12, 9, 5)
        self.deconv = nn.ConvTranspose2d(6, 4, 3)
        self.conv1 = nn.Conv1d(5, 7, 4)


def test_rnn_bilinear_transposed_conv_and_conv1d():
    torch.manual_seed(1)
    model = Recurrent()
    params = {n: p.detach().numpy() for n, p in model.named_parameters()}
    got = rows(alphahat.analyze(model, min_evals=1))
    for name in ("lstm.weight_ih_l0", "lstm.weight_hh_l1_reverse", "gru.weight_hh_l0"):
        assert got[name]["kind"] == "rnn", name
        assert got[name]["log_norm"] == pytest.approx(log_norm([params[name]]), rel=1e-10)
    # the same names without the module: the kind comes from the name
    by_name = rows(alphahat.analyze({"lstm.weight_ih_l0": params["lstm.weight_ih_l0"]}))
    assert by_name["lstm.weight_ih_l0"]["kind"] == "rnn"
    # nn.Bilinear (out, in1, in2): one in1 × in2 matrix per output, not a conv1d
    w = params["bilinear.weight"]
    bil = got["bilinear.weight"]
    assert bil["kind"] == "bilinear"
    assert (bil["N"], bil["M"], bil["num_matrices"]) == (12, 9, 5)
    assert bil["log_norm"] == pytest.approx(log_norm(list(w)), rel=1e-10)
    # ConvTranspose2d (in, out, kh, kw): one in × out matrix per kernel position, scaled 1/√2
    w = params["deconv.weight"].astype(np.float64)
    dec = got["deconv.weight"]
    assert dec["kind"] == "conv2d" and dec["num_matrices"] == 9
    slices = [w[:, :, i, j] * math.sqrt(0.5) for i in range(3) for j in range(3)]
    assert dec["log_norm"] == pytest.approx(log_norm(slices), rel=1e-10)
    w = params["conv1.weight"].astype(np.float64)
    assert got["conv1.weight"]["kind"] == "conv1d"
    slices = [w[:, :, k] * math.sqrt(0.5) for k in range(4)]
    assert got["conv1.weight"]["log_norm"] == pytest.approx(log_norm(slices), rel=1e-10)


def test_stacked_onnx_style_rnn_weights_split_per_direction():
    from alphahat.layers import plan_tensors
    from alphahat.sources.base import TensorRef

    w = RNG.standard_normal((2, 48, 16))
    ref = TensorRef("lstm.W", w.shape, "float64", lambda: w, module_kind="rnn")
    plans = list(plan_tensors([ref]))
    assert [p.ref.name for p in plans] == ["lstm.W [direction 0]", "lstm.W [direction 1]"]
    assert all(p.kind == "rnn" for p in plans)
    np.testing.assert_array_equal(plans[1].ref.load(), w[1])


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(40, 16)
        self.head = nn.Linear(16, 40, bias=False)
        self.head.weight = self.embed.weight


def test_tied_weights_analysed_once_and_listed():
    model = Tied()
    report = alphahat.analyze(model)
    assert report.details["name"].tolist() == ["embed.weight"]
    cov = report.coverage.set_index("name")
    assert set(cov.index) == set(model.state_dict())
    assert cov.loc["head.weight", "status"] == "skipped"
    assert "tied to embed.weight" in cov.loc["head.weight", "reason"]


def test_unknown_packed_layout_is_never_read_and_a_broken_bnb_state_fails_with_the_reason():
    state = {  # a qweight whose scales fit neither GPTQ's nor AWQ's layout
        "layers.0.q_proj.qweight": np.zeros((8, 64), np.int32),
        "layers.0.q_proj.qzeros": np.zeros((1, 8), np.int32),
        "layers.0.q_proj.scales": np.ones((1, 48), np.float16),
        "layers.0.q_proj.g_idx": np.zeros(64, np.int32),
        "layers.1.fc.weight": np.zeros((512, 1), np.uint8),
        "layers.1.fc.weight.absmax": np.ones(16, np.float32),
        "layers.1.fc.weight.quant_map": np.ones(16, np.float32),
        "layers.1.fc.weight.quant_state.bitsandbytes__nf4": np.zeros(80, np.uint8),  # not JSON
        "layers.2.fc.weight": np.zeros((512, 1), np.uint8),
        "layers.2.fc.weight.quant_state.bitsandbytes__int3": np.zeros(80, np.uint8),
    }
    frame = alphahat.describe(state).set_index("name")
    assert "not recognised as GPTQ or AWQ" in frame.loc["layers.0.q_proj.qweight", "reason"]
    assert "metadata" in frame.loc["layers.0.q_proj.scales", "reason"]
    assert frame.loc["layers.1.fc.weight", "status"] == "failed"
    assert "quant_state" in frame.loc["layers.1.fc.weight", "reason"]
    assert "no dequantizer for this type" in frame.loc["layers.2.fc.weight", "reason"]
    assert "quantization state" in frame.loc["layers.1.fc.weight.absmax", "reason"]
    others = frame.drop(index="layers.1.fc.weight")
    assert (others["status"] == "skipped").all(), others[["status", "reason"]]


def _dequantized(path, name):
    from alphahat.layers import plan_tensors
    from alphahat.sources import open_source

    with open_source(path) as source:
        (plan,) = [p for p in plan_tensors(source.tensors()) if p.ref.name == name]
        return plan.ref.load()


def _bnb_file(tmp_path, w, quant_type, double):
    """A Linear4bit state as transformers saves it, in a safetensors file."""
    from safetensors.torch import save_file

    functional = pytest.importorskip("bitsandbytes.functional")
    packed, state = functional.quantize_4bit(
        w, blocksize=64, quant_type=quant_type, compress_statistics=double
    )
    name = "model.layers.0.mlp.down_proj.weight"
    tensors = {name: packed, "model.layers.0.mlp.down_proj.bias": torch.zeros(w.shape[0])}
    tensors.update({f"{name}.{k}": v for k, v in state.as_dict(packed=True).items()})
    path = tmp_path / "bnb.safetensors"
    save_file(tensors, str(path))
    return path, name, packed, state


@pytest.mark.parametrize("quant_type", ["nf4", "fp4"])
@pytest.mark.parametrize("double", [False, True])
def test_bitsandbytes_4bit_weights_are_dequantized_as_bitsandbytes_does(
    tmp_path, quant_type, double
):
    """The dequantized matrix is bitsandbytes' own ``dequantize_4bit``, and so is its spectrum."""
    functional = pytest.importorskip("bitsandbytes.functional")
    w = torch.from_numpy(RNG.standard_t(4, size=(72, 128)).astype(np.float32))
    path, name, packed, state = _bnb_file(tmp_path, w, quant_type, double)
    expected = functional.dequantize_4bit(packed, state).double().numpy()
    np.testing.assert_allclose(_dequantized(path, name), expected, rtol=1e-6, atol=1e-7)
    report = alphahat.analyze(path, keep_eigenvalues=True, min_evals=1)
    row = rows(report)[name]
    assert row["shape"] == "72x128" and row["dtype"] == "float32"
    assert row["note"].startswith(f"dequantized (bitsandbytes {quant_type}, blocks of 64")
    assert ("double-quantized" in row["note"]) == double
    lam = np.sort(np.linalg.svd(expected, compute_uv=False) ** 2)
    np.testing.assert_allclose(report.eigenvalues[name], lam, rtol=1e-5)
    coverage = report.coverage.set_index("name")
    assert "quantization state" in coverage.loc[f"{name}.absmax", "reason"]
    assert list(report.details["name"]) == [name]


@pytest.mark.parametrize("double", [False, True])
def test_bitsandbytes_4bit_blocks_run_across_rows(tmp_path, double):
    """Blocks of 64 run over the flat weight, across rows of 96: each dequantized value is
    within half the largest NF4 code gap times its block's scale of the original weight
    (the quantization error bound). (bitsandbytes 0.50's CPU ``dequantize_4bit`` itself gets
    such shapes wrong, so the original weight is the reference here.)"""
    w = RNG.standard_t(4, size=(72, 96)).astype(np.float32)
    path, name, _, state = _bnb_file(tmp_path, torch.from_numpy(w), "nf4", double)
    got = _dequantized(path, name)
    table = np.sort(state.code.numpy())
    absmax = np.abs(w.reshape(-1, 64)).max(axis=1)
    bound = np.repeat(absmax, 64) * (np.diff(table).max() / 2 * 1.02 + (0.02 if double else 0))
    assert got.shape == (72, 96)
    assert np.all(np.abs(got.reshape(-1) - w.reshape(-1)) <= bound + 1e-6)


def test_llm_int8_weights_are_dequantized_and_labelled():
    q = RNG.integers(-127, 128, size=(32, 24)).astype(np.int8)
    scb = RNG.uniform(0.5, 2.0, size=32).astype(np.float32)
    report = alphahat.analyze({"fc.weight": q, "fc.SCB": scb, "fc.weight_format": np.zeros(1)})
    row = rows(report)["fc.weight"]
    assert "dequantized" in row["note"] and row["dtype"] == "float32"
    expected = q.astype(np.float32) * (scb[:, None] / np.float32(127))
    assert row["log_norm"] == pytest.approx(log_norm([expected]), rel=1e-6)
    cov = report.coverage.set_index("name")
    assert "row scales" in cov.loc["fc.SCB", "reason"]


def test_randomize_shuffles_only_the_part_of_a_split_fused_tensor():
    """Shuffling keeps a matrix's entries, so Σλ of the shuffled [k] block is ‖W_k‖²_F.

    The q block is 30× larger than k and v: shuffling the whole fused tensor would put q's
    entries into the k and v spectra. (Each part is read as a tensor of its own.)
    """
    from alphahat.analysis import randomized_eigenvalues

    d = 128  # ≥ 100 eigenvalues: one shuffle per layer
    w = 0.02 * RNG.standard_normal((3 * d, d))
    w[:d] *= 30.0
    state = {"h.0.attn.c_attn.weight": w.T.copy()}  # Conv1D layout (in, 3·out)
    report = rows(alphahat.analyze(state, split_fused=True, randomize=True, seed=3))
    shuffled = randomized_eigenvalues(state, split_fused=True, seed=3)
    for i, part in enumerate("qkv"):
        name = f"h.0.attn.c_attn.weight [{part}]"
        block = w[i * d : (i + 1) * d]
        assert shuffled[name].sum() == pytest.approx(float((block**2).sum()), rel=1e-10)
        assert report[name]["max_rand_eval"] == pytest.approx(shuffled[name].max(), rel=1e-12)


def _expand_file(path, name, **options):
    from alphahat.layers.semantics import expand
    from alphahat.sources import open_source

    with open_source(path) as source:
        (ref,) = [r for r in source.tensors() if r.name == name]
        return ref, expand(ref, split_fused=options.pop("split_fused", False), **options)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_packed_expert_reads_its_own_bytes_only(tmp_path, dtype):
    """One expert of a packed [E, out, in] tensor reads 1/E of it (tracemalloc counts NumPy's
    allocations), with values equal to the whole tensor's slice."""
    import tracemalloc

    from safetensors.torch import save_file

    name = "model.layers.0.mlp.experts.down_proj"
    experts = torch.from_numpy(RNG.standard_normal((32, 128, 96)).astype(np.float32))
    path = tmp_path / "moe.safetensors"
    save_file({name: experts.to(getattr(torch, dtype))}, str(path))
    whole_ref, parts = _expand_file(path, name)
    assert len(parts) == 32
    whole = whole_ref.load()
    tracemalloc.start()
    try:
        part = parts[5].load()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert part.shape == (128, 96)
    np.testing.assert_array_equal(part, whole[5])
    assert peak < 3 * part.nbytes < whole.nbytes / 8


def test_the_q_block_of_a_fused_projection_reads_its_rows_only(tmp_path):
    from safetensors.numpy import save_file

    name = "model.layers.0.self_attn.qkv_proj.weight"
    w = RNG.standard_normal((3 * 64, 64)).astype(np.float32)
    path = tmp_path / "qkv.safetensors"
    save_file({name: w}, str(path))
    _, parts = _expand_file(path, name, split_fused=True)
    assert [p.name for p in parts] == [f"{name} [{c}]" for c in "qkv"]
    for i, part in enumerate(parts):
        np.testing.assert_array_equal(part.load(), w[i * 64 : (i + 1) * 64])


def test_row_reader_bounds_and_the_plain_load_fallback():
    from alphahat.sources.base import RowReader, read_rows

    values = np.arange(12.0).reshape(4, 3)
    reader = RowReader(lambda a, b: values[a:b].copy(), 4)
    np.testing.assert_array_equal(reader(), values)
    np.testing.assert_array_equal(read_rows(reader, 1, 3), values[1:3])
    np.testing.assert_array_equal(read_rows(lambda: values, 1, 3), values[1:3])
    with pytest.raises(ValueError, match=r"rows \[3, 5\) outside a first axis of 4"):
        reader.rows(3, 5)


@pytest.mark.parametrize(
    ("config", "splits"),
    [
        ({"model_type": "gpt_neox", "num_attention_heads": 4}, True),
        ({"model_type": "bloom", "n_head": 4}, True),
        ({"model_type": "falcon", "num_attention_heads": 4, "multi_query": False}, True),
        ({"model_type": "falcon", "num_attention_heads": 4}, False),  # multi-query by default
        (
            {
                "model_type": "falcon",
                "num_attention_heads": 4,
                "multi_query": False,
                "new_decoder_architecture": True,
            },
            False,
        ),  # fmt: skip
        ({"model_type": "llama", "num_attention_heads": 4}, False),
        ("not json {", False),
    ],
)
def test_interleaved_head_count_comes_from_config_json(tmp_path, config, splits):
    """With a Hugging Face ``config.json`` beside the weights, ``split_fused`` needs no
    ``fused_heads`` for the per-head layouts [heads, 3, head_dim, hidden] (GPT-NeoX, BLOOM,
    Falcon without multi-query); other layouts and a broken config leave the weight whole."""
    import json

    from safetensors.numpy import save_file

    heads, dim, hidden = 4, 8, 32
    w = RNG.standard_normal((3 * heads * dim, hidden)).astype(np.float32)
    name = "transformer.h.0.self_attention.query_key_value.weight"
    save_file({name: w}, str(tmp_path / "model.safetensors"))
    text = config if isinstance(config, str) else json.dumps(config)
    (tmp_path / "config.json").write_text(text)
    for model in (tmp_path, tmp_path / "model.safetensors"):
        got = rows(alphahat.analyze(model, split_fused=True))
        if not splits:
            assert list(got) == [name]
            continue
        per_head = w.reshape(heads, 3, dim, hidden)
        for i, part in enumerate("qkv"):
            block = per_head[:, i].reshape(heads * dim, hidden)
            row = got[f"{name} [{part}]"]
            assert row["log_norm"] == pytest.approx(log_norm([block]), rel=1e-6)
        whole = rows(alphahat.analyze(model))  # without split_fused the config changes nothing
        assert list(whole) == [name]


def test_lstm_and_gru_gates_are_split_with_split_fused():
    """PyTorch stacks an LSTM's gates as (W_i|W_f|W_g|W_o) and a GRU's as (W_r|W_z|W_n) along
    the rows of weight_ih_l*/weight_hh_l*; each gate becomes a row of its own."""
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(24, 16)
            self.gru = nn.GRU(24, 16, bidirectional=True)

    net = Net()
    whole = rows(alphahat.analyze(net))
    assert "lstm.weight_ih_l0" in whole and not any("[" in name for name in whole)
    split = rows(alphahat.analyze(net, split_fused=True))
    state = {k: v.detach().double().numpy() for k, v in net.state_dict().items()}
    for prefix, gates in (("lstm.", "ifgo"), ("gru.", "rzn")):
        for name in ("weight_ih_l0", "weight_hh_l0") + (
            ("weight_ih_l0_reverse",) if prefix == "gru." else ()
        ):
            chunks = np.split(state[prefix + name], len(gates))
            for gate, chunk in zip(gates, chunks, strict=True):
                row = split[f"{prefix}{name} [{gate}]"]
                assert row["log_norm"] == pytest.approx(log_norm([chunk]), rel=1e-10)
                assert row["kind"] == "rnn"
            assert prefix + name not in split
