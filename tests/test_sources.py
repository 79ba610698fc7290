"""Every weight source yields the same layers and the same numbers for the same weights.

Expected numbers come from independent NumPy computations (SVD of the stored weights) or
from structural facts (shapes, names, kernel positions), never from the code under test.
The cross-source tests compare each source against the live ``nn.Module`` analysis.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
safetensors_torch = pytest.importorskip("safetensors.torch")

import alphahat  # noqa: E402

COMPARED = ("alpha", "alpha_weighted", "D", "log_norm", "log_spectral_norm", "stable_rank")
WEIGHTS = (
    "fc1.weight",
    "fc2.weight",
    "embed.weight",
    "conv1.weight",
    "conv2.weight",
    "conv3.weight",
)


class Net(nn.Module):
    """One layer of every kind; no buffers."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(32, 64)
        self.fc2 = nn.Linear(64, 16, bias=False)
        self.embed = nn.Embedding(100, 24)
        self.conv1 = nn.Conv1d(8, 12, 3)
        self.conv2 = nn.Conv2d(6, 10, 3)
        self.conv3 = nn.Conv3d(4, 5, (2, 2, 2))
        self.norm = nn.LayerNorm(24)


def make_net(seed: int = 1234) -> Net:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Net()


def state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def by_name(report: alphahat.Report):  # type: ignore[name-defined]
    details = report.details
    assert details["name"].is_unique, details["name"].tolist()
    return details.set_index("name")


def assert_same_numbers(got, want, columns=COMPARED, rtol=1e-9) -> None:
    """Equal to ``rtol`` relative; NaN only where the other is NaN too."""
    for col in columns:
        for name in want.index:
            a, b = float(got.loc[name, col]), float(want.loc[name, col])
            if math.isnan(b):
                assert math.isnan(a), f"{name}.{col}: got {a}, want NaN"
            else:
                assert a == pytest.approx(b, rel=rtol, abs=0.0), f"{name}.{col}: {a} != {b}"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def net() -> Net:
    return make_net()


@pytest.fixture(scope="module")
def module_report(net):
    return alphahat.analyze(net)


@pytest.fixture(scope="module")
def net_state(net) -> dict[str, torch.Tensor]:
    return state_of(net)


# --------------------------------------------------------------------------- sources


def _safetensors_file(state, tmp: Path):
    path = tmp / "model.safetensors"
    safetensors_torch.save_file(state, str(path))
    return path


def _split(state):
    first = {k: v for k, v in state.items() if k.split(".")[0] in ("fc1", "fc2", "embed")}
    second = {k: v for k, v in state.items() if k not in first}
    assert first and second
    return first, second


def _sharded(state, tmp: Path, *, index: bool, return_index: bool = False):
    folder = tmp / "ckpt"
    folder.mkdir()
    weight_map = {}
    for i, part in enumerate(_split(state), start=1):
        fname = f"model-{i:05d}-of-00002.safetensors"
        safetensors_torch.save_file(part, str(folder / fname))
        weight_map.update(dict.fromkeys(part, fname))
    if index:
        (folder / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {}, "weight_map": weight_map})
        )
    return folder / "model.safetensors.index.json" if return_index else folder


def _torch_file(state, tmp: Path, name: str):
    path = tmp / name
    torch.save(state, path)
    return path


def _npz(state, tmp: Path):
    path = tmp / "weights.npz"
    np.savez(path, **{k: v.numpy() for k, v in state.items()})
    return path


SOURCES = {
    "state_dict": lambda model, state, tmp: model.state_dict(),
    "safetensors": lambda model, state, tmp: _safetensors_file(state, tmp),
    "safetensors_str_path": lambda model, state, tmp: str(_safetensors_file(state, tmp)),
    "sharded_with_index": lambda model, state, tmp: _sharded(state, tmp, index=True),
    "index_json_path": lambda model, state, tmp: _sharded(
        state, tmp, index=True, return_index=True
    ),
    "sharded_without_index": lambda model, state, tmp: _sharded(state, tmp, index=False),
    "torch_pt": lambda model, state, tmp: _torch_file(state, tmp, "model.pt"),
    "torch_bin": lambda model, state, tmp: _torch_file(state, tmp, "pytorch_model.bin"),
    "checkpoint_dict_pt": lambda model, state, tmp: _torch_file(
        {"state_dict": state, "epoch": 3}, tmp, "ckpt.pt"
    ),
    "npz": lambda model, state, tmp: _npz(state, tmp),
    "numpy_dict": lambda model, state, tmp: {k: v.numpy() for k, v in state.items()},
}


def test_module_source_analyses_every_weight_matrix(module_report, net):
    details = by_name(module_report)
    expected = {n for n, p in net.named_parameters() if p.ndim >= 2}
    assert expected == set(WEIGHTS)
    assert set(details.index) == expected
    # at least most layers are fitted, so the cross-source alpha comparison is not vacuous
    assert (details["status"] == "fitted").sum() >= 5, details[["status", "reason"]]


@pytest.mark.parametrize("source", list(SOURCES))
def test_every_source_gives_the_same_layers_and_numbers(
    source, net, net_state, module_report, tmp_path
):
    model_input = SOURCES[source](net, net_state, tmp_path)
    report = alphahat.analyze(model_input)
    got, want = by_name(report), by_name(module_report)
    assert set(got.index) == set(want.index) == set(WEIGHTS)
    assert_same_numbers(got, want)
    # same matrix geometry and kind (names are unambiguous in this model)
    for col in ("kind", "N", "M", "num_matrices", "num_evals", "status", "dtype"):
        assert got[col].to_dict() == want.loc[got.index, col].to_dict(), col
    # coverage lists every tensor of the state dict exactly once
    assert sorted(report.coverage["name"]) == sorted(net_state)


def test_sources_with_keep_eigenvalues_give_identical_spectra(net, net_state, tmp_path):
    a = alphahat.analyze(net, keep_eigenvalues=True)
    b = alphahat.analyze(_safetensors_file(net_state, tmp_path), keep_eigenvalues=True)
    assert set(a.eigenvalues) == set(b.eigenvalues) == set(WEIGHTS)
    for name in WEIGHTS:
        np.testing.assert_allclose(b.eigenvalues[name], a.eigenvalues[name], rtol=1e-12, atol=0)


def test_layer_ids_follow_model_order_for_module(module_report, net):
    # model order = natural order of the full names, the one order every format keeps
    expected = ["conv1.weight", "conv2.weight", "conv3.weight", "embed.weight"]
    expected += ["fc1.weight", "fc2.weight"]
    assert sorted(expected) == sorted(n for n, p in net.named_parameters() if p.ndim >= 2)
    details = module_report.details
    assert details["name"].tolist() == expected
    assert details["layer_id"].tolist() == list(range(len(expected)))


def test_module_source_kinds_and_conv_geometry(module_report, net):
    details = by_name(module_report)
    expected_kind = {
        "fc1.weight": "linear",
        "fc2.weight": "linear",
        "embed.weight": "embedding",
        "conv1.weight": "conv1d",
        "conv2.weight": "conv2d",
        "conv3.weight": "conv3d",
    }
    assert details["kind"].to_dict() == expected_kind
    params = dict(net.named_parameters())
    for name in WEIGHTS:
        shape = tuple(params[name].shape)
        positions = math.prod(shape[2:])
        n, m = max(shape[:2]), min(shape[:2])
        row = details.loc[name]
        assert (row["N"], row["M"]) == (n, m), name
        assert row["num_matrices"] == positions, name
        assert row["num_evals"] == m * positions, name
        assert row["shape"] == "x".join(map(str, shape))
    # the explicit numbers, as a guard against a shared mistake in the loop above
    assert details.loc["conv2.weight", "num_matrices"] == 9
    assert details.loc["conv2.weight", "num_evals"] == 6 * 9
    assert details.loc["conv3.weight", "num_evals"] == 4 * 8
    assert details.loc["conv1.weight", "num_evals"] == 8 * 3
    assert (details.loc["fc2.weight", "N"], details.loc["fc2.weight", "M"]) == (64, 16)


class Unnamed(nn.Module):
    """Names that give no hint of the layer kind: only the module class can tell."""

    def __init__(self) -> None:
        super().__init__()
        self.lookup = nn.Embedding(50, 16)
        self.table = nn.Linear(16, 40)
        self.mixer = nn.Conv1d(16, 20, 1)


def test_module_kind_comes_from_the_module_class():
    details = by_name(alphahat.analyze(Unnamed()))
    assert details.loc["lookup.weight", "kind"] == "embedding"
    assert details.loc["table.weight", "kind"] == "linear"
    assert details.loc["mixer.weight", "kind"] == "conv1d"
    assert details.loc["mixer.weight", "num_matrices"] == 1


# --------------------------------------------------------------------------- independent numbers


def test_linear_norms_match_numpy_svd(net):
    report = alphahat.analyze(net, keep_eigenvalues=True)
    w = net.fc1.weight.detach().double().numpy()
    lam = np.linalg.svd(w, compute_uv=False) ** 2
    row = by_name(report).loc["fc1.weight"]
    assert row["log_norm"] == pytest.approx(math.log10(lam.sum()), rel=1e-10)
    assert row["log_spectral_norm"] == pytest.approx(math.log10(lam.max()), rel=1e-10)
    assert row["stable_rank"] == pytest.approx(lam.sum() / lam.max(), rel=1e-10)
    assert row["norm"] == pytest.approx(float((w**2).sum()), rel=1e-10)
    assert row["lambda_max"] == pytest.approx(lam.max(), rel=1e-10)
    np.testing.assert_allclose(report.eigenvalues["fc1.weight"], np.sort(lam), rtol=1e-10)


def _conv_evals(weight: np.ndarray, factor: float) -> np.ndarray:
    """Pooled eigenvalues of every kernel-position slice (generic over conv1d/2d/3d)."""
    out, inp = weight.shape[:2]
    flat = weight.reshape(out, inp, -1)
    return np.sort(
        np.concatenate(
            [
                factor * np.linalg.svd(flat[:, :, k], compute_uv=False) ** 2
                for k in range(flat.shape[2])
            ]
        )
    )


@pytest.mark.parametrize(("conv_scale", "factor"), [("reference", 0.5), ("none", 1.0)])
def test_conv2d_pooled_eigenvalues_match_numpy(net, conv_scale, factor):
    report = alphahat.analyze(net, keep_eigenvalues=True, conv_scale=conv_scale)
    w = net.conv2.weight.detach().double().numpy()  # (10, 6, 3, 3)
    pooled = []
    for i in range(w.shape[2]):
        for j in range(w.shape[3]):
            pooled.append(np.linalg.svd(w[:, :, i, j], compute_uv=False) ** 2 * factor)
    lam = np.sort(np.concatenate(pooled))
    assert lam.size == 54
    got = report.eigenvalues["conv2.weight"]
    assert got.shape == lam.shape
    np.testing.assert_allclose(got, lam, rtol=1e-10, atol=1e-12 * lam.max())
    row = by_name(report).loc["conv2.weight"]
    assert row["log_norm"] == pytest.approx(math.log10(factor * (w**2).sum()), rel=1e-10)
    assert row["log_spectral_norm"] == pytest.approx(math.log10(lam.max()), rel=1e-10)
    assert row["stable_rank"] == pytest.approx(lam.sum() / lam.max(), rel=1e-10)


@pytest.mark.parametrize(("conv_scale", "factor"), [("reference", 0.5), ("none", 1.0)])
@pytest.mark.parametrize("name", ["conv1.weight", "conv3.weight"])
def test_conv1d_conv3d_pooled_eigenvalues_match_numpy(net, name, conv_scale, factor):
    report = alphahat.analyze(net, keep_eigenvalues=True, conv_scale=conv_scale)
    w = dict(net.named_parameters())[name].detach().double().numpy()
    lam = _conv_evals(w, factor)
    np.testing.assert_allclose(report.eigenvalues[name], lam, rtol=1e-10, atol=1e-12 * lam.max())


def test_conv_scale_does_not_touch_linear_layers(net):
    a = by_name(alphahat.analyze(net, conv_scale="reference"))
    b = by_name(alphahat.analyze(net, conv_scale="none"))
    for name in ("fc1.weight", "fc2.weight", "embed.weight"):
        assert a.loc[name, "log_norm"] == pytest.approx(b.loc[name, "log_norm"], rel=1e-12)
    # halving every eigenvalue shifts log10 norms by exactly log10(2)
    for name in ("conv1.weight", "conv2.weight", "conv3.weight"):
        diff = b.loc[name, "log_norm"] - a.loc[name, "log_norm"]
        assert diff == pytest.approx(math.log10(2.0), rel=1e-9)


# --------------------------------------------------------------------------- dtypes


LOW_PRECISION = ["float16", "bfloat16", "float32", "float64"]


@pytest.fixture(scope="module")
def base_matrix() -> torch.Tensor:
    gen = torch.Generator().manual_seed(7)
    return torch.randn(48, 24, generator=gen, dtype=torch.float64)


def _dtype_inputs(t: torch.Tensor, tmp: Path):
    st = tmp / "w.safetensors"
    safetensors_torch.save_file({"w.weight": t.contiguous()}, str(st))
    lin = nn.Linear(t.shape[1], t.shape[0], bias=False).to(t.dtype)
    with torch.no_grad():
        lin.weight.copy_(t)
    inputs = {"torch_mapping": {"w.weight": t}, "safetensors": st, "module": lin}
    if t.dtype != torch.bfloat16:
        inputs["numpy_mapping"] = {"w.weight": t.numpy()}
    return inputs


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_every_dtype_equals_float64_analysis_of_exact_upcast(dtype, base_matrix, tmp_path):
    t = base_matrix.to(getattr(torch, dtype))
    upcast = t.to(torch.float64).numpy()  # exact: every fp16/bf16/fp32 value is a float64
    want = by_name(alphahat.analyze({"w.weight": upcast}))
    assert want.loc["w.weight", "status"] == "fitted"
    for label, model_input in _dtype_inputs(t, tmp_path).items():
        report = alphahat.analyze(model_input)
        got = by_name(report)
        name = "weight" if label == "module" else "w.weight"
        assert list(got.index) == [name], label
        got = got.rename(index={name: "w.weight"})
        assert got.loc["w.weight", "dtype"] == dtype, label
        assert got.loc["w.weight", "status"] == "fitted", label
        assert_same_numbers(got, want, columns=(*COMPARED, "lambda_max", "norm"))


def test_bfloat16_outside_float16_range_is_exact(base_matrix, tmp_path):
    """bf16 values beyond float16's range (1e6, 1e-7) must be upcast exactly, not via fp16."""
    scales = torch.logspace(-7, 6, base_matrix.shape[1], dtype=torch.float64)
    t = (base_matrix * scales).to(torch.bfloat16)
    upcast = t.to(torch.float64).numpy()
    assert np.abs(upcast).max() > 65504  # not representable in float16
    want = by_name(alphahat.analyze({"w.weight": upcast}))
    for label, model_input in _dtype_inputs(t, tmp_path).items():
        got = by_name(alphahat.analyze(model_input))
        got = got.rename(index={"weight": "w.weight"})
        assert got.loc["w.weight", "dtype"] == "bfloat16", label
        assert_same_numbers(
            got, want, columns=("log_norm", "log_spectral_norm", "stable_rank", "norm")
        )


def test_bfloat16_is_not_silently_float32(base_matrix):
    """Guard: the bf16 values really differ from fp32, so the test above can tell them apart."""
    bf = base_matrix.to(torch.bfloat16).to(torch.float64).numpy()
    f32 = base_matrix.to(torch.float32).to(torch.float64).numpy()
    a = by_name(alphahat.analyze({"w.weight": bf})).loc["w.weight", "log_norm"]
    b = by_name(alphahat.analyze({"w.weight": f32})).loc["w.weight", "log_norm"]
    assert a != pytest.approx(b, rel=1e-9)
    want = math.log10(float((bf**2).sum()))
    assert a == pytest.approx(want, rel=1e-10)


# --------------------------------------------------------------------------- Hugging Face GPT-2


@pytest.fixture(scope="module")
def gpt2_config():
    transformers = pytest.importorskip("transformers")
    return transformers.GPT2Config(
        n_layer=2,
        n_embd=64,
        n_head=2,
        vocab_size=500,
        n_positions=64,
        bos_token_id=0,
        eos_token_id=0,
    )


def test_gpt2_conv1d_weights_are_linear(gpt2_config):
    transformers = pytest.importorskip("transformers")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = transformers.GPT2Model(gpt2_config)
    details = by_name(alphahat.analyze(model))
    conv1d_names = [
        f"{name}.weight"
        for name, module in model.named_modules()
        if type(module).__name__ == "Conv1D"
    ]
    # c_attn, attn.c_proj, c_fc, mlp.c_proj per block
    assert len(conv1d_names) == 4 * gpt2_config.n_layer
    for name in conv1d_names:
        assert name in details.index, name
        assert details.loc[name, "kind"] == "linear", name
        assert details.loc[name, "num_matrices"] == 1
        w = dict(model.named_parameters())[name]
        assert (details.loc[name, "N"], details.loc[name, "M"]) == (max(w.shape), min(w.shape))
    for suffix in (
        "attn.c_attn.weight",
        "attn.c_proj.weight",
        "mlp.c_fc.weight",
        "mlp.c_proj.weight",
    ):
        assert f"h.0.{suffix}" in details.index
    assert details.loc["wte.weight", "kind"] == "embedding"
    assert details.loc["wpe.weight", "kind"] == "embedding"
    # independent check of one Conv1D (stored as in x out)
    w = model.h[0].attn.c_attn.weight.detach().double().numpy()
    lam = np.linalg.svd(w, compute_uv=False) ** 2
    assert details.loc["h.0.attn.c_attn.weight", "log_norm"] == pytest.approx(
        math.log10(lam.sum()), rel=1e-10
    )
    assert (
        details.loc["h.0.attn.c_attn.weight", "N"],
        details.loc["h.0.attn.c_attn.weight", "M"],
    ) == (192, 64)


def test_gpt2_tied_lm_head_appears_once(gpt2_config):
    transformers = pytest.importorskip("transformers")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = transformers.GPT2LMHeadModel(gpt2_config)
    # precondition: the weights really are tied
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    assert "lm_head.weight" in model.state_dict()
    report = alphahat.analyze(model)
    names = report.details["name"].tolist()
    assert len(names) == len(set(names))
    assert names.count("transformer.wte.weight") + names.count("lm_head.weight") == 1
    unique_matrices = {p.data_ptr() for p in model.parameters() if p.ndim >= 2}
    assert len(names) == len(unique_matrices)
    coverage = report.coverage["name"].tolist()
    assert len(coverage) == len(set(coverage))
    described = alphahat.describe(model)["name"].tolist()
    assert described == coverage


# --------------------------------------------------------------------------- describe / filters


def test_describe_lists_every_tensor_and_skips_vectors(net, net_state):
    frame = alphahat.describe(net)
    assert len(frame) == len(net_state) == 12
    assert sorted(frame["name"]) == sorted(net_state)
    rows = frame.set_index("name")
    for name, tensor in net_state.items():
        if tensor.ndim < 2:
            assert rows.loc[name, "status"] == "skipped", name
            assert "1-D" in rows.loc[name, "reason"], name
            assert pd.isna(rows.loc[name, "layer_id"]), name
        else:
            assert rows.loc[name, "status"] == "analysed", name
            assert rows.loc[name, "reason"] == "", name
    # describe's analysed tensors are exactly analyze's rows
    analysed = set(frame.loc[frame["status"] == "analysed", "name"])
    assert analysed == set(alphahat.analyze(net).details["name"])


class WithBuffers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 24)
        self.bn = nn.BatchNorm1d(24)  # running_mean, running_var, num_batches_tracked
        self.register_buffer("scratch", torch.zeros(8, 8), persistent=False)


def test_describe_counts_buffers(tmp_path):
    model = WithBuffers()
    frame = alphahat.describe(model)
    params = [n for n, _ in model.named_parameters()]
    buffers = [n for n, _ in model.named_buffers()]
    assert len(buffers) == 4
    assert len(frame) == len(params) + len(buffers)
    assert set(frame["name"]) == set(model.state_dict()) | {"scratch"}
    rows = frame.set_index("name")
    assert rows.loc["bn.num_batches_tracked", "status"] == "skipped"
    assert rows.loc["bn.num_batches_tracked", "reason"]
    assert rows.loc["bn.running_mean", "status"] == "skipped"


@pytest.fixture(scope="module")
def ids(net) -> dict[str, int]:
    """Layer ids from the documented rule: position among tensors with >= 2 dims, in natural
    name order (digits compared as numbers; here plain sorting gives the same order)."""
    return {n: i for i, n in enumerate(sorted(n for n, p in net.named_parameters() if p.ndim >= 2))}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("conv2.weight", {"conv2.weight"}),
        ("fc1", {"fc1.weight"}),
        (["fc1", "embed.weight"], {"fc1.weight", "embed.weight"}),
        ("conv*", {"conv1.weight", "conv2.weight", "conv3.weight"}),
        ("*conv[13]*", {"conv1.weight", "conv3.weight"}),
        ("conv2d", {"conv2.weight"}),
        (["conv1d", "conv3d"], {"conv1.weight", "conv3.weight"}),
        ("linear", {"fc1.weight", "fc2.weight"}),
        ("embedding", {"embed.weight"}),
        (["linear", "*2*"], {"fc2.weight"}),  # kind AND glob
        (["conv2d", "fc1"], set()),  # kind AND name: nothing matches both
        ("no_such_layer", set()),
    ],
)
def test_layer_filter(net, spec, expected):
    report = alphahat.analyze(net, layers=spec)
    assert set(report.details["name"]) == expected
    cov = report.coverage.set_index("name")
    for name in set(WEIGHTS) - expected:
        assert cov.loc[name, "status"] == "skipped"
        assert "filter" in cov.loc[name, "reason"]
    frame = alphahat.describe(net, layers=spec).set_index("name")
    assert set(frame.index[frame["status"] == "analysed"]) == expected


@pytest.mark.parametrize("as_str", [False, True])
def test_layer_filter_by_id(net, ids, as_str):
    wanted = ids["conv2.weight"]
    spec = str(wanted) if as_str else wanted
    report = alphahat.analyze(net, layers=spec)
    assert report.details["name"].tolist() == ["conv2.weight"]
    assert report.details["layer_id"].tolist() == [wanted]
    report = alphahat.analyze(net, layers=[ids["fc1.weight"], ids["embed.weight"]])
    assert set(report.details["name"]) == {"fc1.weight", "embed.weight"}


def test_layer_filter_id_and_kind_combine_with_and(net, ids):
    assert alphahat.analyze(net, layers=[ids["fc1.weight"], "conv2d"]).details.empty
    got = alphahat.analyze(net, layers=[ids["fc1.weight"], ids["conv2.weight"], "conv2d"])
    assert got.details["name"].tolist() == ["conv2.weight"]


def test_unknown_kind_in_layer_filter_is_rejected():
    with pytest.raises(ValueError, match="kind"):
        alphahat.LayerFilter(kinds=("conv4d",))


def _num_evals(net) -> dict[str, int]:
    out = {}
    for name, p in net.named_parameters():
        if p.ndim >= 2:
            out[name] = min(p.shape[:2]) * math.prod(p.shape[2:])
    return out


def test_min_evals_skips_with_reason(net):
    counts = _num_evals(net)
    report = alphahat.analyze(net, min_evals=30)
    expected = {n for n, c in counts.items() if c >= 30}
    assert expected and expected != set(counts)
    assert set(report.details["name"]) == expected
    cov = report.coverage.set_index("name")
    for name in set(counts) - expected:
        assert cov.loc[name, "status"] == "skipped"
        assert "min_evals" in cov.loc[name, "reason"]
        assert "30" in cov.loc[name, "reason"]


def test_max_evals_skips_with_reason(net):
    counts = _num_evals(net)
    report = alphahat.analyze(net, max_evals=30)
    expected = {n for n, c in counts.items() if c <= 30}
    assert expected and expected != set(counts)
    assert set(report.details["name"]) == expected
    cov = report.coverage.set_index("name")
    for name in set(counts) - expected:
        assert cov.loc[name, "status"] == "skipped"
        assert "max_evals" in cov.loc[name, "reason"]
    frame = alphahat.describe(net, max_evals=30).set_index("name")
    assert set(frame.index[frame["status"] == "analysed"]) == expected


def test_min_and_max_evals_are_inclusive_bounds(net):
    counts = _num_evals(net)
    at_bound = {n for n, c in counts.items() if c == 24}
    assert at_bound == {"embed.weight", "conv1.weight"}
    kept_min = set(alphahat.analyze(net, min_evals=24).details["name"])
    assert kept_min == {n for n, c in counts.items() if c >= 24}
    kept_max = set(alphahat.analyze(net, max_evals=24).details["name"])
    assert kept_max == {n for n, c in counts.items() if c <= 24}
    assert set(alphahat.analyze(net, min_evals=24, max_evals=24).details["name"]) == at_bound


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_evals": -1},
        {"max_evals": 0},
        {"min_evals": 10, "max_evals": 5},
        {"conv_scale": "half"},
    ],
)
def test_invalid_options_are_rejected(net, kwargs):
    with pytest.raises(ValueError):
        alphahat.analyze(net, **kwargs)


# --------------------------------------------------------------------------- no mutation


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_module_is_not_mutated(dtype):
    model = make_net(99).to(dtype)
    model.train()
    model.conv2.eval()
    model.fc2.weight.requires_grad_(False)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    params_before = {n: p for n, p in model.named_parameters()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    training = {n: m.training for n, m in model.named_modules()}
    alphahat.analyze(model, keep_eigenvalues=True, conv_scale="reference")
    alphahat.describe(model)
    after = model.state_dict()
    assert after.keys() == before.keys()
    for k in before:
        assert after[k].dtype == before[k].dtype, k
        assert torch.equal(after[k], before[k]), k
    assert {n: p for n, p in model.named_parameters()}.keys() == params_before.keys()
    for n, p in model.named_parameters():
        assert p is params_before[n], n
        assert p.grad is None, n
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert {n: m.training for n, m in model.named_modules()} == training
    assert flags["fc2.weight"] is False and flags["fc1.weight"] is True
    assert training["conv2"] is False and training[""] is True


# --------------------------------------------------------------------------- no torch import


def test_safetensors_analysis_does_not_import_torch(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    rng = np.random.default_rng(3)
    weights = {
        "a.weight": rng.standard_normal((40, 20)).astype(np.float32),
        "b.weight": rng.standard_normal((30, 12)).astype(np.float32),
        "b.bias": rng.standard_normal(30).astype(np.float32),
    }
    path = tmp_path / "m.safetensors"
    safetensors_numpy.save_file(weights, str(path))
    code = textwrap.dedent(
        f"""
        import json, sys
        import alphahat
        report = alphahat.analyze({str(path)!r})
        frame = alphahat.describe({str(path)!r})
        frameworks = ("torch", "transformers", "tensorflow", "jax")
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in frameworks)
        print(json.dumps({{
            "heavy": heavy,
            "names": report.details["name"].tolist(),
            "log_norm": report.details["log_norm"].tolist(),
            "described": len(frame),
        }}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    assert result["names"] == ["a.weight", "b.weight"]
    assert result["described"] == 3
    for name, got in zip(result["names"], result["log_norm"], strict=True):
        w = weights[name].astype(np.float64)
        assert got == pytest.approx(math.log10(float((w**2).sum())), rel=1e-10)


def test_tied_tensors_in_a_state_dict_are_analysed_once() -> None:
    import torch

    torch.manual_seed(0)
    shared = torch.randn(40, 16)
    state = {"wte.weight": shared, "lm_head.weight": shared, "other.weight": torch.randn(30, 12)}
    report = alphahat.analyze(state)
    assert sorted(report.details["name"]) == ["other.weight", "wte.weight"]
    tied = report.coverage.set_index("name").loc["lm_head.weight"]
    assert tied["status"] == "skipped" and "tied to wte.weight" in tied["reason"]
    assert pd.isna(tied["layer_id"])


def test_non_tensor_entries_are_skipped_not_failed() -> None:
    rng = np.random.default_rng(0)
    report = alphahat.analyze({"w": rng.normal(size=(30, 12)), "step": 5, "lr": 0.1})
    coverage = report.coverage.set_index("name")
    assert coverage.loc["step", "status"] == "skipped"
    assert "not a tensor (int)" in coverage.loc["step", "reason"]
    assert list(report.details["status"]) == ["fitted"]


@pytest.mark.parametrize("chunk_size", [1, 7, 4096, 1 << 23])
def test_file_sha256_equals_hashlib_for_any_chunk_size(tmp_path, chunk_size):
    import hashlib

    from alphahat.sources import file_sha256

    path = tmp_path / "blob.bin"
    path.write_bytes(np.random.default_rng(0).bytes(10_000))
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert file_sha256(path, chunk_size=chunk_size) == expected
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert file_sha256(empty, chunk_size=chunk_size) == hashlib.sha256(b"").hexdigest()


def test_file_sha256_stops_between_chunks_when_cancelled(tmp_path):
    from alphahat.sources import file_sha256

    path = tmp_path / "blob.bin"
    path.write_bytes(b"x" * 100)
    polls = []

    def cancelled() -> bool:
        polls.append(1)
        return len(polls) >= 3

    with pytest.raises(InterruptedError, match="blob.bin"):
        file_sha256(path, chunk_size=10, cancelled=cancelled)
    assert len(polls) == 3  # polled once per chunk, stopped at the third
