"""Hostile GGUF files: one bad tensor entry fails alone; metadata is never materialised.

The files are laid out by hand (``gguf_bytes``); the CLI runs in a subprocess under an
address-space limit (RLIMIT_AS), and with strace (when installed) nothing outside the model
file is opened. Q8_0 is checked against its published block layout decoded here.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from hostile_inputs import gguf_bytes, good_matrix, run_cli_limited, strace_path

gguf = pytest.importorskip("gguf")
T = gguf.GGMLQuantizationType
PEAK_BOUND = 1 * 2**30

W = good_matrix(1, (32, 16)).astype("<f4")
Q = good_matrix(2, (48, 64)).astype(np.float32)


def _q8_0_decoded(raw: bytes, rows: int, cols: int) -> np.ndarray:
    """Q8_0 by hand: per 32 values a float16 scale d then 32 int8 q; x = d·q."""
    blocks = np.frombuffer(raw, np.uint8).reshape(rows, cols // 32, 34)
    scale = blocks[..., :2].copy().view("<f2").astype(np.float64)
    return (scale * blocks[..., 2:].copy().view(np.int8)).reshape(rows, cols)


@pytest.fixture(scope="module")
def hostile_gguf(tmp_path_factory):
    q8 = gguf.quants.quantize(Q, T.Q8_0).tobytes()
    tensors = [
        {"name": "blk.0.attn_q.weight", "dims": (16, 32), "type_id": 0, "data": W.tobytes()},
        {"name": "blk.0.ffn_up.weight", "dims": (64, 48), "type_id": 8, "data": q8},
        {"name": "blk.1.offset.weight", "dims": (16, 32), "type_id": 0, "data": W.tobytes(),
         "offset": 2**40},
        {"name": "blk.1.overflow.weight", "dims": (2**62, 2**62), "type_id": 0, "data": b""},
        {"name": "blk.1.type.weight", "dims": (16, 32), "type_id": 77, "data": W.tobytes()},
        {"name": "blk.1.blocks.weight", "dims": (40, 48), "type_id": 8, "data": q8[: 48 * 34]},
        {"name": "blk.0.attn_q.weight", "dims": (16, 32), "type_id": 0, "data": W.tobytes()},
    ]  # fmt: skip
    folder = tmp_path_factory.mktemp("gguf")
    path = folder / "model.gguf"
    path.write_bytes(gguf_bytes(tensors, string_array=1_900_000))
    return path, q8


def test_bad_tensor_entries_fail_alone_naming_the_field(hostile_gguf):
    path, q8 = hostile_gguf
    started = time.perf_counter()
    run = run_cli_limited(
        "analyze", str(path), "-f", "json", "-q", "--min-evals", "1", cwd=path.parent,
        trace_opens=strace_path() is not None,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    assert run.returncode == 0, run.stderr
    assert "internal error" not in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert run.peak_rss < PEAK_BOUND, run.peak_rss  # 1.9M metadata strings never built
    assert elapsed < 60, elapsed
    rows = {r["name"]: r for r in run.json()["layers"]}
    assert rows["blk.0.attn_q.weight"]["status"] == "fitted"
    up = rows["blk.0.ffn_up.weight"]
    assert up["status"] == "fitted" and up["note"] == "dequantized from Q8_0 (gguf.quants)"
    lam = np.linalg.svd(_q8_0_decoded(q8, 48, 64), compute_uv=False) ** 2
    assert up["lambda_max"] == pytest.approx(lam.max(), rel=1e-6)
    expected = {
        "blk.1.offset.weight": "offset/dims",
        "blk.1.overflow.weight": "offset/dims",
        "blk.1.type.weight": "unknown ggml type id 77",
        "blk.1.blocks.weight": "not a whole number of Q8_0 blocks",
        "blk.0.attn_q.weight [duplicate]": "a second tensor of this name",
    }
    for name, fragment in expected.items():
        assert rows[name]["status"] == "failed", name
        assert fragment in rows[name]["reason"], rows[name]["reason"]
    if run.opened is not None:
        assert set(run.opened_under(path.parent.parent)) <= {str(path.resolve())}


def test_describe_already_shows_the_bad_entries_failed(hostile_gguf):
    path, _ = hostile_gguf
    run = run_cli_limited("describe", str(path), "-f", "json", cwd=path.parent)
    assert run.returncode == 0, run.stderr
    status = {t["name"]: t["status"] for t in run.json()["tensors"]}
    assert status["blk.0.attn_q.weight"] == status["blk.0.ffn_up.weight"] == "analysed"
    assert {status[n] for n in status if n.startswith("blk.1.")} == {"failed"}
    assert status["blk.0.attn_q.weight [duplicate]"] == "failed"


def test_a_big_endian_float_tensor_reads_as_stored(tmp_path):
    """GGUF v3 big-endian (the version reads byte-swapped): floats read in their byte order."""
    from alphahat.sources import open_source

    path = tmp_path / "be.gguf"
    writer = gguf.GGUFWriter(str(path), "llama", endianess=gguf.GGUFEndian.BIG)
    writer.add_tensor("w.weight", W.copy(), raw_dtype=T.F32)  # byte-swapped by the writer
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with open_source(path) as source:
        (ref,) = list(source.tensors())
        np.testing.assert_array_equal(ref.load(), W)
