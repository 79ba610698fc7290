"""FARMS α (Hu, Goel, Killiakov & Yang, ICML 2025): the ESD of fixed-aspect-ratio submatrices.

Checked against the paper's description computed here with a few lines of NumPy (windows of
n × m' with m' = min(m, M, ⌊N/Q⌋), n = ⌊Q m'⌋, ``windows`` evenly spaced starts per dimension,
s = max(1, ⌊(N − n)/(windows − 1)⌋), start_i = min(i s, N − n); the eigenvalues σ² of every
submatrix pooled), and against the paper's claim that it removes the aspect-ratio bias of α.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import alphahat
from alphahat.errors import OptionError
from alphahat.pipeline.core import analyse_layer
from alphahat.pipeline.options import AnalysisOptions
from alphahat.spectrum.farms import farms_windows


def _numpy_farms_esd(W: np.ndarray, m: int, Q: float, k: int) -> np.ndarray:
    """The FARMS ESD from the paper's description, independently of alphahat."""
    if W.shape[0] < W.shape[1]:
        W = W.T
    N, M = W.shape
    cols = min(m, M, int(N // Q))
    rows = int(Q * cols)

    def starts(length: int, size: int) -> list[int]:
        span = length - size
        step = max(1, span // (k - 1)) if k > 1 else 1
        return [min(i * step, span) for i in range(min(k, span // step + 1))]

    evals = [
        np.linalg.svd(W[r : r + rows, c : c + cols], compute_uv=False) ** 2
        for r in starts(N, rows)
        for c in starts(M, cols)
    ]
    return np.sort(np.concatenate(evals))


@pytest.mark.parametrize(
    ("shape", "m", "Q", "k"),
    [((2048, 128), 2000, 1.0, 10), ((300, 700), 100, 2.0, 4), ((256, 256), 64, 1.0, 3)],
)
def test_the_farms_esd_is_the_pooled_submatrix_spectrum(
    shape: tuple[int, int], m: int, Q: float, k: int
) -> None:
    W = np.random.default_rng(1).standard_normal(shape)
    options = AnalysisOptions(
        estimator="farms", farms_size=m, farms_aspect_ratio=Q, farms_windows=k, backend="svd"
    )
    result = analyse_layer(W, options)
    expected = _numpy_farms_esd(W, m, Q, k)
    np.testing.assert_allclose(result.spectrum.eigenvalues, expected, rtol=1e-10, atol=0)
    where = farms_windows(max(shape), min(shape), m, Q, k)
    assert result.row["farms_submatrices"] == where.count == expected.size // where.cols
    assert result.row["alpha_estimator"] == "farms"
    assert result.row["farms_shape"] == f"{where.rows}x{where.cols}"
    assert where.rows == int(Q * where.cols)  # one aspect ratio whatever W's


def test_windows_follow_the_papers_even_spacing() -> None:
    where = farms_windows(2048, 128, 2000, 1.0, 10)
    assert (where.rows, where.cols) == (128, 128)
    assert where.row_starts == tuple(213 * i for i in range(10))  # ⌊1920 / 9⌋ = 213
    assert where.col_starts == (0,)
    square = farms_windows(512, 512, 2000, 1.0, 10)  # W itself is the only window
    assert (square.rows, square.row_starts, square.col_starts) == (512, (0,), (0,))


def test_farms_removes_the_aspect_ratio_bias_of_alpha() -> None:
    """i.i.d. Gaussian W of shape 2048×128 (Q = 16) and 512×512 (Q = 1), seed 0.

    The claim is about the paper's fit, x_min at the median eigenvalue (``xmin_mid``).
    Measured (seed 0): classic α 5.82 (2048×128) vs 2.12 (512×512), a factor 2.7 from the
    shape alone; FARMS α 2.13 vs 2.12. (Also measured, not run here: 4096×256 vs
    1024×1024, classic 5.91 vs 2.13, FARMS 2.12 vs 2.13.)
    """
    rng = np.random.default_rng(0)
    tall, square = rng.standard_normal((2048, 128)), rng.standard_normal((512, 512))
    alphas = {}
    for estimator in ("classic", "farms"):
        options = AnalysisOptions(estimator=estimator, fix_fingers="xmin_mid")
        alphas[estimator] = [analyse_layer(w, options).row["alpha"] for w in (tall, square)]
    classic_tall, classic_square = alphas["classic"]
    farms_tall, farms_square = alphas["farms"]
    assert classic_tall > 2.5 * classic_square  # the bias
    assert abs(farms_tall - farms_square) < 0.05 * classic_square  # gone
    assert farms_square == classic_square  # a square W below the window size is unchanged
    assert farms_tall == pytest.approx(2.13, abs=0.05)
    assert classic_tall == pytest.approx(5.82, abs=0.1)


def test_the_norm_columns_describe_W_and_alpha_hat_uses_its_lambda_max() -> None:
    W = np.random.default_rng(2).standard_normal((600, 60))
    classic = analyse_layer(W, AnalysisOptions(backend="svd")).row
    farms = analyse_layer(W, AnalysisOptions(estimator="farms", backend="svd"))
    row = farms.row
    for column in ("lambda_max", "log_norm", "log_spectral_norm", "stable_rank", "matrix_rank"):
        assert row[column] == classic[column]
    assert row["alpha_weighted"] == pytest.approx(row["alpha"] * np.log10(classic["lambda_max"]))
    assert farms.matrix_spectrum is not None and farms.matrix_spectrum.eigenvalues.size == 60
    assert farms.spectrum.eigenvalues.size == 60 * 10
    assert row["num_pl_spikes"] == int(np.count_nonzero(farms.eigenvalues >= row["xmin"]))


def test_analyze_columns_options_and_the_default_output_unchanged() -> None:
    weights = {"a.weight": np.random.default_rng(3).standard_normal((400, 40))}
    default = alphahat.analyze(weights)
    farms = alphahat.analyze(weights, estimator="farms", farms_size=40, farms_windows=5)
    assert "alpha_estimator" not in default.details.columns
    assert not {"estimator", "farms_size"} & set(default.options)
    assert farms.details["alpha_estimator"].tolist() == ["farms"]
    assert int(farms.details["farms_submatrices"].iloc[0]) == 5
    assert farms.options["estimator"] == "farms" and farms.options["farms_windows"] == 5
    data = json.loads(farms.to_json())
    assert data["layers"][0]["farms_shape"] == "40x40"


@pytest.mark.parametrize("other", ["mp_fit", "randomize", "detX", "vectors", "fft"])
def test_farms_refuses_what_describes_Ws_own_esd(other: str) -> None:
    with pytest.raises(OptionError, match=f"estimator='farms' cannot be combined with {other}"):
        AnalysisOptions(estimator="farms", **{other: True})


def test_bad_farms_values_are_named() -> None:
    with pytest.raises(OptionError, match="farms_aspect_ratio must be a finite number ≥ 1"):
        AnalysisOptions(estimator="farms", farms_aspect_ratio=0.5)
    with pytest.raises(OptionError, match="estimator must be one of 'classic', 'farms'"):
        AnalysisOptions(estimator="sampled")  # type: ignore[arg-type]


def test_the_command_line_takes_the_farms_flags(tmp_path: Path) -> None:
    from safetensors.numpy import save_file
    from typer.testing import CliRunner

    from alphahat.cli import app

    path = tmp_path / "m.safetensors"
    save_file({"w.weight": np.random.default_rng(4).standard_normal((300, 30))}, str(path))
    args = ["analyze", str(path), "-f", "json", "-q", "--estimator", "farms", "--farms-size", "20"]
    result = CliRunner().invoke(app, [*args, "--farms-aspect-ratio", "1.5", "--farms-windows", "3"])
    assert result.exit_code == 0, result.output
    layer = json.loads(result.stdout)["layers"][0]
    assert layer["alpha_estimator"] == "farms" and layer["farms_shape"] == "30x20"
    assert layer["farms_submatrices"] == 3 * 3
    bad = CliRunner().invoke(app, ["analyze", str(path), "--estimator", "farms", "--mp-fit"])
    assert bad.exit_code == 2
    assert "alphahat: error: estimator='farms' cannot be combined with mp_fit=True" in bad.output
