"""Allocations from α, each against its paper's equations computed here in a few lines of numpy.

AlphaPruning (Lu et al., NeurIPS 2024), TempBalance (Zhou et al., NeurIPS 2023), AlphaDecay
(He et al., 2025), AlphaLoRA (Qing et al., EMNLP 2024); the budget to 1e-12, the bounds, NaN
layers, all-equal α, one layer, groups, the torch parameter groups with a real optimizer, and
``alphahat allocate`` on the real MiniLM-L6.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphahat.allocation import (
    alpha_table,
    as_mapping,
    largest_remainder,
    learning_rate_factors,
    lora_expert_counts,
    scale_to_budget,
    shift_to_budget,
    sparsity_ratios,
    weight_decay_factors,
)
from alphahat.errors import OptionError

ALPHA = np.array([2.1, 3.4, 2.8, 5.9, 4.2, 2.5, 3.9, 3.1])
N_PARAMS = np.array([4096, 4096, 16384, 4096, 16384, 1024, 4096, 16384])


def table(
    alpha: np.ndarray = ALPHA, n_params: np.ndarray = N_PARAMS, **extra: object
) -> pd.DataFrame:
    names = [f"layers.{i // 2}.w{i % 2}.weight" for i in range(len(alpha))]
    return pd.DataFrame({"name": names, "alpha": alpha, "n_params": n_params, **extra})


def weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    return float(np.sum(values * weights) / np.sum(weights))


# ------------------------------------------------------------------ AlphaPruning


def alphapruning_reference(
    q: np.ndarray, n: np.ndarray, s: float, s1: float, s2: float
) -> np.ndarray:
    """The paper's linear map into [s1, s2], then the rescaling to the global sparsity S."""
    phi = (q - q.min()) / (q.max() - q.min()) * (s2 - s1) + s1
    return phi * (n.sum() * s / np.sum(n * phi))


@pytest.mark.parametrize(("target", "epsilon"), [(0.5, 0.3), (0.7, 0.2), (0.6, 0.05), (0.3, 0.9)])
def test_alphapruning_is_the_papers_linear_map_rescaled(target: float, epsilon: float) -> None:
    expected = alphapruning_reference(ALPHA, N_PARAMS, target, 1 - epsilon, 1 + epsilon)
    assert expected.max() < 1  # no cap in these cases: the formula holds as written
    got = sparsity_ratios(table(), target, epsilon=epsilon)["sparsity"].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert abs(weighted_mean(got, N_PARAMS) - target) < 1e-12
    order = np.argsort(ALPHA)
    assert np.all(np.diff(got[order]) > 0)  # larger α, more sparsity


def test_alphapruning_absolute_range_is_target_plus_minus_epsilon_shifted() -> None:
    target, epsilon = 0.6, 0.2
    phi = (ALPHA - ALPHA.min()) / (ALPHA.max() - ALPHA.min()) * (2 * epsilon) + target - epsilon
    expected = phi + (target - np.sum(N_PARAMS * phi) / N_PARAMS.sum())  # one shift, no clip
    got = sparsity_ratios(table(), target, epsilon=epsilon, range_mode="absolute")["sparsity"]
    np.testing.assert_allclose(got.to_numpy(), expected, rtol=0, atol=1e-12)
    assert got.max() - got.min() == pytest.approx(2 * epsilon, abs=1e-12)
    assert abs(weighted_mean(got.to_numpy(), N_PARAMS) - target) < 1e-12
    clipped = sparsity_ratios(table(), 0.9, epsilon=0.3, range_mode="absolute")["sparsity"]
    assert clipped.max() == 1.0 and clipped.min() >= 0
    assert abs(weighted_mean(clipped.to_numpy(), N_PARAMS) - 0.9) < 1e-12


def test_alphapruning_caps_ratios_at_one_and_still_meets_the_budget() -> None:
    # One light-tailed small layer: the plain rescaling would ask it to drop > 100 % of weights.
    alpha = np.array([2.0, 2.2, 2.4, 9.0])
    n = np.array([10_000, 10_000, 10_000, 500])
    target, epsilon = 0.8, 0.5
    assert alphapruning_reference(alpha, n, target, 1 - epsilon, 1 + epsilon).max() > 1
    got = sparsity_ratios(table(alpha, n), target, epsilon=epsilon)["sparsity"].to_numpy()
    assert got.max() == 1.0 and got.min() >= 0
    assert abs(weighted_mean(got, n) - target) < 1e-12
    # The others keep the paper's proportions φᵢ (one common scale), found here by bisection.
    phi = (alpha - alpha.min()) / (alpha.max() - alpha.min()) * (2 * epsilon) + 1 - epsilon
    lo, hi = 0.0, 10.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.sum(n * np.minimum(mid * phi, 1)) < target * n.sum() else (lo, mid)
    np.testing.assert_allclose(got, np.minimum(lo * phi, 1), rtol=0, atol=1e-12)


def test_scale_and_shift_to_budget_on_random_cases_meet_the_budget_within_bounds() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        k = int(rng.integers(1, 30))
        phi = rng.uniform(-0.2, 2.0, k)
        w = rng.integers(1, 10**6, k).astype(float)
        reachable = w[phi > 0].sum()
        budget = float(rng.uniform(0, 1)) * reachable
        r = scale_to_budget(phi, w, budget)
        assert np.all((r >= 0) & (r <= 1))
        assert abs(np.sum(w * r) - budget) <= 1e-12 * w.sum()
        assert np.all(r[phi <= 0] == 0)
        budget = float(rng.uniform(0, 1)) * w.sum()
        shifted = shift_to_budget(phi, w, budget)
        assert np.all((shifted >= 0) & (shifted <= 1))
        assert abs(np.sum(w * shifted) - budget) <= 1e-12 * w.sum()
        inside = (shifted > 0) & (shifted < 1)  # one common shift on the unclipped layers
        if inside.sum() > 1:
            assert np.ptp(shifted[inside] - phi[inside]) < 1e-12
    with pytest.raises(ValueError, match="out of reach"):
        scale_to_budget(np.array([0.0, 1.0]), np.array([1.0, 1.0]), 1.5)


def test_uniform_and_degenerate_alphas_give_the_target_everywhere() -> None:
    uniform = sparsity_ratios(table(), 0.7, method="uniform")["sparsity"]
    assert (uniform == 0.7).all()
    equal = sparsity_ratios(table(np.full(8, 3.3)), 0.7)["sparsity"].to_numpy()
    np.testing.assert_allclose(equal, 0.7, rtol=0, atol=1e-15)
    one = sparsity_ratios(table(np.array([4.0]), np.array([100])), 0.55)["sparsity"]
    assert one.tolist() == [pytest.approx(0.55, abs=1e-15)]


def test_layers_with_undefined_alpha_get_the_target_or_are_excluded() -> None:
    alpha = ALPHA.copy()
    alpha[3] = np.nan
    status = ["fitted"] * 8
    status[5] = "failed"
    reason = [""] * 8
    reason[5] = "SVD did not converge"
    frame = table(alpha, status=status, reason=reason)
    neutral = sparsity_ratios(frame, 0.7, epsilon=0.3)
    got = neutral["sparsity"].to_numpy()
    assert got[3] == 0.7 and got[5] == 0.7
    assert "failed: SVD did not converge" in neutral["note"][5]
    assert "α undefined" in neutral["note"][3]
    assert abs(weighted_mean(got, N_PARAMS) - 0.7) < 1e-12
    keep = np.ones(8, bool)
    keep[[3, 5]] = False
    expected = alphapruning_reference(ALPHA[keep], N_PARAMS[keep], 0.7, 0.7, 1.3)
    np.testing.assert_allclose(got[keep], expected, rtol=0, atol=1e-12)
    excluded = sparsity_ratios(frame, 0.7, epsilon=0.3, undefined="exclude")
    values = excluded["sparsity"].to_numpy()
    assert np.isnan(values[3]) and np.isnan(values[5])
    np.testing.assert_allclose(values[keep], expected, rtol=0, atol=1e-12)
    assert set(as_mapping(excluded)) == set(frame["name"][keep])


def test_groups_map_each_layer_from_its_groups_mean_alpha() -> None:
    got = sparsity_ratios(table(), 0.7, epsilon=0.3, groups=r"layers\.(\d+)\.")
    block_alpha = ALPHA.reshape(4, 2).mean(axis=1).repeat(2)
    expected = alphapruning_reference(block_alpha, N_PARAMS, 0.7, 0.7, 1.3)
    np.testing.assert_allclose(got["sparsity"].to_numpy(), expected, rtol=0, atol=1e-12)
    assert got["group"].tolist() == ["0", "0", "1", "1", "2", "2", "3", "3"]
    np.testing.assert_allclose(got["group_alpha"].to_numpy(), block_alpha)


# ------------------------------------------------------------------ TempBalance, AlphaDecay


def test_tempbalance_is_the_linear_map_into_low_high() -> None:
    got = learning_rate_factors(table())["lr_factor"].to_numpy()
    expected = np.interp(ALPHA, [ALPHA.min(), ALPHA.max()], [0.5, 1.5])  # tb_linear_map
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert got[np.argmax(ALPHA)] == 1.5 and got[np.argmin(ALPHA)] == 0.5
    custom = learning_rate_factors(table(), low=0.8, high=1.1)["lr_factor"].to_numpy()
    np.testing.assert_allclose(custom, 0.8 + (ALPHA - 2.1) / (5.9 - 2.1) * 0.3, atol=1e-12)
    equal = learning_rate_factors(table(np.full(8, 2.0)))["lr_factor"]
    assert (equal == 1.0).all()  # (low + high) / 2
    assert (learning_rate_factors(table(), method="uniform")["lr_factor"] == 1.0).all()


def test_alphadecay_gives_lighter_tails_more_decay_with_the_codes_defaults() -> None:
    got = weight_decay_factors(table())["weight_decay_factor"].to_numpy()
    expected = 0.666 + (ALPHA - ALPHA.min()) / (ALPHA.max() - ALPHA.min()) * (3.0 - 0.666)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    alpha = ALPHA.copy()
    alpha[0] = np.nan
    neutral = weight_decay_factors(table(alpha))["weight_decay_factor"].to_numpy()
    assert neutral[0] == 1.0
    excluded = weight_decay_factors(table(alpha), undefined="exclude")["weight_decay_factor"]
    assert math.isnan(excluded[0])


def test_factor_options_are_checked_with_one_message() -> None:
    with pytest.raises(OptionError, match="low must be a number > 0; got -1"):
        learning_rate_factors(table(), low=-1)
    with pytest.raises(OptionError, match="high must be a number ≥ low"):
        weight_decay_factors(table(), low=2.0, high=1.0)
    with pytest.raises(OptionError, match="method must be one of"):
        sparsity_ratios(table(), method="owl")  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="epsilon must be a number in"):
        sparsity_ratios(table(), epsilon=1.5)


# ------------------------------------------------------------------ AlphaLoRA


def hamilton(quotas: np.ndarray, total: int) -> list[int]:
    """Largest remainder written out: floors, then +1 by descending remainder (ties: first)."""
    floors = [math.floor(q) for q in quotas]
    by_remainder = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - floors[i]), i))
    for i in by_remainder[: total - sum(floors)]:
        floors[i] += 1
    return floors


@pytest.mark.parametrize(("total", "beta"), [(160, 2.5), (17, 2.5), (8, 1.0), (33, 0.0)])
def test_alphalora_shares_alpha_to_the_beta_with_exact_integer_total(
    total: int, beta: float
) -> None:
    got = lora_expert_counts(table(), total, beta=beta)["experts"].to_numpy(dtype=int)
    quotas = total * ALPHA**beta / np.sum(ALPHA**beta)
    assert got.tolist() == hamilton(quotas, total)
    assert got.sum() == total
    assert np.all(np.abs(got - quotas) < 1)


def test_alphalora_per_block_and_with_undefined_layers() -> None:
    per_block = lora_expert_counts(table(), 40, groups=r"layers\.(\d+)\.")
    block_alpha = ALPHA.reshape(4, 2).mean(axis=1)
    assert per_block["name"].tolist() == ["0", "1", "2", "3"]
    assert per_block["n_layers"].tolist() == [2, 2, 2, 2]
    quotas = 40 * block_alpha**2.5 / np.sum(block_alpha**2.5)
    assert per_block["experts"].tolist() == hamilton(quotas, 40)
    names = ["b.10.x", "b.10.y", "b.2.x", "b.9.x"]  # groups keep their first-appearance order
    ordered = pd.DataFrame({"name": names, "alpha": [3.0, 5.0, 2.0, 6.0], "n_params": 1})
    counts = lora_expert_counts(ordered, 10, groups=r"b\.(\d+)\.")
    assert counts["name"].tolist() == ["10", "2", "9"]
    assert counts["alpha"].tolist() == [4.0, 2.0, 6.0]
    quotas = 10 * np.array([4.0, 2.0, 6.0]) ** 2.5 / np.sum(np.array([4.0, 2.0, 6.0]) ** 2.5)
    assert counts["experts"].tolist() == hamilton(quotas, 10)
    alpha = ALPHA.copy()
    alpha[2] = np.nan
    some = lora_expert_counts(table(alpha), 30)
    assert some["experts"][2] is pd.NA
    assert int(some["experts"].sum()) == 30
    assert lora_expert_counts(table(), 12, method="uniform")["experts"].tolist() == (
        hamilton(np.full(8, 1.5), 12)
    )
    assert largest_remainder(np.array([1.0]), 5).tolist() == [5]


# ------------------------------------------------------------------ inputs


def test_report_details_give_names_alpha_and_parameter_counts(minilm_block0_report) -> None:  # type: ignore[no-untyped-def]
    frame = alpha_table(minilm_block0_report)
    details = minilm_block0_report.details
    assert frame["name"].tolist() == details["name"].tolist()
    assert frame["n_params"].tolist() == (details["N"] * details["M"]).tolist()
    np.testing.assert_array_equal(frame["alpha"].to_numpy(), details["alpha"].to_numpy())
    ratios = sparsity_ratios(minilm_block0_report, 0.5)
    assert (
        abs(weighted_mean(ratios["sparsity"].to_numpy(), frame["n_params"].to_numpy()) - 0.5)
        < 1e-12
    )


def test_bad_alpha_tables_are_refused_in_our_words() -> None:
    with pytest.raises(ValueError, match="appears twice"):
        alpha_table(pd.DataFrame({"name": ["a", "a"], "alpha": [2, 3], "n_params": [1, 1]}))
    with pytest.raises(ValueError, match="'b': the parameter count must be a positive integer"):
        alpha_table({"name": ["a", "b"], "alpha": [2, 3], "n_params": [1, 0]})
    with pytest.raises(ValueError, match="needs a column n_params, or N and M"):
        alpha_table({"name": ["a"], "alpha": [2.0]})
    with pytest.raises(ValueError, match="allocations read a Report"):
        alpha_table([1, 2, 3])
    from_shapes = alpha_table({"name": ["a"], "alpha": [2.0], "N": [6], "M": [4]})
    assert from_shapes["n_params"].tolist() == [24]


# ------------------------------------------------------------------ torch


def test_param_groups_set_each_modules_learning_rate_in_a_real_optimizer() -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    model.add_module("norm", torch.nn.LayerNorm(3))
    frame = pd.DataFrame(
        {"name": ["0.weight", "2.weight"], "alpha": [2.0, 6.0], "n_params": [32, 24]}
    )
    factors = learning_rate_factors(frame)  # 0.5 for layer 0, 1.5 for layer 2
    from alphahat.allocation import param_groups

    groups = param_groups(model, factors, 0.1)
    assert [g["names"] for g in groups] == [["0.weight", "0.bias"], ["2.weight", "2.bias"],
                                            ["norm.weight", "norm.bias"]]  # fmt: skip
    optimizer = torch.optim.SGD(groups, lr=0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model(torch.randn(5, 4)).pow(2).sum().backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    optimizer.step()
    expected_lr = {"0": 0.05, "2": 0.15, "norm": 0.1}
    for name, param in model.named_parameters():
        lr = expected_lr[name.split(".")[0]]
        torch.testing.assert_close(param.detach(), before[name] - lr * grads[name])
    decay = param_groups(model, {"2.weight": 3.0}, 1e-2, key="weight_decay")
    assert decay[0]["weight_decay"] == pytest.approx(3e-2) and decay[-1]["weight_decay"] == 1e-2
    lstm = torch.nn.LSTM(3, 4)
    split = param_groups(lstm, {"weight_ih_l0": 2.0, "weight_hh_l0": 0.5}, 0.1)
    assert [(g["names"], g["lr"]) for g in split] == [
        (["weight_ih_l0", "bias_ih_l0", "bias_hh_l0"], pytest.approx(0.2)),
        (["weight_hh_l0"], pytest.approx(0.05)),
    ]
    with pytest.raises(ValueError, match="not parameters of the model, e.g. 'x.weight'"):
        param_groups(model, {"x.weight": 1.0}, 0.1)


# ------------------------------------------------------------------ the command line


def test_cli_allocate_writes_a_plain_json_mapping_on_minilm(
    minilm_path: Path, tmp_path: Path
) -> None:
    from safetensors import safe_open
    from typer.testing import CliRunner

    from alphahat.cli import app

    out = tmp_path / "ratios.json"
    result = CliRunner().invoke(
        app,
        ["allocate", str(minilm_path), "--layers", "encoder.layer.[01].*", "--method",
         "alphapruning", "--target", "0.7", "-q", "-o", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ratios = json.loads(out.read_text())
    with safe_open(str(minilm_path), "np") as f:  # the parameter counts, read independently
        sizes = {k: math.prod(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    blocks = ("encoder.layer.0.", "encoder.layer.1.")
    assert set(ratios) == {k for k in sizes if k.startswith(blocks) and k.endswith(".weight")
                           and "LayerNorm" not in k}  # fmt: skip
    assert len(ratios) == 12
    weights = np.array([sizes[k] for k in ratios], float)
    values = np.array(list(ratios.values()))
    assert abs(weighted_mean(values, weights) - 0.7) < 1e-12
    assert values.min() >= 0 and values.max() <= 1 and values.std() > 0.01

    csv = CliRunner().invoke(
        app, ["allocate", str(minilm_path), "--layers", "encoder.layer.0.*", "-q", "-m",
              "alphalora", "--total", "12", "-f", "csv"],
    )  # fmt: skip
    assert csv.exit_code == 0, csv.output
    frame = pd.read_csv(__import__("io").StringIO(csv.stdout))
    assert frame["experts"].sum() == 12 and list(frame.columns)[-1] == "note"
    missing = CliRunner().invoke(app, ["allocate", str(minilm_path), "-m", "alphalora", "-q"])
    assert missing.exit_code == 2 and "needs --total" in missing.output


def test_cli_allocate_reads_a_saved_report(minilm_block0_report, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from alphahat.cli import app

    saved = tmp_path / "report.json"
    minilm_block0_report.to_json(saved)
    result = CliRunner().invoke(app, ["allocate", str(saved), "-m", "tempbalance", "-f", "json"])
    assert result.exit_code == 0, result.output
    factors = json.loads(result.stdout)
    expected = learning_rate_factors(minilm_block0_report)
    assert factors == pytest.approx(dict(zip(expected["name"], expected["lr_factor"], strict=True)))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--target", "abc"], "--target must be a finite number; got 'abc'"),
        (["--target", "1.5"], "--target must be a number in [0, 1]; got 1.5"),
        (["-m", "alphalora", "--total", "2.5"], "--total must be an integer; got '2.5'"),
        (["-m", "tempbalance", "--low", "inf"], "--low must be a finite number; got 'inf'"),
    ],
)
def test_cli_allocate_numbers_get_the_option_tables_message(
    flags: list[str], message: str, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from alphahat.cli import app

    path = tmp_path / "w.npy"
    np.save(path, np.eye(20))
    result = CliRunner().invoke(app, ["allocate", str(path), "-q", *flags])
    assert result.exit_code == 2
    assert result.output.strip() == f"alphahat: error: {message}"
