"""Parity with the reference tool, weightwatcher 0.7.7, run live on the same weights.

Deliberate differences (asserted below, not hidden):
* ``entropy``: the reference adds ε = 1e-10 to every pᵢ and to the rank before taking logs;
  we use the exact −Σ p ln p / ln(rank), so the two differ by ~1e-7 relative.
* the reference's ``get_summary`` averages every row, a failed fit's α = −1 included; ours
  averages fitted layers only (identical here, where every layer fits).
* layer ids: the reference numbers every module (containers included) or, for a state dict,
  every ``.weight`` key from 1; ours count tensors with ≥ 2 dims. Layers are joined by name.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alphahat

torch = pytest.importorskip("torch")
ww = pytest.importorskip("weightwatcher")
safetensors_torch = pytest.importorskip("safetensors.torch")

EXACT = (
    "alpha", "D", "xmin", "xmax", "sigma", "alpha_weighted", "log_norm", "log_spectral_norm",
    "log_alpha_norm", "stable_rank",
)  # fmt: skip
COUNTS = ("num_pl_spikes", "matrix_rank", "N", "M", "num_evals")
RTOL = 1e-6


@pytest.fixture(autouse=True)
def _quiet_reference() -> None:
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)


def reference_details(model: object) -> pd.DataFrame:
    details = ww.WeightWatcher(model=model).analyze(svd_method="accurate")
    details["tensor"] = details["longname"] + ".weight"
    return details.set_index("tensor")


def assert_parity(reference: pd.DataFrame, ours: pd.DataFrame) -> None:
    ours = ours.set_index("name")
    assert sorted(reference.index) == sorted(ours.index), "analysed layer sets differ"
    assert (ours["status"] == "fitted").all()
    for name, ref in reference.iterrows():
        row = ours.loc[name]
        for col in EXACT:
            assert row[col] == pytest.approx(float(ref[col]), rel=RTOL), (name, col)
        for col in COUNTS:
            assert int(row[col]) == int(ref[col]), (name, col)
        assert row["warning"] == ref["warning"], name
        # deliberate: exact entropy vs the reference's ε-regularised one
        assert row["entropy"] == pytest.approx(float(ref["entropy"]), rel=1e-5), name


def test_minilm_state_dict_parity(minilm_path: Path, minilm_report: alphahat.Report) -> None:
    state_dict = safetensors_torch.load_file(minilm_path)
    reference = reference_details(state_dict)
    assert len(reference) == 39
    assert_parity(reference, minilm_report.details)
    summary = ww.WeightWatcher().get_summary(reference)
    ours = minilm_report.summary().means
    for metric in (
        "alpha",
        "alpha_weighted",
        "log_norm",
        "log_spectral_norm",
        "log_alpha_norm",
        "stable_rank",
    ):
        assert ours[metric] == pytest.approx(summary[metric], rel=RTOL), metric


def test_minilm_module_parity(minilm_dir: Path, minilm_report: alphahat.Report) -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(**json.loads((minilm_dir / "config.json").read_text()))
    model = transformers.BertModel(config, add_pooling_layer=True)
    missing, unexpected = model.load_state_dict(
        safetensors_torch.load_file(minilm_dir / "model.safetensors"), strict=False
    )
    assert set(unexpected) <= {"embeddings.position_ids"}  # a non-persistent buffer
    model.eval()
    reference = reference_details(model)
    ours = alphahat.analyze(model).details
    assert_parity(reference, ours)
    # the same weights through the module and through the file give the same numbers
    by_file = minilm_report.details.set_index("name").loc[ours["name"]]
    np.testing.assert_allclose(ours["alpha"].to_numpy(), by_file["alpha"].to_numpy(), rtol=1e-12)
    assert (
        ours.set_index("name")["kind"].loc[["embeddings.word_embeddings.weight"]] == "embedding"
    ).all()


class SmallConvNet(torch.nn.Module):
    """A seeded conv net: conv slices are pooled and scaled by 1/√2, as the reference does."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 32, 3)
        self.conv2 = torch.nn.Conv2d(32, 64, 3)
        self.conv3 = torch.nn.Conv2d(64, 48, 5)
        self.fc1 = torch.nn.Linear(48 * 4, 120)
        self.fc2 = torch.nn.Linear(120, 10)


def test_conv_net_parity() -> None:
    torch.manual_seed(0)
    model = SmallConvNet()
    reference = reference_details(model)
    ours = alphahat.analyze(model).details
    assert_parity(reference, ours)
    conv = ours.set_index("name").loc["conv3.weight"]
    assert (conv["N"], conv["M"], conv["num_matrices"], conv["num_evals"]) == (64, 48, 25, 48 * 25)
