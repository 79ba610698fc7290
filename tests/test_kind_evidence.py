"""Layer kind of tensors named like embeddings: from the module when known, else from evidence.

Protein-design models name ``nn.Linear`` input projections ``…edge_embedding``; the name alone
would make them embeddings for ``--layers embedding`` and ``--exclude-embeddings``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import alphahat

GUESSED = "kind embedding guessed from the name"


def good_matrix(seed: int, shape: tuple[int, int]) -> np.ndarray:
    return np.random.default_rng(seed).standard_t(4, size=shape)


def _state_dict() -> dict[str, np.ndarray]:
    return {
        "features.edge_embedding.weight": good_matrix(1, (64, 40)),  # a Linear(40, 64)
        "features.edge_embedding.bias": np.zeros(64),
        "features.token_embedding.weight": good_matrix(2, (100, 32)),  # an Embedding(100, 32)
        "head.weight": good_matrix(3, (10, 32)),
    }


def _kinds(frame) -> dict[str, tuple[str, str]]:
    return {r["name"]: (r["kind"], r["note"]) for _, r in frame.iterrows()}


def test_live_module_kinds_come_from_the_module_type():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Features(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.edge_embedding = nn.Linear(40, 64, bias=False)  # no bias: no evidence in a dict
            self.token_embedding = nn.Embedding(100, 32)

    model = nn.Module()
    model.features = Features()
    kinds = _kinds(alphahat.describe(model))
    assert kinds["features.edge_embedding.weight"] == ("linear", "")
    assert kinds["features.token_embedding.weight"] == ("embedding", "")


def test_a_bias_sibling_makes_it_linear_and_a_name_alone_says_so():
    kinds = _kinds(alphahat.describe(_state_dict()))
    kind, note = kinds["features.edge_embedding.weight"]
    assert kind == "linear" and "has a bias" in note
    assert kinds["features.token_embedding.weight"] == ("embedding", GUESSED)
    assert kinds["head.weight"] == ("linear", "")


def test_the_kind_drives_the_layer_filter_and_the_summary():
    report = alphahat.analyze(_state_dict(), layers=["embedding"], min_evals=1)
    assert list(report.details["name"]) == ["features.token_embedding.weight"]
    report = alphahat.analyze(_state_dict(), include_embeddings=False, min_evals=1)
    by_name = report.details.set_index("name")
    # the summary averages the two linear layers only: the mis-named Linear is one of them
    linear = by_name.loc[["features.edge_embedding.weight", "head.weight"], "alpha"]
    assert report.summary().means["alpha"] == pytest.approx(linear.mean())


def test_config_table_sizes_confirm_an_embedding(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    tensors = {k: v for k, v in _state_dict().items() if "edge" not in k}
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    safetensors_numpy.save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"vocab_size": 100, "hidden_size": 32}))
    kinds = _kinds(alphahat.describe(folder))
    assert kinds["features.token_embedding.weight"] == ("embedding", "")


def test_weight_tying_to_lm_head_confirms_an_embedding():
    table = good_matrix(4, (100, 32))
    kinds = _kinds(alphahat.describe({"wte.weight": table, "lm_head.weight": table}))
    assert kinds["wte.weight"] == ("embedding", "")


def test_a_bias_of_another_size_is_no_evidence():
    state = {"tok_embed.weight": good_matrix(5, (100, 32)), "tok_embed.bias": np.zeros(7)}
    assert _kinds(alphahat.describe(state))["tok_embed.weight"] == ("embedding", GUESSED)
