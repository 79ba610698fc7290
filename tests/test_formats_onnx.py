"""ONNX graphs built with ``onnx.helper``: kinds and orientation come from the nodes using each
initializer (Gemm transB, MatMul, Conv, Gather, LSTM, a Transpose hop, Constant weights),
external data, and broken files. Expected numbers are NumPy SVDs of the stored arrays."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import alphahat
from alphahat.errors import SourceError

onnx = pytest.importorskip("onnx")
helper, numpy_helper, TP = onnx.helper, onnx.numpy_helper, onnx.TensorProto
RNG = np.random.default_rng(5)


def log_norm(m: np.ndarray) -> float:
    return math.log10((np.linalg.svd(m.astype(np.float64), compute_uv=False) ** 2).sum())


ARRAYS = {
    "gemm_t.weight": RNG.standard_normal((20, 12)).astype(np.float32),  # (out, in), transB=1
    "gemm_n.weight": RNG.standard_normal((12, 30)).astype(np.float32),  # (in, out), transB=0
    "matmul.weight": RNG.standard_normal((12, 40)).astype(np.float32),  # (in, out)
    "transposed.weight": RNG.standard_normal((40, 12)).astype(np.float32),  # Transpose → MatMul
    "conv.weight": RNG.standard_normal((8, 3, 3, 3)).astype(np.float32),
    "embed.weight": RNG.standard_normal((50, 12)).astype(np.float32),
    "lstm.W": RNG.standard_normal((2, 4 * 10, 12)).astype(np.float32),
    "lstm.R": RNG.standard_normal((2, 4 * 10, 10)).astype(np.float32),
    "bias": np.zeros(20, np.float32),
}
CONST = RNG.standard_normal((12, 16)).astype(np.float32)


def build(path: Path, *, external: bool = False) -> Path:
    inits = [numpy_helper.from_array(v, k) for k, v in ARRAYS.items()]
    nodes = [
        helper.make_node("Gemm", ["x", "gemm_t.weight", "bias"], ["a"], transB=1),
        helper.make_node("Gemm", ["x", "gemm_n.weight"], ["b"]),
        helper.make_node("MatMul", ["x", "matmul.weight"], ["c"]),
        helper.make_node("Transpose", ["transposed.weight"], ["tw"], perm=[1, 0]),
        helper.make_node("MatMul", ["x", "tw"], ["d"]),
        helper.make_node("Conv", ["img", "conv.weight"], ["e"]),
        helper.make_node("Gather", ["embed.weight", "ids"], ["f"]),
        helper.make_node("LSTM", ["seq", "lstm.W", "lstm.R"], ["g"], hidden_size=10,
                         direction="bidirectional"),
        helper.make_node("Constant", [], ["const_w"], value=numpy_helper.from_array(CONST)),
        helper.make_node("MatMul", ["x", "const_w"], ["h"]),
        helper.make_node("Constant", [], ["shape_c"], value=numpy_helper.from_array(
            np.array([1, 2], np.int64))),
    ]  # fmt: skip
    inputs = [helper.make_tensor_value_info(n, TP.FLOAT, None) for n in ("x", "img", "seq")] + [
        helper.make_tensor_value_info("ids", TP.INT64, None)
    ]
    outputs = [helper.make_tensor_value_info(n, TP.FLOAT, None) for n in "abcdefgh"]
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, inits))
    if external:
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location="weights.bin",
            size_threshold=0,
        )
    else:
        onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("onnx") / "model.onnx")


def test_kinds_and_orientation_from_the_graph(model):
    frame = alphahat.describe(model, min_evals=1).set_index("name")
    expect = {
        "gemm_t.weight": ("linear", "20x12", ""),
        "gemm_n.weight": ("linear", "30x12", "transposed"),
        "matmul.weight": ("linear", "40x12", "transposed"),
        "transposed.weight": ("linear", "40x12", ""),  # Transpose then MatMul: (out, in)
        "conv.weight": ("conv2d", "8x3x3x3", ""),
        "embed.weight": ("embedding", "50x12", ""),
        "const_w": ("linear", "16x12", "transposed"),
    }
    for name, (kind, shape, note) in expect.items():
        assert frame.loc[name, "kind"] == kind, name
        assert frame.loc[name, "shape"] == shape, name
        assert note in frame.loc[name, "note"], name
    for d in (0, 1):
        assert frame.loc[f"lstm.W [direction {d}]", "kind"] == "rnn"
        assert frame.loc[f"lstm.R [direction {d}]", "shape"] == "40x10"
    assert "shape_c" not in frame.index  # a shape constant is not a weight
    assert frame.loc["bias", "status"] == "skipped"


def test_numbers_equal_numpy_of_the_stored_arrays(model):
    report = alphahat.analyze(model, min_evals=1)
    got = report.details.set_index("name")
    for name in ("gemm_t.weight", "gemm_n.weight", "matmul.weight", "embed.weight"):
        assert got.loc[name, "log_norm"] == pytest.approx(log_norm(ARRAYS[name]), rel=1e-10)
    assert got.loc["const_w", "log_norm"] == pytest.approx(log_norm(CONST), rel=1e-10)
    w = ARRAYS["lstm.R"][1]
    assert got.loc["lstm.R [direction 1]", "log_norm"] == pytest.approx(log_norm(w), rel=1e-10)


def test_external_data(tmp_path):
    path = build(tmp_path / "ext.onnx", external=True)
    assert (tmp_path / "weights.bin").is_file()
    got = alphahat.analyze(path, min_evals=1).details.set_index("name")
    assert got.loc["matmul.weight", "log_norm"] == pytest.approx(
        log_norm(ARRAYS["matmul.weight"]), rel=1e-10
    )
    assert (got["status"] == "fitted").sum() >= 5


def test_external_data_outside_the_folder_or_truncated_fails_only_those(tmp_path):
    path = build(tmp_path / "ext.onnx", external=True)
    model = onnx.load(str(path), load_external_data=False)
    for tensor in model.graph.initializer:
        if tensor.name == "matmul.weight":
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = "../../etc/passwd"
        if tensor.name == "embed.weight":
            for entry in tensor.external_data:
                if entry.key == "offset":
                    entry.value = str(10**9)
    onnx.save(model, str(path))
    frame = alphahat.describe(path, min_evals=1).set_index("name")
    assert frame.loc["matmul.weight", "status"] == "failed"
    assert "not a file inside" in frame.loc["matmul.weight", "reason"]
    assert frame.loc["embed.weight", "status"] == "failed"
    assert frame.loc["gemm_t.weight", "status"] == "analysed"


def test_raw_data_of_the_wrong_size_and_unknown_dtype_fail_alone(model, tmp_path):
    broken = onnx.load(str(model))
    for tensor in broken.graph.initializer:
        if tensor.name == "gemm_t.weight":
            tensor.raw_data = tensor.raw_data[:-8]
        if tensor.name == "gemm_n.weight":
            tensor.data_type = 999
    path = tmp_path / "broken.onnx"
    path.write_bytes(broken.SerializeToString())
    frame = alphahat.describe(path, min_evals=1).set_index("name")
    assert frame.loc["gemm_t.weight", "status"] == "failed"
    assert "raw data holds" in frame.loc["gemm_t.weight", "reason"]
    assert frame.loc["gemm_n.weight", "status"] == "failed"
    assert "999" in frame.loc["gemm_n.weight", "reason"]
    assert frame.loc["matmul.weight", "status"] == "analysed"


@pytest.mark.parametrize("how", ["garbage", "truncated", "empty"])
def test_unreadable_files_name_the_file(model, tmp_path, how):
    data = model.read_bytes()
    payload = {
        "garbage": RNG.integers(0, 256, 2000, dtype=np.uint8).tobytes(),
        "truncated": data[: len(data) // 2],
        "empty": b"",
    }[how]
    bad = tmp_path / f"{how}.onnx"
    bad.write_bytes(payload)
    with pytest.raises(SourceError, match=f"{how}.onnx"):
        alphahat.describe(bad)
