"""distances(model_a, model_b): closed forms, and the reference tool's distances() live."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from alphahat.distances import cka_similarity, distances


def models() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    a = {
        "fc.weight": rng.normal(size=(30, 20)),
        "fc.bias": rng.normal(size=30),
        "conv.weight": rng.normal(size=(16, 8, 3, 3)),
    }
    b = {k: v + 0.1 * rng.normal(size=v.shape) for k, v in a.items()}
    return a, b


def test_identical_models_are_at_distance_zero() -> None:
    a, _ = models()
    table = distances(a, a).set_index("name")
    assert (table["delta_W"] == 0).all() and (table["euclidean"] == 0).all()
    np.testing.assert_allclose(table["cka"].astype(float), 1.0, rtol=1e-12)
    assert (table["spectral_distance"] == 0).all()
    assert (table["status"] == "compared").all()


def test_closed_forms() -> None:
    a, b = models()
    table = distances(a, b).set_index("name")
    fc = table.loc["fc.weight"]
    assert fc["delta_W"] == pytest.approx(np.linalg.norm(a["fc.weight"] - b["fc.weight"]))
    assert fc["delta_b"] == pytest.approx(np.linalg.norm(a["fc.bias"] - b["fc.bias"]))
    assert fc["delta_spectral_norm"] == pytest.approx(
        np.linalg.svd(a["fc.weight"] - b["fc.weight"], compute_uv=False)[0]
    )
    conv = table.loc["conv.weight"]
    slices = [
        (a["conv.weight"][:, :, i, j], b["conv.weight"][:, :, i, j])
        for i in range(3)
        for j in range(3)
    ]
    expected = np.mean([np.linalg.norm(x - y) for x, y in slices])
    assert conv["euclidean"] == pytest.approx(expected)
    assert 0 < conv["spectral_distance"] <= 1


def test_cka_is_invariant_to_an_orthogonal_map_and_zero_for_orthogonal_columns() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 10))
    r = np.linalg.qr(rng.normal(size=(10, 10)))[0]
    assert cka_similarity(x, x @ r) == pytest.approx(1.0)
    y, z = x.copy(), x.copy()
    y[20:], z[:20] = 0, 0  # column spaces in disjoint coordinates: YᵀZ = 0
    assert cka_similarity(y, z) == pytest.approx(0.0, abs=1e-12)
    # Kornblith et al.'s linear CKA, written with traces of the Gram matrices
    w = rng.normal(size=(40, 10))
    kx, ky = x @ x.T, w @ w.T
    expected = np.trace(kx @ ky) / np.sqrt(np.trace(kx @ kx) * np.trace(ky @ ky))
    assert cka_similarity(x, w) == pytest.approx(expected, rel=1e-12)


def test_missing_or_reshaped_layers_are_reported_not_raised() -> None:
    a, b = models()
    b = {**b, "fc.weight": np.ones((30, 21))}
    del b["conv.weight"]
    table = distances(a, b).set_index("name")
    assert (
        table.loc["fc.weight", "status"] == "failed"
        and "shapes differ" in table.loc["fc.weight", "reason"]
    )
    assert table.loc["conv.weight", "reason"] == "not in the second model"


def test_compat_distances_match_the_reference() -> None:
    torch = pytest.importorskip("torch")
    ww = pytest.importorskip("weightwatcher")
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    from alphahat.compat import WeightWatcher

    torch.manual_seed(0)
    first = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.Linear(32, 24))
    second = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.Linear(32, 24))
    for method in ("raw", "euclidean", "cka"):
        ref_w, ref_b, ref = ww.WeightWatcher().distances(first, second, method=method)
        our_w, our_b, ours = WeightWatcher().distances(first, second, method=method)
        assert list(ref.index) == list(ours.index)
        if method == "cka":  # conv: the reference averages per-slice √CKA, ours √(mean CKA)
            assert float(ours.loc[2, "delta_W"]) == pytest.approx(float(ref.loc[2, "delta_W"]))
            slices = [
                (first[0].weight[:, :, i, j], second[0].weight[:, :, i, j])
                for i in range(3)
                for j in range(3)
            ]
            values = [cka_similarity(x.detach().numpy(), y.detach().numpy()) for x, y in slices]
            assert float(ref.loc[1, "delta_W"]) == pytest.approx(np.mean(np.sqrt(values)), rel=1e-5)
            assert float(ours.loc[1, "delta_W"]) == pytest.approx(np.sqrt(np.mean(values)))
            continue
        np.testing.assert_allclose(ours["delta_W"], ref["delta_W"].astype(float), rtol=1e-5)
        assert our_w == pytest.approx(ref_w, rel=1e-5)
    # raw: the bias of the dense layer agrees; the reference never reads a conv layer's bias
    # (delta_b = 0), ours compares it too (deliberate: it is part of the layer)
    conv_bias = float(torch.linalg.norm(first[0].bias - second[0].bias).detach())
    ref_w, ref_b, ref = ww.WeightWatcher().distances(first, second, method="raw")
    our_w, our_b, ours = WeightWatcher().distances(first, second, method="raw")
    assert float(ref.loc[1, "delta_b"]) == 0.0
    assert float(ours.loc[1, "delta_b"]) == pytest.approx(conv_bias, rel=1e-6)
    assert float(ours.loc[2, "delta_b"]) == pytest.approx(float(ref.loc[2, "delta_b"]), rel=1e-5)
