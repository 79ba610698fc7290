"""intra=True (cross matrices of consecutive layers) with sparsify: against independent numpy.

The live comparison with weightwatcher 0.7.7 is in tests/test_parity_ww_options.py.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import alphahat
from alphahat.errors import OptionError


def _chain(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {  # out × in, chained 50 → 70 → 70 → 40
        "a.weight": rng.normal(size=(70, 50)),
        "b.weight": rng.normal(size=(70, 70)),
        "c.weight": rng.normal(size=(40, 70)),
    }


def _sigma(x: np.ndarray) -> np.ndarray:
    return np.sort(np.linalg.svd(x, compute_uv=False))


def test_intra_is_the_singular_values_of_the_composed_maps() -> None:
    model = _chain()
    report = alphahat.analyze(model, intra=True, keep_eigenvalues=True)
    names = ["a.weight X b.weight", "b.weight X c.weight"]
    assert list(report.details["name"]) == names
    for name, (w0, w1) in zip(names, [("a", "b"), ("b", "c")], strict=True):
        a, b = model[f"{w0}.weight"], model[f"{w1}.weight"]
        x = (b @ a).T / (np.linalg.norm(a) * np.linalg.norm(b))  # the composed map, in × out
        np.testing.assert_allclose(report.eigenvalues[name], _sigma(x), rtol=1e-10, atol=1e-15)
        row = report.details.set_index("name").loc[name]
        assert (int(row["N"]), int(row["M"])) == (max(x.shape), min(x.shape))
        assert row["spectrum_method"] == "svd, intra σ(X)"
    plain = alphahat.analyze(model).details  # σ, not σ²: a different ESD
    assert not np.isclose(plain["lambda_max"].iloc[0], report.details["lambda_max"].iloc[0])


def test_sparsify_is_a_seeded_relu_gate_on_the_shared_units() -> None:
    model = _chain(1)
    name = "a.weight X b.weight"
    report = alphahat.analyze(model, intra=True, sparsify=True, seed=5, keep_eigenvalues=True)
    # the mask: RandomState(SHA-256 of "seed:name", first 4 bytes) — each of 70 units on w.p. ½
    digest = hashlib.sha256(f"5:{name}".encode()).digest()
    seed = int.from_bytes(digest[:4], "little")
    mask = np.random.RandomState(seed).randint(2, size=70)
    a, b = model["a.weight"], model["b.weight"]
    x = (b @ np.diag(mask) @ a).T / (np.linalg.norm(a) * np.linalg.norm(b))
    np.testing.assert_allclose(report.eigenvalues[name], _sigma(x), rtol=1e-10, atol=1e-15)
    again = alphahat.analyze(model, intra=True, sparsify=True, seed=5, keep_eigenvalues=True)
    np.testing.assert_array_equal(again.eigenvalues[name], report.eigenvalues[name])
    other = alphahat.analyze(model, intra=True, sparsify=True, seed=6, keep_eigenvalues=True)
    assert not np.array_equal(other.eigenvalues[name], report.eigenvalues[name])


def test_pairs_without_a_shared_dimension_or_with_a_conv_are_skipped_with_the_reason() -> None:
    rng = np.random.default_rng(2)
    model = {
        "a.weight": rng.normal(size=(30, 20)),
        "b.weight": rng.normal(size=(50, 40)),  # shares nothing with a
        "c.weight": rng.normal(size=(16, 50, 3, 3)),  # a conv
    }
    report = alphahat.analyze(model, intra=True)
    assert report.details.empty
    details = report.coverage.set_index("name")
    assert details.loc["a.weight X b.weight", "status"] == "skipped"
    assert "share no dimension" in details.loc["a.weight X b.weight", "reason"]
    assert details.loc["b.weight X c.weight", "status"] == "skipped"
    assert "conv kernels are not composed" in details.loc["b.weight X c.weight", "reason"]


def test_intra_takes_the_layer_filter_refuses_other_modes_and_has_a_cli_flag(
    tmp_path: object,
) -> None:
    from typer.testing import CliRunner

    from alphahat.cli import app

    model = _chain(3)
    report = alphahat.analyze(model, intra=True, layers=["a.weight", "c.weight"])
    assert list(report.details["name"]) == ["a.weight X c.weight"]  # 50→70, 70→40: chained
    for other in ({"randomize": True}, {"stacked": True}, {"vectors": True}):
        with pytest.raises(OptionError, match="intra"):
            alphahat.analyze(model, intra=True, **other)
    assert "intra" not in alphahat.analyze(model).options  # recorded only when used
    assert report.options["intra"] is True and report.options["sparsify"] is False
    path = tmp_path / "m.npz"  # type: ignore[operator]
    np.savez(path, **model)
    args = ["analyze", str(path), "--intra", "--sparsify", "-f", "csv", "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "a.weight X b.weight" in result.stdout and "b.weight X c.weight" in result.stdout


def test_a_live_module_pairs_in_registration_order_not_by_name(tmp_path: object) -> None:
    torch = pytest.importorskip("torch")

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.query = torch.nn.Linear(40, 60)  # registered first: names sort the other way
            self.key = torch.nn.Linear(60, 50)

    names = list(alphahat.analyze(Block(), intra=True).details["name"])
    assert names == ["query.weight X key.weight"]
    rng = np.random.default_rng(4)
    by_name = {"query.weight": rng.normal(size=(60, 40)), "key.weight": rng.normal(size=(50, 60))}
    path_like = alphahat.analyze(by_name, intra=True).details["name"]  # a dict: insertion order
    assert list(path_like) == ["query.weight X key.weight"]
    path = tmp_path / "m.npz"  # type: ignore[operator]
    np.savez(path, **by_name)  # a file: natural name order
    assert list(alphahat.analyze(path, intra=True).details["name"]) == ["key.weight X query.weight"]


def test_sparsify_masks_the_chained_dimension_when_another_size_repeats() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(60, 100)), rng.normal(size=(100, 60))  # chained through 60 units
    name = "a X b"
    report = alphahat.analyze({"a": a, "b": b}, intra=True, sparsify=True, keep_eigenvalues=True)
    seed = int.from_bytes(hashlib.sha256(f"0:{name}".encode()).digest()[:4], "little")
    mask = np.random.RandomState(seed).randint(2, size=60)
    x = (b @ np.diag(mask) @ a).T / (np.linalg.norm(a) * np.linalg.norm(b))
    np.testing.assert_allclose(report.eigenvalues[name], _sigma(x), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("workers", [1, 2])
def test_each_layer_is_read_once(workers: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import alphahat.pipeline.pairs as pairs

    rng = np.random.default_rng(6)
    sizes = [30, 40, 50, 60, 70]
    weights = {f"l{k}.weight": rng.normal(size=(sizes[k + 1], sizes[k])) for k in range(4)}
    expected = alphahat.analyze(weights, intra=True).details
    reads: list[str] = []
    real_load = pairs.load_layer

    def counting_load(plan, device=None):  # type: ignore[no-untyped-def]
        reads.append(plan.ref.name)
        return real_load(plan, device)

    monkeypatch.setattr(pairs, "load_layer", counting_load)
    report = alphahat.analyze(weights, intra=True, workers=workers)
    assert sorted(reads) == sorted(weights)  # 4 layers read once each for the 3 pairs
    assert list(report.details["name"]) == list(expected["name"])
    np.testing.assert_array_equal(report.details["alpha"], expected["alpha"])
