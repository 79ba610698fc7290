"""``compat.WeightWatcher(...).analyze(peft=...)``: live against weightwatcher 0.7.7 and numpy.

A two-layer torch model with LoRA adapters made by the ``peft`` package. The reference's rows
for ``peft=True`` are ΔW = B·A per adapted module (``lora_BA``); with ``peft='with_base'``
also W + B·A (``lora_W_plus_AB``) and the base W (``base_layer``). Deliberate differences,
asserted here (docs/coming-from-weightwatcher.md): the reference leaves out the LoRA scale
s = α/r (ours: ΔW = s·B·A, the update the adapted model applies), keeps only the r largest
eigenvalues of every LoRA row (ours: all of them; ΔW's others are zeros, W + ΔW's are not),
and lists each base weight twice (the peft wrapper module and its ``base_layer``).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ww = pytest.importorskip("weightwatcher")
peft = pytest.importorskip("peft")

from alphahat.compat import WeightWatcher  # noqa: E402

COLUMNS = ("lambda_max", "alpha", "D", "xmin", "norm", "stable_rank", "entropy", "sv_max")


class TwoLayers(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(64, 96)
        self.fc2 = torch.nn.Linear(96, 48)


def _lora(alpha: int, r: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    config = peft.LoraConfig(
        r=r, lora_alpha=alpha, target_modules=["fc1", "fc2"], init_lora_weights=False
    )
    return peft.get_peft_model(TwoLayers(), config)


def _factors(model: torch.nn.Module, module: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    wrapped = dict(model.named_modules())[f"base_model.model.{module}"]
    a = wrapped.lora_A["default"].weight.detach().numpy().astype(np.float64)
    b = wrapped.lora_B["default"].weight.detach().numpy().astype(np.float64)
    w = wrapped.base_layer.weight.detach().numpy().astype(np.float64)
    return w, a, b


def _evals(x: np.ndarray) -> np.ndarray:
    return np.sort(np.linalg.svd(x, compute_uv=False) ** 2)


def close(a: object, b: object, rtol: float = 1e-6) -> bool:
    return math.isclose(float(a), float(b), rel_tol=rtol)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _quiet() -> None:
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)


def test_peft_true_is_one_row_per_lora_update_as_the_reference() -> None:
    model = _lora(alpha=4)  # s = α/r = 1: the reference's unscaled B·A is the update
    reference = ww.WeightWatcher(model=model).analyze(peft=True, svd_method="accurate", min_evals=0)
    ours = WeightWatcher(model=model).analyze(peft=True)
    for col in ("layer_id", "name", "longname", "N", "M", "matrix_rank"):
        assert list(ours[col]) == list(reference[col]), col
    assert list(ours["longname"]) == [f"base_model.model.fc{i}.lora_BA.default" for i in (1, 2)]
    for (_, ref), (_, row) in zip(reference.iterrows(), ours.iterrows(), strict=True):
        for col in COLUMNS:
            assert close(row[col], ref[col]), col
        assert int(ref["num_evals"]) == 4 and int(row["num_evals"]) == int(row["M"])  # zeros
    w, a, b = _factors(model, "fc1")
    assert close(ours.iloc[0]["norm"], _evals(b @ a).sum(), rtol=1e-10)


def test_peft_scales_the_update_by_alpha_over_r_which_the_reference_leaves_out() -> None:
    model = _lora(alpha=8)  # s = 2
    reference = ww.WeightWatcher(model=model).analyze(peft=True, svd_method="accurate", min_evals=0)
    ours = WeightWatcher(model=model).analyze(peft=True)
    for k, module in enumerate(("fc1", "fc2")):
        _, a, b = _factors(model, module)
        evals = _evals(2.0 * b @ a)  # numpy: ΔW = s·B·A
        row, ref = ours.iloc[k], reference.iloc[k]
        assert close(row["lambda_max"], evals.max(), rtol=1e-10)
        assert close(row["norm"], evals.sum(), rtol=1e-10)
        assert close(row["lambda_max"], 4.0 * ref["lambda_max"])  # s² × the reference's
        for col in ("alpha", "D"):  # scale-free
            assert close(row[col], ref[col]), col


def test_peft_with_base_adds_the_merged_and_base_weights() -> None:
    model = _lora(alpha=4)
    reference = ww.WeightWatcher(model=model).analyze(
        peft="with_base", svd_method="accurate", min_evals=0
    )
    ours = WeightWatcher(model=model).analyze(peft="with_base")
    # the reference lists each base weight twice (the wrapper module fc1 and its base_layer)
    deduplicated = reference[~reference["name"].isin(["fc1", "fc2"])]
    assert list(ours["longname"]) == list(deduplicated["longname"])
    assert list(ours["layer_id"]) == list(deduplicated["layer_id"])
    for (_, ref), (_, row) in zip(deduplicated.iterrows(), ours.iterrows(), strict=True):
        assert close(row["lambda_max"], ref["lambda_max"]), row["longname"]
        if row["longname"].endswith("base_layer") or ".lora_BA." in row["longname"]:
            for col in COLUMNS:
                assert close(row[col], ref[col]), (row["longname"], col)
    for module in ("fc1", "fc2"):
        w, a, b = _factors(model, module)
        evals = _evals(w + b @ a)  # numpy: W + ΔW, all eigenvalues
        merged = ours[ours["longname"] == f"base_model.model.{module}.lora_W_plus_AB.default"]
        theirs = reference[reference["longname"] == merged["longname"].iloc[0]]
        assert close(merged["norm"].iloc[0], evals.sum(), rtol=1e-10)
        assert int(merged["num_evals"].iloc[0]) == evals.size
        assert close(theirs["norm"].iloc[0], evals[-4:].sum())  # the reference: top r only
        assert int(theirs["num_evals"].iloc[0]) == 4


def test_peft_on_an_adapter_folder_and_bad_values(tmp_path: Path) -> None:
    model = _lora(alpha=8)
    model.save_pretrained(tmp_path)
    ours = WeightWatcher(model=str(tmp_path)).analyze(peft=True)
    assert list(ours["name"]) == ["fc1 [delta]", "fc2 [delta]"]
    _, a, b = _factors(model, "fc2")
    assert close(ours.iloc[1]["norm"], _evals(2.0 * b @ a).sum(), rtol=1e-6)  # stored float32
    with pytest.raises(ValueError, match="peft must be"):
        WeightWatcher(model=model).analyze(peft="merged")
    with pytest.raises(ValueError, match="base_model"):
        WeightWatcher(model=str(tmp_path)).analyze(peft="with_base")
