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


#: The DequantizeLinear outputs the reference evaluator computes (``{name}_w``).
NAMES = ("mm", "gemm", "conv", "block")


def _qdq_model(path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A QDQ graph: int8 per-tensor → MatMul, uint8 per-axis → Gemm(transB=1), int8 per-axis
    conv kernel, a blocked one (opset 21, a partial last block) and a blocked one whose scales
    do not cover it. Returns the file and each DequantizeLinear output as
    computed by ONNX's own reference evaluator (the operator's specification in code)."""
    from onnx.reference import ReferenceEvaluator

    q_mm = RNG.integers(-128, 128, (24, 16)).astype(np.int8)  # (in, out)
    q_gemm = RNG.integers(0, 256, (20, 24)).astype(np.uint8)  # (out, in)
    q_conv = RNG.integers(-128, 128, (8, 3, 3, 3)).astype(np.int8)
    q_block = RNG.integers(-128, 128, (16, 40)).astype(np.int8)  # blocks 16 + 16 + 8
    inits = [
        numpy_helper.from_array(q_mm, "mm.weight_quantized"),
        numpy_helper.from_array(np.array(0.02, np.float32), "mm.scale"),
        numpy_helper.from_array(np.array(3, np.int8), "mm.zero"),
        numpy_helper.from_array(q_gemm, "gemm.weight_quantized"),
        numpy_helper.from_array(RNG.uniform(0.01, 0.05, 20).astype(np.float32), "gemm.scale"),
        numpy_helper.from_array(RNG.integers(100, 150, 20).astype(np.uint8), "gemm.zero"),
        numpy_helper.from_array(q_conv, "conv.weight_quantized"),
        numpy_helper.from_array(RNG.uniform(0.01, 0.05, 8).astype(np.float32), "conv.scale"),
        numpy_helper.from_array(q_block, "block.weight_quantized"),
        numpy_helper.from_array(RNG.uniform(0.01, 0.05, (16, 3)).astype(np.float32), "block.s"),
        numpy_helper.from_array(RNG.integers(-5, 5, (16, 3)).astype(np.int8), "block.z"),
        numpy_helper.from_array(q_block, "bad.weight_quantized"),
        numpy_helper.from_array(RNG.uniform(0.01, 0.05, (16, 2)).astype(np.float32), "bad.s"),
    ]
    dq = [
        helper.make_node(
            "DequantizeLinear", ["mm.weight_quantized", "mm.scale", "mm.zero"], ["mm_w"]
        ),
        helper.make_node(
            "DequantizeLinear",
            ["gemm.weight_quantized", "gemm.scale", "gemm.zero"],
            ["gemm_w"],
            axis=0,
        ),
        helper.make_node(
            "DequantizeLinear", ["conv.weight_quantized", "conv.scale"], ["conv_w"], axis=0
        ),
        helper.make_node(
            "DequantizeLinear",
            ["block.weight_quantized", "block.s", "block.z"],
            ["block_w"],
            axis=1,
            block_size=16,
        ),
    ]
    bad = helper.make_node(  # 2 blocks of 16 cannot cover 40 columns
        "DequantizeLinear", ["bad.weight_quantized", "bad.s"], ["bad_w"], axis=1, block_size=16
    )
    nodes = [*dq, bad] + [
        helper.make_node("MatMul", ["x", "mm_w"], ["a"]),
        helper.make_node("Gemm", ["x", "gemm_w"], ["b"], transB=1),
        helper.make_node("Conv", ["img", "conv_w"], ["c"]),
        helper.make_node("MatMul", ["y", "block_w"], ["d"]),
        helper.make_node("MatMul", ["y", "bad_w"], ["e"]),
    ]
    inputs = [helper.make_tensor_value_info(n, TP.FLOAT, None) for n in ("x", "img", "y")]
    outputs = [helper.make_tensor_value_info(n, TP.FLOAT, None) for n in "abcde"]
    graph = helper.make_graph(nodes, "qdq", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    onnx.save(model, str(path))
    spec = helper.make_model(
        helper.make_graph(
            dq,
            "dq",
            [],
            [helper.make_tensor_value_info(f"{n}_w", TP.FLOAT, None) for n in NAMES],
            inits,
        ),
        opset_imports=[helper.make_opsetid("", 21)],
    )
    mm_w, gemm_w, conv_w, block_w = ReferenceEvaluator(spec).run(None, {})
    return path, {"mm": mm_w.T, "gemm": gemm_w, "conv": conv_w, "block": block_w.T}


def test_qdq_weights_are_dequantized_as_the_operator_defines(tmp_path):
    path, expected = _qdq_model(tmp_path / "qdq.onnx")
    report = alphahat.analyze(path, min_evals=1, keep_eigenvalues=True)
    rows = report.details.set_index("name")
    hows = {
        "mm": "per tensor",
        "gemm": "per axis 0",
        "conv": "per axis 0",
        "block": "blocks of 16 along axis 1",
    }
    for name, how in hows.items():
        stored = f"{name}.weight_quantized"
        assert rows.loc[stored, "status"] == "fitted"
        assert rows.loc[stored, "dtype"] == "float32"
        assert f"(q − zero_point)·scale, {how}" in rows.loc[stored, "note"]
        assert rows.loc[stored, "shape"] == "x".join(map(str, expected[name].shape))
    for name in ("mm", "gemm", "block"):
        lam = np.sort(np.linalg.svd(expected[name].astype(np.float64), compute_uv=False) ** 2)
        np.testing.assert_allclose(report.eigenvalues[f"{name}.weight_quantized"], lam, rtol=1e-6)
    assert "transposed" in rows.loc["mm.weight_quantized", "note"]  # MatMul stores (in, out)
    assert rows.loc["bad.weight_quantized", "status"] == "failed"
    assert "in blocks of 16" in rows.loc["bad.weight_quantized", "reason"]


def test_qdq_conv_kernel_matches_the_dequantized_kernel(tmp_path):
    path, expected = _qdq_model(tmp_path / "qdq.onnx")
    ours = alphahat.analyze(
        path, layers=["conv.weight_quantized"], min_evals=1, keep_eigenvalues=True
    )
    reference = alphahat.analyze(
        {"conv.weight": expected["conv"]}, min_evals=1, keep_eigenvalues=True
    )
    np.testing.assert_allclose(
        ours.eigenvalues["conv.weight_quantized"], reference.eigenvalues["conv.weight"], rtol=1e-6
    )
