"""Hostile Keras, ONNX and GGUF files: no code from a file runs, nothing outside the model's
folder is read, forged sizes are refused quickly with an error naming the file."""

from __future__ import annotations

import base64
import json
import marshal
import struct
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hostile_inputs import finishes_within, good_matrix, log10_frobenius_sq, make_fifo

import alphahat
from alphahat.errors import SourceError

DENSE = good_matrix(21, (16, 40)).astype(np.float32)  # Keras kernel (in, out)

# ------------------------------------------------------------------------------------ Keras


def lambda_config(marker: Path) -> dict:
    """A Keras config whose deserialisation would run code creating ``marker``.

    Keras rebuilds a Lambda layer from marshalled bytecode and imports ``module`` for custom
    objects; a reader that deserialises the config runs both.
    """
    code = compile(f"open({str(marker)!r}, 'w').close()", "<payload>", "exec")
    blob = base64.b64encode(marshal.dumps(code)).decode()
    lambda_layer = {
        "class_name": "Lambda",
        "config": {
            "name": "evil",
            "function": {"class_name": "__lambda__", "config": {"code": blob}},
        },
    }
    custom = {
        "module": "os",
        "class_name": "system",
        "config": {"name": "custom", "command": f"touch {marker}"},
        "registered_name": "os>system",
    }
    dense = {"class_name": "Dense", "config": {"name": "head"}}
    return {
        "class_name": "Functional",
        "config": {"name": "model", "layers": [lambda_layer, custom, dense]},
    }


def keras_archive(path: Path, config: object, *, raw_config: bytes | None = None) -> Path:
    h5py = pytest.importorskip("h5py")
    weights = path.with_suffix(".weights.h5")
    with h5py.File(weights, "w") as f:
        group = f.create_group("layers/dense/vars")
        group.attrs["name"] = "head"
        group["0"] = DENSE
        group["1"] = np.zeros(40, np.float32)
        f.create_group("vars").attrs["name"] = "model"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", raw_config if raw_config is not None else json.dumps(config))
        z.write(weights, "model.weights.h5")
    weights.unlink()
    return path


def assert_dense_read(path: Path) -> None:
    rows = alphahat.analyze(path).details.set_index("name")
    assert rows.loc["head.kernel", "status"] == "fitted", rows.loc["head.kernel", "reason"]
    assert rows.loc["head.kernel", "log_norm"] == pytest.approx(log10_frobenius_sq(DENSE), rel=1e-6)


def test_keras_lambda_and_custom_objects_are_never_deserialised(tmp_path):
    """In a fresh interpreter: the weights are read, the payload never runs, keras never loads."""
    marker = tmp_path / "PWNED"
    path = keras_archive(tmp_path / "evil.keras", lambda_config(marker))
    script = textwrap.dedent(
        f"""
        import sys, alphahat
        report = alphahat.analyze({str(path)!r})
        print(sorted(report.details["name"]), report.details["status"].tolist())
        print([m for m in ("keras", "tensorflow", "jax") if m in sys.modules])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    names, loaded = done.stdout.strip().splitlines()
    assert "head.kernel" in names and "fitted" in names
    assert loaded == "[]", f"a Keras framework was imported: {loaded}"
    assert not marker.exists(), "code from the Keras config ran"
    # the payload is real: executing the marshalled code does create the file
    layer = lambda_config(marker)["config"]["layers"][0]
    exec(marshal.loads(base64.b64decode(layer["config"]["function"]["config"]["code"])))
    assert marker.exists()


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deep_nesting"),
        pytest.param(b'{"n": ' + b"7" * 5000 + b"}", id="5000_digit_int"),
        pytest.param(b'{"a": 1, "a": 2}', id="duplicate_key"),
        pytest.param(b"\xff\xfe{}", id="not_utf8"),
    ],
)
def test_keras_malformed_config_is_a_clean_error(tmp_path, raw):
    path = keras_archive(tmp_path / "m.keras", None, raw_config=raw)
    with pytest.raises(SourceError) as info:
        alphahat.describe(path)
    assert str(path) in str(info.value) and "config.json" in str(info.value)


def test_keras_nested_config_within_json_limits_still_reads_weights(tmp_path):
    node: object = {"class_name": "Dense", "config": {"name": "head"}}
    for _ in range(150):  # deep, but within what json parses
        node = {"config": {"layers": [node]}}
    assert_dense_read(keras_archive(tmp_path / "deep.keras", node))


def test_keras_config_zip_bomb_is_refused(tmp_path, monkeypatch):
    import alphahat.sources.keras_files as keras_files

    monkeypatch.setattr(keras_files, "MAX_CONFIG_BYTES", 10_000)
    config = {"class_name": "Functional", "config": {"padding": " " * 20_000}}
    path = keras_archive(tmp_path / "bomb.keras", config)
    with pytest.raises(SourceError, match="larger than"):
        alphahat.describe(path)


def test_legacy_h5_model_config_with_lambda_is_not_executed(tmp_path):
    h5py = pytest.importorskip("h5py")
    marker = tmp_path / "PWNED"
    path = tmp_path / "legacy.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(lambda_config(marker))
        weights = f.create_group("model_weights")
        weights.attrs["layer_names"] = np.array([b"head"])
        layer = weights.create_group("head")
        layer.attrs["weight_names"] = np.array([b"head/kernel:0"])
        layer.create_dataset("head/kernel:0", data=DENSE)
    frame = alphahat.describe(path)
    assert len(frame) >= 1
    assert not marker.exists()


# ------------------------------------------------------------------------------------- ONNX


def onnx_model(path: Path, location: str, offset: int = 0, data: bytes | None = None) -> Path:
    onnx = pytest.importorskip("onnx")
    helper, numpy_helper, TP = onnx.helper, onnx.numpy_helper, onnx.TensorProto
    good = numpy_helper.from_array(good_matrix(22, (12, 30)).astype(np.float32), "good.weight")
    evil = onnx.TensorProto()
    evil.name, evil.data_type = "evil.weight", TP.FLOAT
    evil.dims.extend([12, 20])
    evil.data_location = TP.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", "960")):
        entry = evil.external_data.add()
        entry.key, entry.value = key, value
    nodes = [
        helper.make_node("MatMul", ["x", "good.weight"], ["a"]),
        helper.make_node("MatMul", ["x", "evil.weight"], ["b"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TP.FLOAT, None)],
        [helper.make_tensor_value_info(n, TP.FLOAT, None) for n in "ab"],
        [good, evil],
    )
    path.write_bytes(helper.make_model(graph).SerializeToString())
    return path


@pytest.mark.parametrize(
    "location",
    [
        "../secret.bin",
        "ABSOLUTE",
        "link.bin",
        "a\x00b.bin",
        "x" * 5000,
        "fifo.bin",
        "sub/../../secret.bin",
    ],
)
def test_onnx_external_data_outside_the_folder_is_never_read(tmp_path, location):
    folder = tmp_path / "model"
    folder.mkdir()
    secret = tmp_path / "secret.bin"
    secret.write_bytes(good_matrix(23, (12, 20)).astype(np.float32).tobytes())
    (folder / "link.bin").symlink_to(secret)
    make_fifo(folder / "fifo.bin")
    location = str(secret) if location == "ABSOLUTE" else location
    path = onnx_model(folder / "m.onnx", location)
    finished, report = finishes_within(30, lambda: alphahat.analyze(path, min_evals=1))
    assert finished, "reading external data blocked"
    if isinstance(report, BaseException):
        raise report
    coverage = report.coverage.set_index("name")
    assert coverage.loc["evil.weight", "status"] == "failed"
    assert coverage.loc["good.weight", "status"] == "analysed"


def test_onnx_forged_external_range_fails_alone(tmp_path):
    (tmp_path / "w.bin").write_bytes(bytes(960))
    path = onnx_model(tmp_path / "m.onnx", "w.bin", offset=2**62)
    frame = alphahat.describe(path, min_evals=1).set_index("name")
    assert frame.loc["evil.weight", "status"] == "failed"
    assert "offset" in frame.loc["evil.weight", "reason"]
    assert frame.loc["good.weight", "status"] == "analysed"


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x08" * 64, np.random.default_rng(26).bytes(4096)],
    ids=["empty", "varint", "random"],
)
def test_onnx_garbage_is_a_clean_error(tmp_path, payload):
    path = tmp_path / "bad.onnx"
    path.write_bytes(payload)
    with pytest.raises(SourceError) as info:
        alphahat.describe(path)
    assert str(path) in str(info.value)


# ------------------------------------------------------------------------------------- GGUF


def gguf_file(path: Path) -> bytes:
    gguf = pytest.importorskip("gguf")
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_array("tokenizer.ggml.tokens", ["a", "b", "c"])
    writer.add_tensor("blk.0.attn_q.weight", good_matrix(24, (32, 16)).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path.read_bytes()


def forge(blob: bytes, at: int, fmt: str, value: int) -> bytes:
    return blob[:at] + struct.pack(fmt, value) + blob[at + struct.calcsize(fmt) :]


def test_gguf_forged_header_numbers_are_refused_fast(tmp_path):
    blob = gguf_file(tmp_path / "ok.gguf")
    key = blob.index(b"tokenizer.ggml.tokens") + len(b"tokenizer.ggml.tokens")
    name = blob.index(b"blk.0.attn_q.weight") + len(b"blk.0.attn_q.weight")
    forged = {
        "n_tensors": forge(blob, 8, "<Q", 2**62),
        "n_kv": forge(blob, 16, "<Q", 2**62),
        "array_count": forge(blob, key + 8, "<Q", 2**40),
        "string_length": forge(blob, key + 16, "<Q", 2**63),
        "value_type": forge(blob, key, "<I", 77),
        "n_dims": forge(blob, name, "<I", 2**31),
        "dim": forge(blob, name + 4, "<Q", 2**40),
        "offset": forge(blob, name + 4 + 16 + 4, "<Q", 2**60),
        "version": forge(blob, 4, "<I", 0),
        "truncated": blob[: len(blob) // 2],
    }
    one_tensor = {"dim", "offset", "truncated"}  # the header walk goes on: that tensor fails
    for label, data in forged.items():
        path = tmp_path / f"{label}.gguf"
        path.write_bytes(data)
        started = time.perf_counter()
        if label in one_tensor:
            row = alphahat.describe(path).set_index("name").loc["blk.0.attn_q.weight"]
            assert row["status"] == "failed" and "offset/dims" in row["reason"], label
            continue
        with pytest.raises(SourceError) as info:
            alphahat.describe(path)
        assert time.perf_counter() - started < 5, label
        assert str(path) in str(info.value), label


def test_gguf_metadata_array_bomb_is_refused_before_parsing(tmp_path, monkeypatch):
    """A long metadata array makes the gguf package build one object per item: refused."""
    import alphahat.sources.gguf_header as header

    monkeypatch.setattr(header, "MAX_ARRAY_ITEMS", 1000)
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "bomb.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_array("x.big", list(range(5000)))
    writer.add_tensor("blk.0.attn_q.weight", good_matrix(25, (32, 16)).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(SourceError, match="items in total"):
        alphahat.describe(path)


def test_gguf_fifo_does_not_block(tmp_path):
    fifo = make_fifo(tmp_path / "model.gguf")
    finished, result = finishes_within(20, lambda: alphahat.describe(fifo))
    assert finished and isinstance(result, SourceError), result
