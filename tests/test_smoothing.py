"""SVD smoothing/sharpening: best rank-k approximations, new weights, safetensors output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from alphahat.metrics.detx import detx_condition
from alphahat.smoothing import low_rank, svd_smoothing


def rank(matrix: np.ndarray) -> int:
    """Numerical rank at float32 resolution."""
    s = np.linalg.svd(np.asarray(matrix, np.float64), compute_uv=False)
    return int(np.count_nonzero(s > 1e-5 * s[0]))


def test_low_rank_is_the_eckart_young_approximation() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(20, 12))
    k = 4
    approx = low_rank(w, k)
    s = np.linalg.svd(w, compute_uv=False)
    assert np.linalg.matrix_rank(approx) == k
    # Eckart–Young: ‖W − W_k‖_F² = Σ_{i>k} σᵢ²
    assert np.linalg.norm(w - approx) ** 2 == pytest.approx(float((s[k:] ** 2).sum()), rel=1e-10)
    np.testing.assert_allclose(low_rank(w, k, remove=True), w - approx, atol=1e-12)
    np.testing.assert_allclose(low_rank(w, 99), w, atol=1e-12)


def test_svd_smoothing_returns_new_weights_and_keeps_the_input() -> None:
    rng = np.random.default_rng(1)
    model = {
        "a.weight": rng.normal(size=(40, 30)).astype(np.float32),
        "a.bias": rng.normal(size=40).astype(np.float32),
        "c.weight": rng.normal(size=(8, 6, 3, 3)).astype(np.float32),
    }
    before = {k: v.copy() for k, v in model.items()}
    result = svd_smoothing(model, method="svd", percent=0.5)
    for k, v in model.items():
        np.testing.assert_array_equal(v, before[k])  # never edits the caller's weights
    assert set(result.weights) == set(model)
    np.testing.assert_array_equal(result.weights["a.bias"], model["a.bias"])
    assert result.weights["a.weight"].dtype == np.float32
    assert rank(result.weights["a.weight"]) == 15  # ⌊0.5·30⌋
    details = result.details.set_index("name")
    assert details.loc["a.weight", "num_components"] == 15
    # conv: k = ⌊0.5 · 6 · 9⌋ = 27 pooled → ⌈27/9⌉ = 3 per kernel slice
    assert details.loc["c.weight", "per_matrix"] == 3
    conv = result.weights["c.weight"].astype(np.float64)
    assert all(rank(conv[:, :, i, j]) == 3 for i in range(3) for j in range(3))


def test_detx_method_keeps_the_detx_tail_and_sharpen_removes_components() -> None:
    rng = np.random.default_rng(2)
    w = rng.normal(size=(60, 40))
    w[:, 0] *= 10
    model = {"w.weight": w}
    kept = svd_smoothing(model, method="detX").weights["w.weight"]
    expected_k = detx_condition(np.linalg.svd(w, compute_uv=False) ** 2).num
    assert np.linalg.matrix_rank(kept) == expected_k
    sharpened = svd_smoothing(model, method="sharpen")
    assert sharpened.details.loc[0, "status"] == "smoothed"


def test_save_writes_a_safetensors_file(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    model = {"w.weight": np.random.default_rng(3).normal(size=(10, 8)).astype(np.float32)}
    result = svd_smoothing(model, method="svd", percent=0.25)
    result.save(tmp_path / "smoothed.safetensors")
    loaded = load_file(str(tmp_path / "smoothed.safetensors"))
    np.testing.assert_array_equal(loaded["w.weight"], result.weights["w.weight"])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="method"):
        svd_smoothing({}, method="nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="percent"):
        svd_smoothing({}, method="svd", percent=0)


def test_compat_svd_smoothing_returns_a_copy_close_to_the_reference() -> None:
    """Ours: exact SVD, a new model; the reference: randomized truncated SVD, in place."""
    torch = pytest.importorskip("torch")
    ww = pytest.importorskip("weightwatcher")
    from alphahat.compat import WeightWatcher

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 48), torch.nn.Linear(48, 32))
    original = model[0].weight.detach().clone()
    smoothed = WeightWatcher(model=model).SVDSmoothing(method="svd", percent=0.5)
    assert torch.equal(model[0].weight, original)  # the caller's model is untouched
    ours = smoothed[0].weight.detach().numpy().astype(np.float64)
    assert rank(ours) == 24
    reference = ww.WeightWatcher(model=model).SVDSmoothing(method="svd", percent=0.5)
    theirs = reference[0].weight.detach().numpy().astype(np.float64)
    exact = low_rank(original.numpy(), 24)
    assert np.linalg.norm(ours - exact) < 1e-5 * np.linalg.norm(exact)
    assert np.linalg.norm(theirs - exact) < 0.05 * np.linalg.norm(exact)  # randomized SVD


def test_pl_spikes_keeps_the_num_pl_spikes_of_analyze() -> None:
    """k of ``pl_spikes`` is the table's num_pl_spikes: the same fitted sample and the same
    checks. An orthogonal matrix (every σ = 1) has no tail — its "fit" is rounding noise, with
    α ≈ 1e15, which analyze fails as ``constant`` with no spikes — so nothing is kept."""
    import alphahat

    rng = np.random.default_rng(5)
    orthogonal, _ = np.linalg.qr(rng.standard_normal((120, 120)))
    model = {"a.weight": rng.standard_t(3, size=(300, 200)), "q.weight": orthogonal}
    table = alphahat.analyze(model).details.set_index("name")
    assert "constant" in table.loc["q.weight", "reason"]
    details = svd_smoothing(model, method="pl_spikes").details.set_index("name")
    for name in model:
        assert details.loc[name, "num_components"] == table.loc[name, "num_pl_spikes"]
    assert details.loc["q.weight", "num_components"] == 0
