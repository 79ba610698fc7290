"""Hostile ONNX files: DequantizeLinear operands outside the folder, forged block sizes and
lengths, external data that is a FIFO, and dims that disagree with the data.

The model is built here with ``onnx.helper``; the CLI runs in a subprocess under an
address-space limit (RLIMIT_AS) from a working directory holding a decoy scale file, and with
strace (when installed) no file outside the model's folder is opened.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hostile_inputs import good_matrix, make_fifo, run_cli_limited, strace_path

onnx = pytest.importorskip("onnx")
helper, numpy_helper, TP = onnx.helper, onnx.numpy_helper, onnx.TensorProto
PEAK_BOUND = 1 * 2**30

GOOD = good_matrix(1, (64, 32)).astype(np.float32)  # MatMul (in, out)
Q = np.random.default_rng(2).integers(-127, 128, size=(64, 32), dtype=np.int8)


def _proto(name: str, dims: list[int]) -> onnx.TensorProto:
    tensor = onnx.TensorProto()
    tensor.name, tensor.data_type = name, TP.FLOAT
    tensor.dims.extend(dims)
    return tensor


def _external(name: str, dims: list[int], location: str, length: int) -> onnx.TensorProto:
    tensor = _proto(name, dims)
    tensor.data_location = TP.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def _dq(prefix: str, scale: str, **attrs) -> list:
    """A DequantizeLinear of ``{prefix}.q`` feeding a MatMul."""
    return [
        helper.make_node("DequantizeLinear", [f"{prefix}.q", scale], [f"{prefix}_w"], **attrs),
        helper.make_node("MatMul", ["x", f"{prefix}_w"], [f"{prefix}_y"]),
    ]


def _model(folder, outside) -> None:
    """good (float), outside/cwd/short/fifo (broken scales), blocks (a huge block_size)."""
    scale = np.float32(0.02)
    (outside / "scale.bin").write_bytes(scale.tobytes())
    make_fifo(folder / "fifo.bin")
    short = _proto("short.s", [64])
    short.raw_data = b"\x00" * 7  # 64 float32 claimed, 7 bytes stored
    typed = _proto("typed.weight", [64, 32])
    typed.float_data.extend([1.0] * 10)  # 2048 values claimed, 10 stored
    inits = [
        numpy_helper.from_array(GOOD, "good.weight"),
        *(numpy_helper.from_array(Q, f"{p}.q") for p in ("outside", "cwd", "short", "fifo")),
        numpy_helper.from_array(Q, "blocks.q"),
        _external("outside.s", [], "../outside/scale.bin", 4),
        _external("cwd.s", [], "scale.bin", 4),  # only in the working directory
        short,
        _external("fifo.s", [], "fifo.bin", 4),
        _external("fifow.weight", [64, 32], "fifo.bin", 64 * 32 * 4),
        numpy_helper.from_array(np.full((64, 1), 0.5, np.float32), "blocks.s"),
        typed,
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "good.weight"], ["good_y"]),
        *_dq("outside", "outside.s"),
        *_dq("cwd", "cwd.s"),
        *_dq("short", "short.s", axis=0),
        *_dq("fifo", "fifo.s"),
        *_dq("blocks", "blocks.s", axis=1, block_size=2**40),
        helper.make_node("MatMul", ["x", "typed.weight"], ["typed_y"]),
        helper.make_node("MatMul", ["x", "fifow.weight"], ["fifow_y"]),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TP.FLOAT, [1, 64])], [], inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    (folder / "m.onnx").write_bytes(model.SerializeToString())


@pytest.fixture(scope="module")
def hostile_onnx(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    folder, outside = root / "model", root / "outside"
    folder.mkdir()
    outside.mkdir()
    _model(folder, outside)
    return folder / "m.onnx", outside


def test_broken_dequantize_operands_fail_their_weight_alone(hostile_onnx):
    path, outside = hostile_onnx
    run = run_cli_limited(
        "analyze", str(path), "-f", "json", "-q", cwd=outside,  # a decoy scale.bin there
        trace_opens=strace_path() is not None, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "internal error" not in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert run.peak_rss < PEAK_BOUND, run.peak_rss
    rows = {r["name"]: r for r in run.json()["layers"]}
    assert rows["good.weight"]["status"] == "fitted"
    blocks = rows["blocks.q"]
    assert blocks["status"] == "fitted" and "blocks of 1099511627776" in blocks["note"]
    lam = np.linalg.svd(0.5 * Q.T.astype(np.float64), compute_uv=False) ** 2
    assert blocks["lambda_max"] == pytest.approx(lam.max(), rel=1e-9)
    expected = {
        "outside.q": "scale 'outside.s': external data '../outside/scale.bin' is not a file inside",
        "cwd.q": "scale 'cwd.s': external data 'scale.bin' is not a file inside",
        "short.q": "scale 'short.s': raw data holds 7 bytes",
        "fifo.q": "scale 'fifo.s': external data 'fifo.bin' is not a file inside",
        "typed.weight": "holds 10 values but shape [64, 32] needs 2048",
        "fifow.weight": "external data 'fifo.bin' is not a file inside",
    }
    for name, fragment in expected.items():
        assert rows[name]["status"] == "failed", (name, rows[name])
        assert fragment in rows[name]["reason"], rows[name]["reason"]
    if run.opened is not None:
        assert run.opened_under(outside) == []
        assert not [p for p in run.opened if p.endswith("fifo.bin")]


def test_describe_already_shows_the_unreadable_weights_failed(hostile_onnx):
    path, outside = hostile_onnx
    run = run_cli_limited("describe", str(path), "-f", "json", cwd=outside, timeout=120)
    assert run.returncode == 0, run.stderr
    status = {t["name"]: t["status"] for t in run.json()["tensors"]}
    assert status["good.weight"] == status["blocks.q"] == "analysed"
    for name in ("outside.q", "cwd.q", "short.q", "fifo.q", "typed.weight", "fifow.weight"):
        assert status[name] == "failed", name
    assert os.path.exists(outside / "scale.bin")
