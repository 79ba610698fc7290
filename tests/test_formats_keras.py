"""Keras files: a model of every supported layer type saved by keras itself (torch backend, in a
subprocess so KERAS_BACKEND never leaks into this process), the live model, and broken files.

Expected values are NumPy SVDs of the arrays keras's own ``get_weights()`` returns, in keras's
layout (kernels (in, out), conv kernels (k…, in, out)); the source must permute them to the
PyTorch layout without changing a single eigenvalue.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

import alphahat
from alphahat.errors import SourceError

h5py = pytest.importorskip("h5py")

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.environ["KERAS_BACKEND"] = "torch"
    import keras, numpy as np
    import alphahat

    keras.utils.set_random_seed(0)
    out = sys.argv[1]
    seq = keras.Input((6, 12))
    img = keras.Input((10, 10, 3))
    ids = keras.Input((4,), dtype="int32")
    a = keras.layers.MultiHeadAttention(num_heads=3, key_dim=8, name="mha")(seq, seq)
    a = keras.layers.LSTM(16, name="lstm")(a)
    a = keras.layers.Dense(20, name="fc")(a)
    c = keras.layers.Conv2D(9, 3, name="conv")(img)
    c = keras.layers.Conv2DTranspose(5, 3, name="deconv")(c)
    c = keras.layers.Reshape((-1, 5))(c)
    c = keras.layers.Flatten()(keras.layers.Conv1D(7, 3, name="conv1d")(c))
    e = keras.layers.Embedding(40, 12, name="emb")(ids)
    model = keras.Model([seq, img, ids], [a, c, e])
    model.compile(optimizer="adam", loss="mse")
    model.save(os.path.join(out, "model.keras"))
    model.save(os.path.join(out, "model.h5"))
    model.save_weights(os.path.join(out, "model.weights.h5"))
    arrays = {v.path.replace("/", "."): keras.ops.convert_to_numpy(v.value) for v in model.weights}
    np.savez(os.path.join(out, "weights.npz"), **arrays)
    details = alphahat.analyze(model, min_evals=1).details
    columns = ["name", "shape", "kind", "log_norm"]
    details[columns].to_json(os.path.join(out, "live.json"), orient="records", double_precision=15)
    """
)  # fmt: skip


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    if importlib.util.find_spec("keras") is None:
        pytest.skip("keras is not installed")
    out = tmp_path_factory.mktemp("keras")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "KERAS_BACKEND": "torch"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def log_norm(m: np.ndarray) -> float:
    return math.log10((np.linalg.svd(m.astype(np.float64), compute_uv=False) ** 2).sum())


def expected_log_norms(weights: dict[str, np.ndarray]) -> dict[str, float]:
    """log₁₀ Σλ per analysed variable, from keras's own arrays (conv slices scaled by 1/√2)."""
    out = {}
    for name, w in weights.items():
        if not name.endswith(("kernel", "embeddings")):
            continue
        if w.ndim == 2:
            out[name] = log_norm(w)
        elif w.ndim == 3 and name.startswith("mha."):
            out[name] = log_norm(
                w.reshape(w.shape[0], -1) if "output" not in name else w.reshape(-1, w.shape[-1])
            )
        elif w.ndim >= 3:  # conv: one matrix per kernel position, λ halved
            flat = w.reshape(-1, w.shape[-2], w.shape[-1])
            lam = sum(
                (np.linalg.svd(m.astype(np.float64), compute_uv=False) ** 2).sum() for m in flat
            )
            out[name] = math.log10(lam / 2)
    return out  # fmt: skip


KINDS = {
    "mha.query.kernel": ("linear", "24x12"),
    "mha.attention_output.kernel": ("linear", "12x24"),
    "lstm.lstm_cell.kernel": ("rnn", "64x12"),
    "lstm.lstm_cell.recurrent_kernel": ("rnn", "64x16"),
    "fc.kernel": ("linear", "20x16"),
    "conv.kernel": ("conv2d", "9x3x3x3"),
    "deconv.kernel": ("conv2d", "9x5x3x3"),  # (k, k, out, in) → (in, out, k, k)
    "conv1d.kernel": ("conv1d", "7x5x3"),
    "emb.embeddings": ("embedding", "40x12"),
}


@pytest.mark.slow
@pytest.mark.parametrize("filename", ["model.keras", "model.h5", "model.weights.h5", "live"])
def test_keras_files_and_live_model(saved, filename):
    weights = dict(np.load(saved / "weights.npz"))
    expected = expected_log_norms(weights)
    if filename == "live":
        got = {r["name"]: r for r in json.loads((saved / "live.json").read_text())}
    else:
        path = saved / filename
        described = alphahat.describe(path, min_evals=1).set_index("name")
        # every model variable listed once, under its Keras path
        model_vars = set(described.index[~described.index.str.startswith("optimizer")])
        assert model_vars == set(weights)
        got = alphahat.analyze(path, min_evals=1).details.set_index("name").to_dict("index")
    for name, (kind, shape) in KINDS.items():
        assert got[name]["kind"] == kind, name
        assert got[name]["shape"] == shape, name
    for name, value in expected.items():
        assert got[name]["log_norm"] == pytest.approx(value, rel=1e-10), name


@pytest.mark.slow
def test_optimizer_state_is_listed_not_analysed(saved):
    frame = alphahat.describe(saved / "model.keras").set_index("name")
    optimizer = frame[frame.index.str.startswith("optimizer")]
    assert len(optimizer) > 0
    assert (optimizer["status"] == "skipped").all()
    assert optimizer["reason"].str.contains("optimizer state").all()


# --------------------------------------------------------------------------- h5py-built files


def keras3_weights(path: Path, *, with_config: bool = True) -> Path:
    """A Keras 3 layout written with h5py: layers/<attr>/vars/<i> (what keras writes)."""
    rng = np.random.default_rng(0)
    weights = path.with_suffix(".h5") if path.suffix == ".keras" else path
    with h5py.File(weights, "w") as f:
        group = f.create_group("layers/dense/vars")
        group.attrs["name"] = "head"
        group["0"] = rng.standard_normal((16, 10)).astype(np.float32)
        group["1"] = np.zeros(10, np.float32)
        f.create_group("vars").attrs["name"] = "model"
    if path.suffix != ".keras":
        return path
    config = {"class_name": "Functional", "config": {"name": "model", "layers": [
        {"class_name": "Dense", "config": {"name": "head"}}]}}  # fmt: skip
    with zipfile.ZipFile(path, "w") as z:
        if with_config:
            z.writestr("config.json", json.dumps(config))
        z.write(weights, "model.weights.h5")
    weights.unlink()
    return path


@pytest.mark.parametrize("with_config", [True, False])
def test_keras3_archive_written_by_h5py(tmp_path, with_config):
    """Without config.json the variable names and kinds still follow Keras conventions."""
    path = keras3_weights(tmp_path / "m.keras", with_config=with_config)
    frame = alphahat.describe(path).set_index("name")
    assert sorted(frame.index) == ["head.bias", "head.kernel"]
    assert frame.loc["head.kernel", "kind"] == "linear"
    assert frame.loc["head.kernel", "shape"] == "10x16"
    assert "transposed" in frame.loc["head.kernel", "note"]


def test_archive_without_weights(tmp_path):
    path = tmp_path / "empty.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", "{}")
    with pytest.raises(SourceError, match="empty.keras.*model.weights.h5"):
        alphahat.describe(path)


def test_archive_with_bad_config(tmp_path):
    weights = keras3_weights(tmp_path / "w.weights.h5")
    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", "{not json")
        z.write(weights, "model.weights.h5")
    with pytest.raises(SourceError, match="m.keras"):
        alphahat.describe(path)


def test_compressed_archive_is_read_too(tmp_path):
    plain = keras3_weights(tmp_path / "m.keras")
    packed = tmp_path / "packed.keras"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            dst.writestr(item.filename, src.read(item.filename))
    a = alphahat.describe(plain)
    b = alphahat.describe(packed)
    assert a["name"].tolist() == b["name"].tolist()


@pytest.mark.parametrize("how", ["garbage", "truncated_h5", "truncated_zip", "plain_hdf5"])
def test_unreadable_files_name_the_file(tmp_path, how):
    rng = np.random.default_rng(1)
    if how == "garbage":
        path = tmp_path / "garbage.h5"
        path.write_bytes(rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    elif how == "truncated_h5":
        path = keras3_weights(tmp_path / "truncated_h5.weights.h5")
        path.write_bytes(path.read_bytes()[:1500])
    elif how == "truncated_zip":
        path = keras3_weights(tmp_path / "truncated_zip.keras")
        path.write_bytes(path.read_bytes()[:-200])
    else:
        path = tmp_path / "plain_hdf5.h5"
        with h5py.File(path, "w") as f:
            f["data"] = np.zeros((3, 3))
    with pytest.raises(SourceError, match=how):
        alphahat.describe(path)


def test_unsupported_dtype_fails_alone(tmp_path):
    path = keras3_weights(tmp_path / "m.weights.h5")
    with h5py.File(path, "a") as f:
        group = f.create_group("layers/strings/vars")
        group["0"] = np.array([b"abc", b"de"])
    frame = alphahat.describe(path).set_index("name")
    bad = [n for n in frame.index if n.startswith("strings")]
    assert frame.loc[bad, "status"].tolist() == ["failed"]
    assert "dtype" in frame.loc[bad[0], "reason"]
    assert frame.loc["head.kernel", "status"] == "analysed"
