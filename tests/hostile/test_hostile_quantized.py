"""Quantization metadata that does not add up: one failed layer with the reason, no crash, no
made-up spectrum, and the healthy layer beside it analysed."""

from __future__ import annotations

import json

import numpy as np
import pytest

import alphahat

torch = pytest.importorskip("torch")
from safetensors.torch import save_file  # noqa: E402

RNG = np.random.default_rng(8)


def _state(text: str) -> torch.Tensor:
    return torch.tensor(list(text.encode()), dtype=torch.uint8)


CASES = {
    "bnb shape larger than the packed bytes": (
        {
            "q.weight": torch.zeros((64, 1), dtype=torch.uint8),
            "q.weight.absmax": torch.ones(2),
            "q.weight.quant_map": torch.linspace(-1, 1, 16),
            "q.weight.quant_state.bitsandbytes__nf4": _state(
                json.dumps({"quant_type": "nf4", "blocksize": 64, "shape": [10**9, 10**9]})
            ),
        },
        "q.weight",
        "cannot hold shape",
    ),
    "bnb quant_state with a 10000-digit blocksize": (
        {
            "q.weight": torch.zeros((64, 1), dtype=torch.uint8),
            "q.weight.absmax": torch.ones(2),
            "q.weight.quant_map": torch.linspace(-1, 1, 16),
            "q.weight.quant_state.bitsandbytes__nf4": _state(
                '{"quant_type": "nf4", "blocksize": ' + "9" * 10000 + ', "shape": [8, 16]}'
            ),
        },
        "q.weight",
        "quant_state",
    ),
    "MXFP4 scales of the wrong shape": (
        {
            "m.experts.down_proj_blocks": torch.zeros((2, 8, 3, 16), dtype=torch.uint8),
            "m.experts.down_proj_scales": torch.zeros((2, 8, 4), dtype=torch.uint8),
        },
        "m.experts.down_proj",
        "MXFP4 blocks",
    ),
    "AWQ qzeros of the wrong shape": (
        {
            "a.qweight": torch.zeros((128, 4), dtype=torch.int32),
            "a.qzeros": torch.zeros((3, 4), dtype=torch.int32),
            "a.scales": torch.ones((1, 32), dtype=torch.float16),
        },
        "a.weight",
        "layout not recognised",
    ),
    "NVFP4 scales of the wrong shape": (
        {
            "n.weight_packed": torch.zeros((16, 32), dtype=torch.uint8),
            "n.weight_scale": torch.ones((16, 3)).to(torch.float8_e4m3fn),
        },
        "n.weight",
        "layout not recognised",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_inconsistent_quantization_metadata_fails_one_layer(tmp_path, case):
    tensors, name, reason = CASES[case]
    healthy = RNG.standard_normal((40, 24)).astype(np.float32)
    path = tmp_path / "model.safetensors"
    save_file({**tensors, "z.weight": torch.from_numpy(healthy)}, str(path))
    report = alphahat.analyze(path)
    coverage = report.coverage.set_index("name")
    assert coverage.loc[name, "status"] == "failed", coverage.loc[name].to_dict()
    assert reason in coverage.loc[name, "reason"]
    rows = report.details.set_index("name")
    assert rows.loc["z.weight", "status"] == "fitted"
