"""Conv options of ``alphahat.analyze``: ``pool=False`` (one row per kernel slice), the FFT
spectrum of the convolution operator (checked against the dense operator matrix built here) and
the ``conv_scale`` conventions."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import alphahat
from alphahat.errors import LayerError
from alphahat.spectrum.conv_fft import conv_operator_spectrum


def _dense_operator(kernel: np.ndarray, n: int) -> np.ndarray:
    """The matrix of y[o, p] = Σ_{i,a} K[o, i, a] x[i, (p + a) mod n] on an n^d periodic grid.

    (PyTorch's cross-correlation with circular padding, stride 1; p and a are d-tuples.)
    Built entry by entry, independently of any FFT.
    """
    c_out, c_in, *k = kernel.shape
    d = len(k)
    grid = list(itertools.product(range(n), repeat=d))
    index = {p: j for j, p in enumerate(grid)}
    size = len(grid)
    op = np.zeros((c_out * size, c_in * size))
    for o, i in itertools.product(range(c_out), range(c_in)):
        for p in grid:
            for a in itertools.product(*(range(kk) for kk in k)):
                q = tuple((pp + aa) % n for pp, aa in zip(p, a, strict=True))
                op[o * size + index[p], i * size + index[q]] += kernel[(o, i, *a)]
    return op


def _operator_evals(kernel: np.ndarray, n: int) -> np.ndarray:
    singular = np.linalg.svd(_dense_operator(kernel, n), compute_uv=False)
    m = min(kernel.shape[:2]) * n ** (kernel.ndim - 2)
    return np.sort(singular**2)[-m:]  # the rest are the zeros of the non-square operator


@pytest.mark.parametrize(
    ("shape", "n"),
    [((3, 2, 3, 3), 5), ((2, 4, 2, 3), 4), ((4, 3, 3), 7), ((2, 2, 2, 2, 2), 3)],
    ids=["conv2d", "conv2d-wide-nonsquare-kernel", "conv1d", "conv3d"],
)
def test_fft_spectrum_is_the_dense_operator_spectrum(shape: tuple[int, ...], n: int) -> None:
    kernel = np.random.default_rng(sum(shape)).normal(size=shape)
    spectrum = conv_operator_spectrum(kernel, n, scale=0.5)
    expected = _operator_evals(kernel, n) * 0.25
    np.testing.assert_allclose(spectrum.eigenvalues, expected, rtol=1e-10, atol=1e-12)
    assert spectrum.num_matrices == n ** (len(shape) - 2)
    assert (spectrum.N, spectrum.M) == (max(shape[:2]), min(shape[:2]))
    # in blocks of frequencies: the same
    blocked = conv_operator_spectrum(kernel, n, scale=0.5, chunk_elements=1)
    np.testing.assert_allclose(blocked.eigenvalues, spectrum.eigenvalues, rtol=1e-12)


def test_fft_spectrum_rejects_bad_kernels() -> None:
    with pytest.raises(LayerError, match="smaller than the kernel"):
        conv_operator_spectrum(np.ones((2, 2, 5, 5)), 4)
    with pytest.raises(LayerError, match="NaN or Inf"):
        conv_operator_spectrum(np.full((2, 2, 3, 3), np.nan), 4)


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return {
        "conv.weight": rng.normal(size=(16, 10, 3, 2)),
        "fc.weight": rng.normal(size=(30, 20)),
        "tiny.weight": rng.normal(size=(6, 4, 3, 3)),  # 4 eigenvalues per slice
    }


def test_analyze_fft(weights: dict[str, np.ndarray]) -> None:
    report = alphahat.analyze(weights, fft=True, fft_size=4, keep_eigenvalues=True)
    details = report.details.set_index("name")
    conv = details.loc["conv.weight"]
    assert conv["num_matrices"] == 16 and conv["num_evals"] == 16 * 10
    assert conv["spectrum_method"] == "fft svd"
    expected = _operator_evals(weights["conv.weight"], 4) / 2  # reference scale: λ halved
    np.testing.assert_allclose(report.eigenvalues["conv.weight"], expected, rtol=1e-10)
    assert conv["lambda_max"] == pytest.approx(expected[-1], rel=1e-12)
    # linear layers are unaffected
    plain = alphahat.analyze(weights, layers=["fc.weight"]).details.iloc[0]
    assert details.loc["fc.weight", "alpha"] == plain["alpha"]
    too_small = alphahat.analyze(weights, fft=True, fft_size=2).details.set_index("name")
    assert too_small.loc["conv.weight", "status"] == "failed"
    assert "fft_size=2 is smaller than the 3x2 kernel" in too_small.loc["conv.weight", "reason"]
    assert too_small.loc["fc.weight", "status"] == "fitted"


def test_pool_false_gives_one_row_per_kernel_slice(weights: dict[str, np.ndarray]) -> None:
    report = alphahat.analyze(weights, pool=False, keep_eigenvalues=True)
    details = report.details
    conv = details[details["name"].str.startswith("conv.weight")]
    names = [f"conv.weight [slice {i},{j}]" for i in range(3) for j in range(2)]
    assert list(conv["name"]) == names
    assert list(conv["slice_id"]) == list(range(6)) and set(conv["layer_id"]) == {0}
    assert (conv["num_evals"] == 10).all() and (conv["num_matrices"] == 1).all()
    for (i, j), row in zip(itertools.product(range(3), range(2)), conv.itertuples(), strict=True):
        # reference per-slice convention: W[:, :, i, j] · k/√2, k² = 6 kernel positions
        singular = np.linalg.svd(weights["conv.weight"][:, :, i, j], compute_uv=False)
        expected = np.sort(singular**2 * 6 / 2)
        np.testing.assert_allclose(report.eigenvalues[row.name], expected, rtol=1e-10)
    fc = details.set_index("name").loc["fc.weight"]
    assert pd_isna(fc["slice_id"]) and fc["num_evals"] == 20
    # slices of 4 eigenvalues < min_evals=8 are skipped, each with the reason
    tiny = report.coverage[report.coverage["name"].str.startswith("tiny.weight")]
    assert len(tiny) == 9 and (tiny["status"] == "skipped").all()
    assert tiny["reason"].str.contains("per slice < min_evals=8").all()
    unscaled = alphahat.analyze(weights, pool=False, conv_scale="none", keep_eigenvalues=True)
    first = "conv.weight [slice 0,0]"
    np.testing.assert_allclose(
        unscaled.eigenvalues[first] * 3, report.eigenvalues[first], rtol=1e-12
    )


def pd_isna(value: object) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def test_conv_scale_conventions(weights: dict[str, np.ndarray]) -> None:
    lam = {
        scale: alphahat.analyze(weights, conv_scale=scale).details.set_index("name")
        for scale in ("none", "reference", "papers")
    }
    none = lam["none"].loc["conv.weight", "lambda_max"]
    assert lam["reference"].loc["conv.weight", "lambda_max"] == pytest.approx(none / 2)
    # papers: each slice × k/√2, here √(3·2/2): λ × 3
    assert lam["papers"].loc["conv.weight", "lambda_max"] == pytest.approx(none * 3)
    assert (
        lam["papers"].loc["fc.weight", "lambda_max"] == lam["none"].loc["fc.weight", "lambda_max"]
    )
    # α is scale-invariant
    assert lam["papers"].loc["conv.weight", "alpha"] == pytest.approx(
        lam["none"].loc["conv.weight", "alpha"], rel=1e-9
    )
    assert math.isclose(
        lam["papers"].loc["conv.weight", "log_norm"],
        lam["none"].loc["conv.weight", "log_norm"] + math.log10(3),
    )


def test_conv_option_errors(weights: dict[str, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="exclude each other"):
        alphahat.analyze(weights, fft=True, pool=False)
    with pytest.raises(ValueError, match="randomize"):
        alphahat.analyze(weights, fft=True, randomize=True)
    with pytest.raises(ValueError, match="fft_size"):
        alphahat.analyze(weights, fft=True, fft_size=0)
    with pytest.raises(ValueError, match="conv_scale"):
        alphahat.analyze(weights, conv_scale="k")


def test_pool_false_in_worker_processes(weights: dict[str, np.ndarray], tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Workers re-open the file and re-plan it: the slices are found by (layer_id, name)."""
    from safetensors.numpy import save_file

    path = tmp_path / "m.safetensors"
    save_file(weights, str(path))
    serial = alphahat.analyze(path, pool=False).details
    parallel = alphahat.analyze(path, pool=False, workers=2).details
    columns = ["layer_id", "name", "slice_id", "alpha", "lambda_max"]
    assert serial[columns].equals(parallel[columns])


def test_describe_lists_the_slices_analyze_would_analyse(weights, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from safetensors.numpy import save_file
    from typer.testing import CliRunner

    from alphahat.cli import app

    plan = alphahat.describe(weights, pool=False)
    report = alphahat.analyze(weights, pool=False)
    assert list(plan["name"]) == list(report.coverage["name"])
    assert list(plan["status"]) == list(report.coverage["status"])
    slices = plan[plan["name"].str.startswith("conv.weight [slice")]
    assert len(slices) == 6 and (slices["status"] == "analysed").all()
    pooled = alphahat.describe(weights)
    assert list(pooled.loc[pooled["name"].str.startswith("conv"), "name"]) == ["conv.weight"]
    path = tmp_path / "w.safetensors"
    save_file(weights, str(path))
    result = CliRunner().invoke(app, ["describe", str(path), "--no-pool", "-f", "csv"])
    assert result.exit_code == 0, result.output
    assert "conv.weight [slice 2,1]" in result.stdout
