"""Layers that stay on their torch device, and the guarded float32 Gram path.

An in-memory module's tensors analysed with the torch backend on their own device are not read
to host memory: only the eigenvalues come back (``layers.device.DeviceMatrices``). There is
no GPU here, so the tests use torch's CPU device, where the device path and the host path
(NumPy arrays sent to torch) must give the same rows; the host loader of every tensor is
made to fail, so a test passes only if no weight went through it.

The float32 Gram path is checked against NumPy's float64 SVD (an independent reference):
every eigenvalue within the bound δ₃₂ = M·ε₃₂·λ_max, and α within 2τ(α − 1)² of the float64
analysis where x_min is the same.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

import alphahat  # noqa: E402
from alphahat.layers.device import DeviceMatrices  # noqa: E402
from alphahat.monitor import Monitor  # noqa: E402
from alphahat.pipeline import AnalysisOptions  # noqa: E402
from alphahat.pipeline.core import fit_stage  # noqa: E402
from alphahat.pipeline.walk import (  # noqa: E402
    analyse_loaded,
    iter_layers,
    load_layer,
    plan_layers,
    spectrum_device,
)
from alphahat.sources.arrays import TorchTensorLoader  # noqa: E402
from alphahat.sources.torch_sources import ModuleSource  # noqa: E402
from alphahat.spectrum import LayerSpectrum, layer_spectrum  # noqa: E402
from alphahat.spectrum.backends import FLOAT32_EPS  # noqa: E402

#: every number of a row
NUMBERS = [
    "alpha", "alpha_weighted", "D", "sigma", "xmin", "xmax", "num_pl_spikes", "lambda_max",
    "log_spectral_norm", "log_norm", "log_alpha_norm", "stable_rank", "entropy", "matrix_rank",
]  # fmt: skip


def _model(dtype: Any = torch.float32) -> Any:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 24, 3),
        torch.nn.Flatten(),
        torch.nn.Linear(24 * 6 * 6, 160),
        torch.nn.ReLU(),
        torch.nn.Linear(160, 90),
        torch.nn.Bilinear(12, 20, 30),
    )
    return model.to(dtype)


def _refuse_host_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make every in-memory torch tensor's host read fail; the list counts attempts."""
    reads: list[str] = []

    def refuse(self: TorchTensorLoader) -> Any:
        reads.append(str(tuple(self.tensor.shape)))
        raise AssertionError("a weight was read to host memory")

    monkeypatch.setattr(TorchTensorLoader, "__call__", refuse)
    return reads


@pytest.fixture
def no_host_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every host read of an in-memory torch tensor fails (the list counts attempts)."""
    return _refuse_host_reads(monkeypatch)


def _host_rows(model: Any, options: AnalysisOptions) -> pd.DataFrame:
    """The module's rows through the host path: each tensor read to NumPy, then analysed."""
    rows = []
    for layer in iter_layers(model, options):  # no device: every tensor read to the host
        assert layer.on_device is None and layer.values is not None
        rows.append({"name": layer.name, **analyse_loaded(layer, options).row})
    return pd.DataFrame(rows)


def _compare(got: Any, want: Any, rtol: float = 1e-12) -> None:
    assert list(got["name"]) == list(want["name"])
    for column in NUMBERS:
        np.testing.assert_allclose(
            got[column].astype(float), want[column].astype(float), rtol=rtol, err_msg=column
        )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_device_rows_equal_host_rows_and_no_weight_reaches_the_host(
    dtype: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _model(dtype)
    want = _host_rows(model, AnalysisOptions(backend="torch"))
    reference = _host_rows(model, AnalysisOptions(backend="svd"))  # LAPACK, float64
    reads = _refuse_host_reads(monkeypatch)
    got = alphahat.analyze(model, backend="torch").details
    assert reads == []
    assert set(got["status"]) == {"fitted"}
    assert set(got["spectrum_method"]) <= {"torch gram@cpu", "torch svd@cpu"}
    assert list(got["kind"]) == ["conv2d", "linear", "linear", "bilinear"]
    _compare(got, want)
    np.testing.assert_allclose(got["alpha"], reference["alpha"], rtol=1e-9)


def test_options_that_read_the_weights_read_them_on_the_host(no_host_reads: list[str]) -> None:
    model = _model()
    with pytest.raises(AssertionError, match="host memory"):
        load_layer(plan_layers(ModuleSource(model))[0])  # no device: the host path
    assert spectrum_device(AnalysisOptions(backend="torch")) == "cpu"
    assert spectrum_device(AnalysisOptions(backend="torch", randomize=True)) is None
    assert spectrum_device(AnalysisOptions()) is None  # NumPy's Gram path
    no_host_reads.clear()
    report = alphahat.analyze(model, backend="torch", randomize=True)
    assert set(report.details["status"]) == {"failed"}  # each read was refused
    assert len(no_host_reads) == len(report.details)


def test_a_device_layer_that_must_read_its_weights_reads_them_once() -> None:
    model = _model()
    plans = [p for p in plan_layers(ModuleSource(model)) if p.status == "analyse"]
    layer = load_layer(plans[0], device="cpu")
    on_device = layer.on_device
    assert isinstance(on_device, DeviceMatrices) and layer.values is None
    assert len(on_device) == 9 and on_device.shape == (24, 3)  # 3×3 kernel: 9 slices, 24 × 3
    weight = on_device.host_weight()
    assert on_device.host_weight() is weight
    np.testing.assert_array_equal(weight, model[0].weight.detach().numpy())
    pairs = zip(on_device.tensors, on_device.host_matrices(), strict=True)
    for device_matrix, host_matrix in pairs:
        np.testing.assert_array_equal(device_matrix.numpy(), host_matrix)
    with_vectors = alphahat.pipeline.analyse_layer(on_device, AnalysisOptions(vectors=True))
    host = alphahat.pipeline.analyse_layer(
        on_device.host_matrices(), AnalysisOptions(vectors=True), weight=weight
    )
    assert with_vectors.row["alpha"] == host.row["alpha"]


def test_a_tensor_on_another_device_or_derived_is_read_to_the_host() -> None:
    model = _model()
    plans = [p for p in plan_layers(ModuleSource(model)) if p.status == "analyse"]
    assert load_layer(plans[1], device="cuda").on_device is None  # the tensor is on the CPU
    assert load_layer(plans[1], device="cuda").values is not None
    sliced = plan_layers(ModuleSource(model), AnalysisOptions(pool=False))
    slice_plan = next(p for p in sliced if p.slice_id == 0)
    assert load_layer(slice_plan, device="cpu").on_device is None  # a slice: its own loader


def test_non_finite_weights_fail_their_row_only(no_host_reads: list[str]) -> None:
    model = _model()
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
        model[4].weight[1, 1] = float("inf")
    rows = alphahat.analyze(model, backend="torch").details.set_index("name")
    assert rows.loc["2.weight", "reason"] == "weights contain 1 NaN value(s)"
    assert rows.loc["4.weight", "reason"] == "weights contain 1 Inf value(s)"
    assert rows.loc["0.weight", "status"] == "fitted"


def test_a_spectrum_that_does_not_resolve_is_recomputed_on_the_device() -> None:
    rng = np.random.default_rng(3)
    w = torch.from_numpy(rng.standard_normal((300, 120)).astype(np.float32))
    on_device = DeviceMatrices(w, (w,), "cpu", TorchTensorLoader(w), lambda a: [a])
    exact = layer_spectrum([w.numpy()], backend="svd")
    loose = LayerSpectrum(exact.eigenvalues, 300, 120, 1, "torch gram@cpu", 1.0, True)
    spectrum, fit = fit_stage(loose, on_device, 1.0, AnalysisOptions(backend="torch"))
    assert spectrum.method == "torch svd@cpu (gram guard)" and not spectrum.guarded
    reference = np.sort(np.linalg.svd(w.numpy().astype(np.float64), compute_uv=False) ** 2)
    np.testing.assert_allclose(spectrum.eigenvalues, reference, rtol=1e-12)
    # the float32 Gram path goes on to float64's on the same device first
    loose32 = LayerSpectrum(exact.eigenvalues, 300, 120, 1, "torch gram float32@cpu", 1.0, True)
    spectrum, _ = fit_stage(loose32, on_device, 1.0, AnalysisOptions(backend="torch"))
    assert spectrum.method == "torch gram@cpu"


@pytest.mark.parametrize("background", [False, True])
def test_the_monitor_reads_no_weight_to_the_host(
    background: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _model()
    want = _host_rows(model, AnalysisOptions(backend="torch"))
    reads = _refuse_host_reads(monkeypatch)
    options = {"backend": "torch"}
    with Monitor(model, None, every_steps=1, options=options, background=background) as monitor:
        monitor.step(1)
        with torch.no_grad():  # the background snapshot holds the values of step 1
            for parameter in model.parameters():
                parameter.mul_(2.0)
    summary = monitor.history[0]
    assert reads == []
    got = [dict(row) for row in summary.rows]
    assert [r["name"] for r in got] == list(want["name"])
    for column in NUMBERS:
        np.testing.assert_allclose(
            [float(r[column]) for r in got], want[column].astype(float), rtol=1e-12
        )


# ---------------------------------------------------------------------------------------------
# the float32 Gram path


@pytest.fixture(scope="module")
def minilm_float64(minilm_path: Path) -> Any:
    return alphahat.analyze(minilm_path, backend="torch", keep_eigenvalues=True)


def test_float32_gram_eigenvalues_are_within_their_bound(minilm_path: Path) -> None:
    layers = ["encoder.layer.0.*", "pooler.*"]
    report = alphahat.analyze(
        minilm_path, layers=layers, backend="torch", float32_tolerance=1e-2, keep_fits=True
    )
    from safetensors.numpy import load_file

    weights = load_file(str(minilm_path))
    checked = 0
    for name, result in report.fits.items():
        spectrum = result.spectrum
        if not spectrum.method.startswith("torch gram float32"):
            continue
        w = weights[name].astype(np.float64)
        reference = np.sort(np.linalg.svd(w, compute_uv=False) ** 2)
        M = min(w.shape)
        assert spectrum.error_bound == pytest.approx(M * FLOAT32_EPS * reference[-1], rel=1e-5)
        assert np.abs(spectrum.eigenvalues - reference).max() <= spectrum.error_bound
        checked += 1
    assert checked >= 2


def test_float32_rows_agree_with_float64_within_the_tolerance(
    minilm_path: Path, minilm_float64: Any
) -> None:
    tolerance = 1e-3
    got = alphahat.analyze(minilm_path, backend="torch", float32_tolerance=tolerance).details
    want = minilm_float64.details
    assert list(got["name"]) == list(want["name"])
    float32 = got["spectrum_method"] == "torch gram float32@cpu"
    assert 0 < float32.sum() < len(got)  # some layers pass the guard at 1e-3, not all
    assert set(got["spectrum_method"][~float32]) <= {"torch gram@cpu", "torch svd@cpu"}
    for i in np.flatnonzero(float32):
        a32, a64 = float(got["alpha"].iloc[i]), float(want["alpha"].iloc[i])
        x32, x64 = float(got["xmin"].iloc[i]), float(want["xmin"].iloc[i])
        assert abs(x32 / x64 - 1) <= 2 * tolerance  # the same x_min, to its error
        assert abs(a32 - a64) <= 2 * tolerance * (a64 - 1) ** 2
    # the layers that went on to float64 are the float64 analysis's
    np.testing.assert_allclose(
        got["alpha"][~float32].astype(float), want["alpha"][~float32].astype(float), rtol=1e-12
    )


def test_float32_is_not_tried_where_it_cannot_pass_or_products_are_not_float32(
    minilm_path: Path,
) -> None:
    layer = ["encoder.layer.0.attention.self.query.weight"]  # M = 384: 384·ε₃₂ = 4.6e-5
    below = alphahat.analyze(minilm_path, layers=layer, backend="torch", float32_tolerance=4e-5)
    assert list(below.details["spectrum_method"]) == ["torch gram@cpu"]
    assert 384 * FLOAT32_EPS > 4e-5
    precision = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")  # TF32 / bf16 products allowed
        assert _float32_layer_method(minilm_path) == "torch gram@cpu"
    finally:
        torch.set_float32_matmul_precision(precision)
    assert _float32_layer_method(minilm_path) == "torch gram float32@cpu"


#: a MiniLM-L6 layer that keeps float32 at a tolerance of 1e-2 when products are float32
FLOAT32_LAYER = "encoder.layer.0.intermediate.dense.weight"


def _float32_layer_method(minilm_path: Path) -> str:
    report = alphahat.analyze(
        minilm_path, layers=[FLOAT32_LAYER], backend="torch", float32_tolerance=1e-2
    )
    assert list(report.details["status"]) == ["fitted"]
    return str(report.details["spectrum_method"].iloc[0])


@pytest.mark.skipif(
    not hasattr(torch.backends.mkldnn, "matmul"), reason="torch without per-backend precision"
)
def test_float32_is_skipped_under_torchs_per_backend_precision_settings(
    minilm_path: Path,
) -> None:
    matmul = torch.backends.mkldnn.matmul
    try:
        matmul.fp32_precision = "bf16"  # the newer API: torch's older getters now raise
        assert _float32_layer_method(minilm_path) == "torch gram@cpu"
    finally:
        matmul.fp32_precision = "none"
    assert _float32_layer_method(minilm_path) == "torch gram float32@cpu"


def test_float32_tolerance_needs_the_torch_gram_path() -> None:
    with pytest.raises(alphahat.pipeline.options.OptionError, match="torch Gram path"):
        AnalysisOptions(float32_tolerance=1e-3)
    with pytest.raises(alphahat.pipeline.options.OptionError, match="positive number"):
        AnalysisOptions(backend="torch", float32_tolerance=0.0)
    options = AnalysisOptions(backend="torch", float32_tolerance=1e-3)
    assert options.rows_key()["float32_tolerance"] == 1e-3
    assert "float32_tolerance" not in AnalysisOptions().rows_key()
    assert math.isclose(384 * FLOAT32_EPS, 4.58e-5, rel_tol=1e-2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_a_cuda_module_is_analysed_on_its_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model()
    want = _host_rows(model, AnalysisOptions(backend="svd"))  # LAPACK on the host
    model = model.to("cuda")
    reads = _refuse_host_reads(monkeypatch)
    got = alphahat.analyze(model, device="cuda").details
    assert reads == []
    assert set(got["spectrum_method"]) <= {"torch gram@cuda:0", "torch svd@cuda:0"}
    _compare(got, want, rtol=1e-9)
    with Monitor(model, None, every_steps=1) as monitor:  # the monitor picks the model's GPU
        summary = monitor.step(1)
    assert summary is not None and reads == []
    np.testing.assert_allclose(
        [float(r["alpha"]) for r in summary.rows], want["alpha"].astype(float), rtol=1e-9
    )


def test_the_monitor_takes_torch_options_for_a_model_on_a_device(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import alphahat.monitor.core as monitor_core

    monkeypatch.setattr(monitor_core, "_device_of", lambda model: "cpu")  # as for a GPU model
    model = _model()
    monitor = Monitor(model, None, options={"float32_tolerance": 1e-2})
    assert monitor.options.device == "cpu" and monitor.options.float32_tolerance == 1e-2
    summary = monitor.step(0, force=True)
    assert summary is not None
    assert {r["spectrum_method"].partition("@")[2] for r in summary.rows} == {"cpu"}
    chosen = Monitor(model, None, options=AnalysisOptions(backend="svd"))
    assert chosen.options.device is None  # a backend of the user's own is kept
