"""PEFT LoRA adapters saved by ``peft`` itself, and fine-tune deltas W − W_base.

ΔW is checked against the closed form s·B·A computed here from the factors in the saved file
(s = α/r, α/√r for rsLoRA), and the merged view against ``peft``'s own ``merge_and_unload``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import alphahat
from alphahat.errors import SourceError

torch = pytest.importorskip("torch")
nn = torch.nn
safetensors_torch = pytest.importorskip("safetensors.torch")
safetensors_numpy = pytest.importorskip("safetensors.numpy")


class Base(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 32)
        self.q = nn.Linear(32, 48)
        self.v = nn.Linear(32, 48)
        self.fc = nn.Linear(48, 10)


def spectrum(m: np.ndarray) -> np.ndarray:
    return np.sort(np.linalg.svd(np.asarray(m, np.float64), compute_uv=False) ** 2)


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    peft = pytest.importorskip("peft")
    root = tmp_path_factory.mktemp("lora")
    torch.manual_seed(0)
    base = Base()
    safetensors_torch.save_file(
        {k: v.contiguous() for k, v in base.state_dict().items()}, str(root / "base.safetensors")
    )
    config = peft.LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q", "v", "emb"],
        rank_pattern={"v": 2},
        alpha_pattern={"v": 6},
        init_lora_weights=False,  # random B, so that ΔW ≠ 0
    )
    model = peft.get_peft_model(base, config)
    model.save_pretrained(str(root / "adapter"))
    merged = {
        k: v.detach().double().numpy() for k, v in model.merge_and_unload().state_dict().items()
    }
    return root, merged


def test_adapter_alone_gives_the_low_rank_update(adapter):
    root, _ = adapter
    folder = root / "adapter"
    factors = safetensors_numpy.load_file(str(folder / "adapter_model.safetensors"))
    report = alphahat.analyze(folder, min_evals=1, keep_eigenvalues=True)
    got = report.details.set_index("name")
    assert set(got.index) == {"q.weight [delta]", "v.weight [delta]", "emb.weight [delta]"}
    for module, scale, rank in (("q", 8 / 4, 4), ("v", 6 / 2, 2)):
        a = factors[f"base_model.model.{module}.lora_A.weight"].astype(np.float64)
        b = factors[f"base_model.model.{module}.lora_B.weight"].astype(np.float64)
        assert a.shape[0] == rank
        want = spectrum(scale * b @ a)
        np.testing.assert_allclose(
            report.eigenvalues[f"{module}.weight [delta]"], want, rtol=1e-9, atol=1e-12 * want[-1]
        )
        row = got.loc[f"{module}.weight [delta]"]
        assert row["shape"] == "48x32" and f"r={rank}" in row["note"]
        assert row["matrix_rank"] == rank  # a rank-r update
    emb = got.loc["emb.weight [delta]"]
    assert emb["kind"] == "embedding" and emb["shape"] == "50x32"
    # the factors are listed, not analysed on their own
    cov = report.coverage.set_index("name")
    factor_rows = cov[cov.index.str.contains("lora_")]
    assert len(factor_rows) == 6 and (factor_rows["status"] == "skipped").all()
    assert factor_rows["reason"].str.contains("ΔW").all()


def test_base_gives_merged_and_base_views(adapter):
    root, merged = adapter
    report = alphahat.analyze(
        root / "adapter", base=root / "base.safetensors", min_evals=1, keep_eigenvalues=True
    )
    names = set(report.details["name"])
    for module in ("q", "v", "emb"):
        assert {f"{module}.weight [{v}]" for v in ("delta", "merged", "base")} <= names
        # merged = peft's own merge_and_unload result
        want = spectrum(merged[f"{module}.weight"])
        got = report.eigenvalues[f"{module}.weight [merged]"]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7 * want[-1])
    base = safetensors_numpy.load_file(str(root / "base.safetensors"))
    np.testing.assert_allclose(
        report.eigenvalues["q.weight [base]"], spectrum(base["q.weight"]), rtol=1e-10
    )
    notes = report.details.set_index("name")["note"]
    assert notes["q.weight [merged]"].startswith("W + ΔW")
    assert "base" in notes["q.weight [base]"]


def test_cli_base_option(adapter):
    from typer.testing import CliRunner

    from alphahat.cli import app

    root, _ = adapter
    result = CliRunner().invoke(
        app,
        ["describe", str(root / "adapter"), "--base", str(root / "base.safetensors"), "-f", "json"],
    )
    assert result.exit_code == 0, result.output
    names = {t["name"] for t in json.loads(result.stdout)["tensors"]}
    assert "v.weight [merged]" in names and "v.weight [base]" in names


@pytest.mark.parametrize("problem", ["no_weights", "bad_json", "not_lora", "bad_r", "rank"])
def test_bad_adapters(adapter, tmp_path, problem):
    root, _ = adapter
    folder = tmp_path / "adapter"
    folder.mkdir()
    config = json.loads((root / "adapter" / "adapter_config.json").read_text())
    weights = (root / "adapter" / "adapter_model.safetensors").read_bytes()
    if problem != "no_weights":
        (folder / "adapter_model.safetensors").write_bytes(weights)
    text = json.dumps(config)
    if problem == "bad_json":
        text = text[:-5]
    elif problem == "not_lora":
        text = json.dumps({**config, "peft_type": "IA3"})
    elif problem == "bad_r":
        text = json.dumps({**config, "r": 0})
    elif problem == "rank":
        text = json.dumps({**config, "rank_pattern": {}})  # v's factors have rank 2, not 4
    (folder / "adapter_config.json").write_text(text)
    if problem == "rank":
        frame = alphahat.describe(folder, min_evals=1).set_index("name")
        assert frame.loc["v.weight [delta]", "status"] == "failed"
        assert "rank 2" in frame.loc["v.weight [delta]", "reason"]
        assert frame.loc["q.weight [delta]", "status"] == "analysed"
        return
    with pytest.raises(SourceError, match="adapter"):
        alphahat.describe(folder)


# --------------------------------------------------------------------------- deltas


@pytest.fixture()
def finetuned(tmp_path):
    rng = np.random.default_rng(2)
    base = {
        "a.weight": rng.standard_normal((40, 30)).astype(np.float32),
        "b.weight": rng.standard_normal((30, 20)).astype(np.float32),
        "b.bias": np.zeros(30, np.float32),
        "resized.weight": rng.standard_normal((100, 16)).astype(np.float32),
        "dropped.weight": rng.standard_normal((16, 16)).astype(np.float32),
    }
    tuned = {k: v + 0.01 * rng.standard_normal(v.shape).astype(np.float32) for k, v in base.items()}
    tuned["resized.weight"] = rng.standard_normal((120, 16)).astype(np.float32)
    tuned["new_head.weight"] = rng.standard_normal((16, 12)).astype(np.float32)
    del tuned["dropped.weight"]
    safetensors_numpy.save_file(base, str(tmp_path / "base.safetensors"))
    safetensors_numpy.save_file(tuned, str(tmp_path / "tuned.safetensors"))
    return tmp_path, base, tuned


def test_delta_is_w_minus_base_matched_by_full_name(finetuned):
    root, base, tuned = finetuned
    report = alphahat.analyze(
        root / "tuned.safetensors", base=root / "base.safetensors", keep_eigenvalues=True
    )
    for name in ("a.weight", "b.weight"):
        delta = tuned[name].astype(np.float64) - base[name].astype(np.float64)
        np.testing.assert_allclose(report.eigenvalues[name], spectrum(delta), rtol=1e-10)
    got = report.details.set_index("name")
    assert set(got.index) == {"a.weight", "b.weight"}
    assert (got["note"] == "W − W_base (float64)").all()
    cov = report.coverage.set_index("name")
    assert "differs from the base" in cov.loc["resized.weight", "reason"]
    assert "no tensor of this full name in the base" in cov.loc["new_head.weight", "reason"]
    assert "only in the base" in cov.loc["dropped.weight", "reason"]
    assert (
        cov.loc[["resized.weight", "new_head.weight", "dropped.weight"], "status"] == "skipped"
    ).all()


def test_delta_never_matches_by_suffix(tmp_path):
    w = np.ones((8, 8), np.float32)
    safetensors_numpy.save_file({"model.a.weight": w}, str(tmp_path / "base.safetensors"))
    safetensors_numpy.save_file({"a.weight": w * 2}, str(tmp_path / "tuned.safetensors"))
    frame = alphahat.describe(tmp_path / "tuned.safetensors", base=tmp_path / "base.safetensors")
    frame = frame.set_index("name")
    assert frame.loc["a.weight", "status"] == "skipped"
    assert frame.loc["model.a.weight", "status"] == "skipped"


def test_delta_with_in_memory_models_and_tiny_changes():
    """A float32 change of one ulp survives: the difference is taken in float64."""
    rng = np.random.default_rng(4)
    w = rng.standard_normal((24, 16)).astype(np.float32)
    tuned = np.nextafter(w, np.float32(np.inf))
    report = alphahat.analyze({"w": tuned}, base={"w": w}, keep_eigenvalues=True)
    delta = tuned.astype(np.float64) - w.astype(np.float64)
    assert np.all(delta != 0)
    assert math.isclose(report.eigenvalues["w"].sum(), float((delta**2).sum()), rel_tol=1e-10)
