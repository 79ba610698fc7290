"""Spectrum backends against independent references (NumPy's SVD, closed forms).

The Gram path (default ``auto``) must give the float64 SVD's eigenvalues to its documented
error bound δ = M·ε·λ_max, and its guard must send rank-deficient matrices to the SVD.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import alphahat
from alphahat.errors import LayerError
from alphahat.spectrum import LayerSpectrum, check_backend, check_device_available, layer_spectrum
from alphahat.spectrum.backends import GRAM_TAIL_RTOL, gram_matrix

EPS = np.finfo(np.float64).eps


def reference_evals(matrices: list[np.ndarray], scale: float = 1.0) -> np.ndarray:
    """Independent reference: NumPy's (not SciPy's) float64 SVD of each matrix, pooled."""
    svals = [np.linalg.svd(np.asarray(w, np.float64) * scale, compute_uv=False) for w in matrices]
    return np.sort(np.concatenate(svals) ** 2)


@pytest.mark.parametrize("shape", [(300, 300), (700, 120), (2000, 64), (129, 128)])
def test_gram_matches_the_svd_within_its_error_bound(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[0])
    w = rng.standard_normal(shape).astype(np.float32)
    spectrum = layer_spectrum([w], backend="gram")
    want = reference_evals([w])
    assert spectrum.method == "gram" and spectrum.guarded
    M = shape[1]
    assert spectrum.error_bound == pytest.approx(M * EPS * want[-1], rel=1e-12)
    err = np.abs(spectrum.eigenvalues - want)
    assert err.max() <= spectrum.error_bound  # the documented bound holds
    top = want >= 1e-2 * want[-1]
    np.testing.assert_allclose(spectrum.eigenvalues[top], want[top], rtol=1e-11)


def test_gram_matrix_is_blocked_without_changing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import alphahat.spectrum.backends as backends

    rng = np.random.default_rng(1)
    w = rng.standard_normal((1000, 40)).astype(np.float32)
    whole = np.asarray(w, np.float64).T @ np.asarray(w, np.float64)
    monkeypatch.setattr(backends, "_BLOCK_BYTES", 8 * 40 * 64)  # 64 rows per block
    blocked = gram_matrix(w, 0.5)
    np.testing.assert_allclose(blocked, 0.25 * whole, rtol=0, atol=1e-13 * np.abs(whole).max())
    assert w.dtype == np.float32  # the caller's array is untouched


def test_guard_sends_rank_deficient_matrices_to_the_svd() -> None:
    rng = np.random.default_rng(2)
    low_rank = rng.standard_normal((200, 5)) @ rng.standard_normal((5, 80))  # rank 5
    spectrum = layer_spectrum([low_rank], backend="gram")
    assert spectrum.method == "svd (gram guard)" and not spectrum.guarded
    np.testing.assert_allclose(spectrum.eigenvalues[-5:], reference_evals([low_rank])[-5:])
    report = alphahat.analyze({"lora.weight": low_rank}, min_evals=0)
    row = report.details.iloc[0]
    assert row["spectrum_method"] == "svd (gram guard)"
    assert row["matrix_rank"] == np.linalg.matrix_rank(low_rank) == 5


def test_conv_slices_are_batched_and_pooled() -> None:
    rng = np.random.default_rng(3)
    kernel = rng.standard_normal((48, 32, 3, 3))
    slices = [kernel[:, :, i, j] for i in range(3) for j in range(3)]
    spectrum = layer_spectrum(slices, math.sqrt(0.5), backend="gram")
    want = reference_evals(slices, math.sqrt(0.5))
    assert spectrum.method == "gram" and spectrum.num_matrices == 9
    assert spectrum.eigenvalues.shape == (9 * 32,)
    np.testing.assert_allclose(spectrum.eigenvalues, want, rtol=1e-9)


def test_resolves_checks_the_cutoff_and_the_tail() -> None:
    evals = np.array([1e-5 * (1 + 1e-12), 0.1, 1.0, 10.0])
    delta = 4 * EPS * 10.0
    near_cutoff = LayerSpectrum(evals, 8, 4, 1, "gram", delta, True)
    assert not near_cutoff.resolves(1e-5)  # 1e-5·(1+1e-12) is within 4δ of the cut-off
    clear = LayerSpectrum(evals[1:], 8, 3, 1, "gram", delta, True)
    assert clear.resolves(1e-5, tail_start=0.1)
    assert not clear.resolves(1e-5, tail_start=delta / (2 * GRAM_TAIL_RTOL))
    assert LayerSpectrum(evals, 8, 4, 1).resolves(1e-5)  # the SVD is never questioned


def test_float32_backend_is_close_to_float64() -> None:
    rng = np.random.default_rng(4)
    w = rng.standard_normal((400, 100))
    spectrum = layer_spectrum([w], backend="float32")
    want = reference_evals([w])
    assert spectrum.method == "float32" and not spectrum.guarded
    np.testing.assert_allclose(spectrum.eigenvalues, want, rtol=2e-5, atol=1e-5 * want[-1])


def test_torch_backend_on_cpu_matches_numpy() -> None:
    pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    w = rng.standard_normal((300, 90)).astype(np.float32)
    want = reference_evals([w])
    gram = layer_spectrum([w], backend="torch", device="cpu")
    assert gram.method == "torch gram@cpu"
    np.testing.assert_allclose(gram.eigenvalues, want, rtol=1e-10)
    low_rank = (rng.standard_normal((300, 3)) @ rng.standard_normal((3, 90))).astype(np.float32)
    fallback = layer_spectrum([low_rank], backend="torch")
    assert fallback.method == "torch svd@cpu"
    np.testing.assert_allclose(fallback.eigenvalues[-3:], reference_evals([low_rank])[-3:])
    single = layer_spectrum([w], backend="float32", device="cpu")
    assert single.method == "torch float32@cpu"
    np.testing.assert_allclose(single.eigenvalues, want, rtol=1e-4, atol=1e-5 * want[-1])


@pytest.mark.gpu
def test_torch_backend_on_cuda_matches_numpy() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    rng = np.random.default_rng(6)
    w = rng.standard_normal((1024, 512)).astype(np.float32)
    spectrum = layer_spectrum([w], backend="auto", device="cuda")
    assert spectrum.method == "torch gram@cuda"
    np.testing.assert_allclose(spectrum.eigenvalues, reference_evals([w]), rtol=1e-9)


def test_unavailable_device_and_bad_names_are_clear_errors() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match="backend must be one of"):
        check_backend("fast", None)
    with pytest.raises(ValueError, match="device must be"):
        check_backend("auto", "gpu0")
    with pytest.raises(ValueError, match="runs on the CPU"):
        check_backend("svd", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            check_device_available("cuda")
        with pytest.raises(ValueError, match="no CUDA GPU"):
            alphahat.analyze({"w": np.eye(8)}, device="cuda")


@pytest.mark.parametrize("backend", ["gram", "float32", "svd"])
def test_non_finite_weights_fail_the_layer_with_the_reason(backend: str) -> None:
    w = np.ones((20, 10))
    w[3, 4] = np.nan
    with pytest.raises(LayerError, match="1 NaN"):
        layer_spectrum([w], backend=backend)
    huge = np.full((20, 10), 1e200)
    with pytest.raises(LayerError, match="overflow"):
        layer_spectrum([huge], backend=backend)


def test_default_analysis_equals_the_svd_analysis_on_minilm(
    minilm_report: alphahat.Report, minilm_path: Path
) -> None:
    """The default (Gram) path vs the reference SVD path on real weights, per column.

    Two encoder blocks (12 matrices, 384 × 384 to 1536 × 384); the SVD of the 30522 × 384
    embedding alone would take most of this suite's time budget.
    """
    blocks = ["encoder.layer.0.*", "encoder.layer.5.*"]
    exact = alphahat.analyze(minilm_path, layers=blocks, backend="svd", blas_threads=1).details
    fast = minilm_report.details.set_index("name").loc[exact["name"]].reset_index()
    assert len(exact) == 12
    assert (fast["spectrum_method"] == "gram").all()
    assert (exact["spectrum_method"] == "svd").all()
    for col in ("alpha", "alpha_weighted", "D", "xmin", "sigma", "log_alpha_norm"):
        np.testing.assert_allclose(fast[col], exact[col], rtol=1e-9, err_msg=col)
    for col in ("lambda_max", "norm", "log_norm", "stable_rank", "entropy"):
        np.testing.assert_allclose(fast[col], exact[col], rtol=1e-12, err_msg=col)
    for col in ("num_pl_spikes", "matrix_rank", "status", "warning"):
        assert fast[col].tolist() == exact[col].tolist(), col
