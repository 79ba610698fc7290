"""The model zoo: gradients against torch autograd, a tiny build, its accuracies and determinism."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from alphahat.cli import app
from alphahat.zoo import zoo_models
from alphahat.zoo.training import TrainingSpec, loss_and_gradients

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
runner = CliRunner()


def test_gradients_match_torch_autograd() -> None:
    rng = np.random.default_rng(0)
    sizes = (64, 40, 30, 10)
    weights = [
        rng.normal(0, 0.3, (o, i)).astype(np.float32)
        for i, o in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    biases = [rng.normal(0, 0.1, o).astype(np.float32) for o in sizes[1:]]
    x = rng.normal(size=(16, 64)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    masks = [(rng.random((16, w)) < 0.7).astype(np.float32) / np.float32(0.7) for w in (40, 30)]
    loss, grads_w, grads_b = loss_and_gradients(
        [w.copy() for w in weights], [b.copy() for b in biases], x, y, masks
    )
    tw = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in weights]
    tb = [torch.tensor(b, dtype=torch.float64, requires_grad=True) for b in biases]
    h = torch.tensor(x, dtype=torch.float64)
    for k in range(2):
        h = torch.relu(h @ tw[k].T + tb[k]) * torch.tensor(masks[k], dtype=torch.float64)
    logits = h @ tw[2].T + tb[2]
    ref = torch.nn.functional.cross_entropy(logits, torch.tensor(y))
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-5)
    for got, want in zip([*grads_w, *grads_b], [*tw, *tb], strict=True):
        np.testing.assert_allclose(got, want.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_full_grid_is_contest_like() -> None:
    models = zoo_models("full")
    groups = {m.group for m in models}
    assert groups == {"depth2", "depth3", "depth4", "depth5"} and len(models) == 48
    for group in groups:
        specs = [m.spec for m in models if m.group == group]
        assert len(specs) == 12 and len({len(s.hidden) for s in specs}) == 1
        base = specs[0]
        for spec in specs[1:]:  # each differs from the base in exactly one hyperparameter
            fields = ("hidden", "weight_decay", "dropout", "batch_size", "train_size")
            assert sum(getattr(spec, f) != getattr(base, f) for f in fields) == 1
        assert min(min(s.hidden) for s in specs) >= 128  # every hidden layer: ≥ 64 eigenvalues
    assert len({m.spec.seed for m in models}) == 48
    with pytest.raises(ValueError, match="size must be"):
        zoo_models("huge")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dropout=1.0"):
        TrainingSpec(hidden=(8,), weight_decay=0, dropout=1.0, batch_size=1, train_size=1, epochs=1)


def digits_test_split() -> tuple[np.ndarray, np.ndarray]:
    """The documented split, rebuilt here: shuffle with seed 0, last 597 are the test set."""
    from sklearn.datasets import load_digits

    data = load_digits()
    order = np.random.default_rng(0).permutation(1797)
    x, y = data.data[order].astype(np.float32), data.target[order]
    mean, std = x[:1200].mean(axis=0), x[:1200].std(axis=0) + np.float32(0.01)
    return ((x[1200:] - mean) / std).astype(np.float32), y[1200:]


def test_tiny_build_records_real_accuracies_and_is_deterministic(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    zoo = tmp_path / "zoo"
    result = runner.invoke(app, ["zoo", "build", str(zoo), "--size", "tiny"])
    assert result.exit_code == 0, result.output
    assert "[8/8]" in result.output and "alphahat compare" in result.output
    rows = list(csv.DictReader((zoo / "manifest.csv").open()))
    assert len(rows) == 8 and {r["group"] for r in rows} == {"depth1", "depth2"}
    x_test, y_test = digits_test_split()
    for row in rows:
        tensors = load_file(str(zoo / row["model"]))
        depth = int(row["depth"])
        layers = [torch.nn.Linear(*tensors[f"layers.{k}.weight"].T.shape) for k in range(depth + 1)]
        for k, layer in enumerate(layers):
            layer.load_state_dict({"weight": tensors[f"layers.{k}.weight"],
                                   "bias": tensors[f"layers.{k}.bias"]})  # fmt: skip
        h = torch.tensor(x_test)
        for k, layer in enumerate(layers):
            h = layer(h) if k == depth else torch.relu(layer(h))
        accuracy = 100 * float((h.argmax(dim=1).numpy() == y_test).mean())
        assert float(row["accuracy"]) == pytest.approx(accuracy, abs=1e-3)
        assert 30 < float(row["accuracy"]) <= 100  # it learned something (chance: 10 %)
        assert tensors["layers.0.weight"].shape == (int(row["width"]), 64)
    first = {p.relative_to(zoo): p.read_bytes() for p in zoo.rglob("*") if p.is_file()}
    assert runner.invoke(app, ["zoo", "build", str(zoo), "--size", "tiny"]).exit_code == 2
    result = runner.invoke(app, ["zoo", "build", str(zoo), "--size", "tiny", "--force", "-q"])
    assert result.exit_code == 0, result.output
    second = {p.relative_to(zoo): p.read_bytes() for p in zoo.rglob("*") if p.is_file()}
    assert second == first  # byte-identical
    # and compare runs on it, with a fitted α for every model
    result = runner.invoke(app, ["compare", str(zoo / "manifest.csv"), "-q", "-o",
                                 str(tmp_path / "c.json"), "--bootstrap", "0"])  # fmt: skip
    assert result.exit_code == 0, result.output
    import json

    data = json.loads((tmp_path / "c.json").read_text())
    assert all(m["status"] == "analysed" and m["alpha"] > 1 for m in data["models"])
