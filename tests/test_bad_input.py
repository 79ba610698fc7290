"""Bad input: a clear error naming the file or tensor, never a bare traceback, no lost layers.

File-level problems raise :class:`alphahat.errors.SourceError` with the path in the message.
Tensor-level problems become ``failed`` (or ``skipped``) rows with a reason while every other
layer is still analysed. Failed rows never hold ±inf.
"""

from __future__ import annotations

import builtins
import json
import math
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alphahat
from alphahat.errors import AlphahatError, SourceError

safetensors_numpy = pytest.importorskip("safetensors.numpy")

#: metric columns that must be NaN in a row that failed before any spectrum was computed
METRICS = (
    "alpha", "alpha_weighted", "D", "sigma", "xmin", "xmax", "lambda_max", "log_spectral_norm",
    "norm", "log_norm", "log_alpha_norm", "stable_rank", "entropy",
)  # fmt: skip
FIT_METRICS = ("alpha", "alpha_weighted", "D", "sigma", "xmin", "xmax", "log_alpha_norm")


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def good_weights(seed: int = 0, count: int = 3) -> dict[str, np.ndarray]:
    g = rng(seed)
    return {f"good{i}.weight": g.standard_normal((48, 24)) for i in range(count)}


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]


def assert_no_inf(frame: pd.DataFrame, rows: pd.Series | None = None) -> None:
    """No numeric cell of the selected rows is ±inf."""
    sub = frame if rows is None else frame[rows]
    for col in numeric_columns(sub):
        values = pd.to_numeric(sub[col], errors="coerce").astype(float).to_numpy()
        assert not np.isinf(values).any(), f"column {col!r} holds ±inf: {sub[['name', col]]}"


def assert_failed_rows_clean(report) -> None:
    """Every failed row has a reason and no ±inf anywhere."""
    details = report.details
    failed = details["status"] == "failed"
    assert_no_inf(details, failed)
    for _, row in details[failed].iterrows():
        assert isinstance(row["reason"], str) and row["reason"].strip(), row["name"]


def rows(report) -> pd.DataFrame:
    assert report.details["name"].is_unique
    return report.details.set_index("name")


def cov(report) -> pd.DataFrame:
    assert report.coverage["name"].is_unique
    return report.coverage.set_index("name")


def expect_source_error(path, *fragments: str, **kwargs) -> str:
    """analyze() and describe() both raise SourceError naming the path (and fragments)."""
    messages = []
    for fn in (alphahat.analyze, alphahat.describe):
        with pytest.raises(SourceError) as info:
            fn(path, **kwargs)
        message = str(info.value)
        assert str(path) in message, message
        for fragment in fragments:
            assert fragment.lower() in message.lower(), message
        assert "Traceback" not in message
        messages.append(message)
    return messages[0]


def write_safetensors(path: Path, header: dict, data: bytes) -> Path:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def read_header(path: Path) -> tuple[dict, int]:
    """Independent parse of a safetensors header: (header, data start)."""
    blob = path.read_bytes()
    n = int.from_bytes(blob[:8], "little")
    return json.loads(blob[8 : 8 + n]), 8 + n


def log_norm(w: np.ndarray) -> float:
    return math.log10(float((np.asarray(w, dtype=np.float64) ** 2).sum()))


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize("relative", ["missing.safetensors", "nope/model.pt", "no_such_dir"])
def test_nonexistent_path(tmp_path, relative):
    expect_source_error(tmp_path / relative, "no such file")


def test_nonexistent_path_as_string(tmp_path):
    path = str(tmp_path / "ghost.safetensors")
    with pytest.raises(SourceError, match="ghost.safetensors"):
        alphahat.analyze(path)


def test_empty_directory(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    expect_source_error(folder, "no weights found")


def test_directory_with_only_readme(tmp_path):
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "README.md").write_text("# a model card, no weights\n")
    (folder / "config.json").write_text("{}")
    expect_source_error(folder, "no weights found")


@pytest.mark.parametrize("filename", ["weights.txt", "model.tflite", "model.pb", "weights"])
def test_unknown_extension_lists_supported_formats(tmp_path, filename):
    path = tmp_path / filename
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    message = expect_source_error(path, "unknown")
    for suffix in (".safetensors", ".pt", ".bin", ".npy", ".npz"):
        assert suffix in message, message


def test_unsupported_python_object():
    with pytest.raises(SourceError, match="list"):
        alphahat.analyze([np.ones((4, 4))])
    with pytest.raises(AlphahatError):
        alphahat.describe(42)


# --------------------------------------------------------------------------- safetensors


@pytest.fixture
def st_file(tmp_path) -> tuple[Path, dict[str, np.ndarray]]:
    weights = {**good_weights(1, count=5), "head.bias": rng(2).standard_normal(48)}
    path = tmp_path / "model.safetensors"
    safetensors_numpy.save_file({k: v.astype(np.float32) for k, v in weights.items()}, str(path))
    return path, weights


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.8])
def test_safetensors_truncated_in_data(tmp_path, st_file, fraction):
    path, weights = st_file
    header, start = read_header(path)
    entries = {k: v for k, v in header.items() if k != "__metadata__"}
    data_size = max(v["data_offsets"][1] for v in entries.values())
    cut = int(data_size * fraction)
    # cut strictly inside some tensor's data, so a tensor is partly present
    assert any(b < cut < e for b, e in (v["data_offsets"] for v in entries.values()))
    intact = {k for k, v in entries.items() if v["data_offsets"][1] <= cut and len(v["shape"]) >= 2}
    broken = {k for k, v in entries.items() if v["data_offsets"][1] > cut and len(v["shape"]) >= 2}
    unreadable = {k for k, v in entries.items() if v["data_offsets"][1] > cut}  # incl. 1-D
    assert intact and broken
    cut_path = tmp_path / "cut.safetensors"
    cut_path.write_bytes(path.read_bytes()[: start + cut])

    report = alphahat.analyze(cut_path)
    got = rows(report)
    assert set(got.index) >= intact | broken
    for name in intact:
        assert got.loc[name, "status"] == "fitted", got.loc[name, "reason"]
        want = log_norm(weights[name].astype(np.float32))
        assert got.loc[name, "log_norm"] == pytest.approx(want, rel=1e-10)
    for name in broken:
        assert got.loc[name, "status"] == "failed"
        assert "truncat" in got.loc[name, "reason"].lower()
        for col in METRICS:
            assert math.isnan(got.loc[name, col]), (name, col)
    assert_failed_rows_clean(report)
    coverage = cov(report)
    assert set(coverage.index) == set(entries)
    for name in unreadable:
        assert coverage.loc[name, "status"] == "failed"
        assert "truncat" in coverage.loc[name, "reason"].lower()
    assert set(coverage.index[coverage["status"] == "failed"]) == unreadable
    described = alphahat.describe(cut_path).set_index("name")
    assert set(described.index[described["status"] == "failed"]) == unreadable
    assert set(described.index[described["status"] == "analysed"]) == intact


@pytest.mark.parametrize("where", ["length_prefix", "header_middle", "header_end"])
def test_safetensors_truncated_in_header(tmp_path, st_file, where):
    path, _ = st_file
    blob = path.read_bytes()
    n = int.from_bytes(blob[:8], "little")
    keep = {"length_prefix": 5, "header_middle": 8 + n // 2, "header_end": 8 + n - 1}[where]
    cut_path = tmp_path / "cut.safetensors"
    cut_path.write_bytes(blob[:keep])
    expect_source_error(cut_path)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(rng(11).bytes(4096), id="random_bytes"),
        pytest.param(b"this is definitely not a safetensors file\n" * 4, id="text"),
        pytest.param(b"", id="empty"),
        pytest.param(
            struct.pack("<Q", 12) + b"\xff\xfe{not json" + bytes(64), id="header_not_json"
        ),
        pytest.param(struct.pack("<Q", 8) + b"[1,2,3] " + bytes(64), id="header_json_array"),
        pytest.param(struct.pack("<Q", 0) + bytes(16), id="empty_header"),
    ],
)
def test_safetensors_garbage(tmp_path, payload):
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(payload)
    expect_source_error(path)


@pytest.mark.parametrize("claimed", [2**64 - 1, 2**63, 100_000_001, 10**12])
def test_safetensors_header_claiming_huge_size(tmp_path, claimed):
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", claimed) + b'{"a":{}}' + bytes(32))
    expect_source_error(path)


def test_safetensors_header_with_bad_entries_fails_only_those(tmp_path):
    good = rng(3).standard_normal((40, 20))
    header = {
        "__metadata__": {"format": "pt"},
        "good.weight": {"dtype": "F64", "shape": [40, 20], "data_offsets": [0, 6400]},
        "huge.weight": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 4 * 2**80]},
        "liar.weight": {"dtype": "F32", "shape": [2**20, 2**20], "data_offsets": [0, 800]},
        "negative.weight": {"dtype": "F32", "shape": [-20, 10], "data_offsets": [0, 800]},
        "reversed.weight": {"dtype": "F32", "shape": [20, 10], "data_offsets": [800, 0]},
        "strange.weight": {"dtype": "F99", "shape": [20, 10], "data_offsets": [0, 800]},
        "notanobject.weight": 5,
    }
    path = write_safetensors(
        tmp_path / "bad_entries.safetensors", header, good.astype("<f8").tobytes()
    )
    report = alphahat.analyze(path)
    got = rows(report)
    bad = set(header) - {"__metadata__", "good.weight"}
    assert set(got.index) == bad | {"good.weight"}
    assert got.loc["good.weight", "status"] == "fitted"
    assert got.loc["good.weight", "log_norm"] == pytest.approx(log_norm(good), rel=1e-10)
    for name in bad:
        assert got.loc[name, "status"] == "failed", name
        for col in METRICS:
            assert math.isnan(got.loc[name, col]), (name, col)
    assert "truncat" in got.loc["huge.weight", "reason"]
    assert "F99" in got.loc["strange.weight", "reason"]
    assert_failed_rows_clean(report)


# --------------------------------------------------------------------------- shards


def _two_shards(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    weights = good_weights(4, count=4)
    names = sorted(weights)
    shard_of = {}
    for i, part in enumerate((names[:2], names[2:]), start=1):
        fname = f"model-{i:05d}-of-00003.safetensors"
        safetensors_numpy.save_file({n: weights[n] for n in part}, str(folder / fname))
        shard_of.update(dict.fromkeys(part, fname))
    return weights, shard_of


def _write_index(folder: Path, weight_map: dict[str, str]) -> Path:
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
    return index


def test_missing_shard_gives_failed_rows_naming_it(tmp_path):
    folder = tmp_path / "ckpt"
    weights, shard_of = _two_shards(folder)
    missing = "model-00003-of-00003.safetensors"
    lost = {"lost0.weight": missing, "lost1.weight": missing, "lost1.bias": missing}
    _write_index(folder, {**shard_of, **lost})
    report = alphahat.analyze(folder)
    got = rows(report)
    for name in weights:
        assert got.loc[name, "status"] == "fitted", name
        assert got.loc[name, "log_norm"] == pytest.approx(log_norm(weights[name]), rel=1e-10)
    for name in ("lost0.weight", "lost1.weight"):
        assert got.loc[name, "status"] == "failed"
        assert missing in got.loc[name, "reason"]
        assert "missing" in got.loc[name, "reason"]
        for col in METRICS:
            assert math.isnan(got.loc[name, col])
    coverage = cov(report)
    assert set(coverage.index) == set(weights) | set(lost)
    assert coverage.loc["lost1.bias", "status"] in ("failed", "skipped")
    assert missing in coverage.loc["lost1.bias", "reason"]
    assert_failed_rows_clean(report)


def test_index_entry_absent_from_its_shard(tmp_path):
    folder = tmp_path / "ckpt"
    weights, shard_of = _two_shards(folder)
    some_shard = next(iter(shard_of.values()))
    _write_index(folder, {**shard_of, "phantom.weight": some_shard})
    got = rows(alphahat.analyze(folder))
    assert got.loc["phantom.weight", "status"] == "failed"
    assert some_shard in got.loc["phantom.weight", "reason"]
    assert all(got.loc[n, "status"] == "fitted" for n in weights)


@pytest.mark.parametrize(
    "target", ["../outside.safetensors", "ABSOLUTE", "sub/../../outside.safetensors"]
)
def test_index_pointing_outside_the_folder(tmp_path, target):
    folder = tmp_path / "ckpt"
    weights, shard_of = _two_shards(folder)
    outside = tmp_path / "outside.safetensors"  # exists, so only the refusal keeps it out
    safetensors_numpy.save_file({"evil.weight": rng(5).standard_normal((30, 20))}, str(outside))
    entry = str(outside) if target == "ABSOLUTE" else target
    _write_index(folder, {**shard_of, "evil.weight": entry})
    report = alphahat.analyze(folder)
    got = rows(report)
    assert got.loc["evil.weight", "status"] == "failed"
    assert "outside" in got.loc["evil.weight", "reason"]
    for col in METRICS:
        assert math.isnan(got.loc["evil.weight", col])
    assert all(got.loc[n, "status"] == "fitted" for n in weights)
    assert str(outside) not in report.provenance["files"]
    assert_failed_rows_clean(report)


def test_corrupt_index_json(tmp_path):
    folder = tmp_path / "ckpt"
    _two_shards(folder)
    index = folder / "model.safetensors.index.json"
    for text in ("{not json", json.dumps({"metadata": {}}), json.dumps({"weight_map": {"a": 5}})):
        index.write_text(text)
        with pytest.raises(SourceError, match="index"):
            alphahat.analyze(folder)


def test_corrupt_shard_header_names_the_shard(tmp_path):
    folder = tmp_path / "ckpt"
    _, shard_of = _two_shards(folder)
    _write_index(folder, shard_of)
    broken = folder / sorted(set(shard_of.values()))[1]
    broken.write_bytes(broken.read_bytes()[:20])
    # the broken shard's tensors fail with a reason naming it; the other shard is analysed
    in_broken = {name for name, shard in shard_of.items() if shard == broken.name}
    report = alphahat.analyze(folder)
    failed = report.coverage[report.coverage["status"] == "failed"]
    assert set(failed["name"]) == in_broken
    assert all(str(broken) in reason for reason in failed["reason"])
    assert (report.details["status"] == "fitted").sum() > 0
    described = alphahat.describe(folder).set_index("name")
    assert (described.loc[sorted(in_broken), "status"] == "failed").all()


# --------------------------------------------------------------------------- values


def _nan_inf_weights() -> dict[str, np.ndarray]:
    weights = good_weights(6, count=3)
    g = rng(7)
    nan = g.standard_normal((32, 16))
    nan[3, 4] = np.nan
    inf = g.standard_normal((32, 16))
    inf[0, 0] = np.inf
    neginf = g.standard_normal((32, 16))
    neginf[5, 1] = -np.inf
    return {**weights, "nan.weight": nan, "inf.weight": inf, "neginf.weight": neginf}


def _as_safetensors(weights, tmp_path):
    path = tmp_path / "w.safetensors"
    safetensors_numpy.save_file({k: v.astype(np.float32) for k, v in weights.items()}, str(path))
    return path


def _as_float16_mapping(weights, tmp_path):
    return {k: v.astype(np.float16) for k, v in weights.items()}


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize(
    "wrap",
    [lambda w, p: w, _as_safetensors, _as_float16_mapping],
    ids=["mapping", "safetensors", "float16"],
)
def test_nan_and_inf_layers_fail_alone(tmp_path, wrap):
    weights = _nan_inf_weights()
    report = alphahat.analyze(wrap(weights, tmp_path))
    got = rows(report)
    assert set(got.index) == set(weights)
    expectations = {"nan.weight": "NaN", "inf.weight": "Inf", "neginf.weight": "Inf"}
    for name, word in expectations.items():
        assert got.loc[name, "status"] == "failed", name
        assert word in got.loc[name, "reason"], got.loc[name, "reason"]
        for col in METRICS:
            assert math.isnan(got.loc[name, col]), (name, col)
    for name in set(weights) - set(expectations):
        assert got.loc[name, "status"] == "fitted", name
        assert got.loc[name, "reason"] == ""
    assert_failed_rows_clean(report)
    coverage = cov(report)
    for name in expectations:
        assert coverage.loc[name, "status"] == "failed"


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_all_zero_matrix():
    weights = {**good_weights(8, count=2), "zero.weight": np.zeros((32, 16))}
    report = alphahat.analyze(weights)
    got = rows(report)
    assert got.loc["zero.weight", "status"] == "failed"
    assert got.loc["zero.weight", "reason"]
    assert got.loc["zero.weight", "matrix_rank"] == 0
    for col in ("alpha", "log_norm", "log_spectral_norm", "stable_rank", "alpha_weighted"):
        assert math.isnan(got.loc["zero.weight", col]), col
    assert all(got.loc[n, "status"] == "fitted" for n in good_weights(8, count=2))
    assert_no_inf(report.details)
    summary = report.summary().as_dict()
    assert all(not (isinstance(v, float) and math.isinf(v)) for v in summary.values())


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("shape", [(40, 16), (16, 40)])
def test_rank_one_matrix(shape):
    g = rng(9)
    u, v = g.standard_normal(shape[0]), g.standard_normal(shape[1])
    w = np.outer(u, v)
    report = alphahat.analyze({"rank1.weight": w, **good_weights(9, count=1)})
    row = rows(report).loc["rank1.weight"]
    assert row["status"] == "failed"
    assert "fit" in row["reason"]
    for col in FIT_METRICS:
        assert math.isnan(row[col]), col
    expected = float(u @ u) * float(v @ v)  # the one nonzero eigenvalue = ||W||_F^2
    assert row["log_norm"] == pytest.approx(math.log10(expected), rel=1e-10)
    assert row["log_spectral_norm"] == pytest.approx(math.log10(expected), rel=1e-10)
    assert row["stable_rank"] == pytest.approx(1.0, rel=1e-10)
    assert row["matrix_rank"] == 1
    assert rows(report).loc["good0.weight", "status"] == "fitted"
    assert_failed_rows_clean(report)


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("shape", [(1, 50), (50, 1)])
def test_single_row_matrix(shape):
    w = rng(10).standard_normal(shape)
    weights = {"thin.weight": w, **good_weights(10, count=1)}
    report = alphahat.analyze(weights)
    assert "thin.weight" not in set(report.details["name"])
    coverage = cov(report)
    assert coverage.loc["thin.weight", "status"] == "skipped"
    assert "min_evals" in coverage.loc["thin.weight", "reason"]
    assert coverage.loc["thin.weight", "num_evals"] == 1

    report = alphahat.analyze(weights, min_evals=0)
    row = rows(report).loc["thin.weight"]
    assert row["status"] == "failed"
    assert row["reason"]
    assert (row["N"], row["M"], row["num_evals"]) == (50, 1, 1)
    assert row["log_norm"] == pytest.approx(log_norm(w), rel=1e-10)
    assert row["stable_rank"] == pytest.approx(1.0, rel=1e-12)
    assert rows(report).loc["good0.weight", "status"] == "fitted"
    assert_failed_rows_clean(report)


def test_huge_finite_weights_never_give_inf():
    """Each eigenvalue fits in float64 but their sum does not: no column may become inf."""
    q, _ = np.linalg.qr(rng(12).standard_normal((32, 16)))
    sigma = 1e154 * np.linspace(0.6, 1.0, 16)  # eigenvalues 3.6e307 … 1e308, sum > 1.8e308
    w = q * sigma
    assert np.isfinite(w).all()
    with np.errstate(over="ignore"):  # the overflow is the point of this input
        assert np.isfinite(sigma**2).all() and np.isinf((sigma**2).sum())
    report = alphahat.analyze({"huge.weight": w, **good_weights(12, count=1)})
    got = rows(report)
    assert got.loc["good0.weight", "status"] == "fitted"
    assert got.loc["huge.weight", "reason"] or got.loc["huge.weight", "status"] == "fitted"
    assert_no_inf(report.details)
    assert_failed_rows_clean(report)


def test_empty_matrix_is_skipped():
    report = alphahat.analyze({"empty.weight": np.zeros((0, 16)), **good_weights(13, count=1)})
    coverage = cov(report)
    assert coverage.loc["empty.weight", "status"] == "skipped"
    assert coverage.loc["empty.weight", "reason"]
    assert rows(report).loc["good0.weight", "status"] == "fitted"


# --------------------------------------------------------------------------- dtypes


INTEGER_ARRAYS = {
    "ids.weight": (np.arange(400, dtype=np.int64).reshape(40, 10), "integer"),
    "quant.weight": (np.ones((40, 10), dtype=np.int8), "integer"),
    "bytes.weight": (np.ones((40, 10), dtype=np.uint8), "integer"),
    "mask.weight": (np.ones((40, 10), dtype=bool), "boolean"),
}


def _integer_inputs(tmp_path):
    arrays = {k: v for k, (v, _) in INTEGER_ARRAYS.items()}
    good = good_weights(14, count=2)
    path = tmp_path / "ints.safetensors"
    safetensors_numpy.save_file({**arrays, **good}, str(path))
    inputs = {"numpy": {**arrays, **good}, "safetensors": path}
    torch = pytest.importorskip("torch")
    inputs["torch"] = {
        **{k: torch.from_numpy(v.copy()) for k, v in arrays.items()},
        **{k: torch.from_numpy(v) for k, v in good.items()},
    }
    return inputs, good


@pytest.mark.parametrize("kind", ["numpy", "safetensors", "torch"])
def test_integer_and_boolean_tensors_are_skipped(tmp_path, kind):
    inputs, good = _integer_inputs(tmp_path)
    report = alphahat.analyze(inputs[kind])
    coverage = cov(report)
    for name, (array, word) in INTEGER_ARRAYS.items():
        assert coverage.loc[name, "status"] == "skipped", name
        assert word in coverage.loc[name, "reason"].lower(), coverage.loc[name, "reason"]
        assert coverage.loc[name, "dtype"] == array.dtype.name
    assert set(report.details["name"]) == set(good)
    assert (report.details["status"] == "fitted").all()


# --------------------------------------------------------------------------- pickles


class _Payload:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_pickle_payload_in_pt_is_refused(tmp_path, zip_format):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "PWNED"
    path = tmp_path / "model.pt"
    torch.save(
        {"fc.weight": torch.randn(20, 10), "evil": _Payload(marker)},
        path,
        _use_new_zipfile_serialization=zip_format,
    )
    assert not marker.exists()
    message = expect_source_error(path, "unsafe-load")
    assert not marker.exists(), "the pickle payload ran"
    assert "refused" in message
    # positive control: the payload is real, an explicit unsafe load does run it
    alphahat.describe(path, unsafe_load=True)
    assert marker.exists()


def test_unsafe_load_still_reads_the_weights(tmp_path):
    torch = pytest.importorskip("torch")
    w = torch.randn(40, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    path = tmp_path / "model.pt"
    torch.save({"fc.weight": w, "evil": _Payload(tmp_path / "marker")}, path)
    report = alphahat.analyze(path, unsafe_load=True)
    got = rows(report)
    assert got.loc["fc.weight", "log_norm"] == pytest.approx(log_norm(w.numpy()), rel=1e-10)
    # the non-tensor entry is reported, not dropped and not a crash
    assert "evil" in set(report.coverage["name"])
    assert_failed_rows_clean(report)


@pytest.mark.parametrize(("seed", "suffix"), [(0, ".pt"), (1, ".bin"), (2, ".pth")])
def test_corrupt_pt_random_bytes(tmp_path, suffix, seed):
    pytest.importorskip("torch")
    path = tmp_path / f"model{suffix}"
    path.write_bytes(rng(seed).bytes(2048))
    message = expect_source_error(path)
    # a corrupt file is not a "needs a full unpickle" file: do not advise unsafe loading
    assert "unsafe" not in message.lower(), message


@pytest.mark.parametrize("how", ["truncated", "empty", "zip_garbage"])
def test_corrupt_pt_file(tmp_path, how):
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    torch.save({"fc.weight": torch.randn(64, 32)}, path)
    blob = path.read_bytes()
    path.write_bytes(
        {
            "truncated": blob[: len(blob) // 2],
            "empty": b"",
            "zip_garbage": b"PK\x03\x04" + bytes(300),
        }[how]
    )
    message = expect_source_error(path)
    assert "unsafe" not in message.lower(), message


def test_pt_holding_a_non_state_dict(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "list.pt"
    torch.save([torch.randn(4, 4)], path)
    expect_source_error(path, "list")


def _object_npz(tmp_path: Path, marker: Path) -> tuple[Path, np.ndarray]:
    good = rng(15).standard_normal((48, 24))
    path = tmp_path / "objects.npz"
    obj2d = np.empty((2, 2), dtype=object)
    obj2d[0, 0] = _Payload(marker)
    obj1d = np.empty(1, dtype=object)
    obj1d[0] = _Payload(marker)
    np.savez(path, good=good, objects2d=obj2d, objects1d=obj1d)
    return path, good


def test_npz_object_arrays_are_never_unpickled(tmp_path):
    marker = tmp_path / "PWNED"
    path, good = _object_npz(tmp_path, marker)
    try:
        report = alphahat.analyze(path)
    except SourceError as exc:  # acceptable: a clear refusal naming the file
        assert str(path) in str(exc)
        assert not marker.exists()
        return
    assert not marker.exists(), "an object array was unpickled"
    coverage = cov(report)
    assert set(coverage.index) == {"good", "objects2d", "objects1d"}
    for name in ("objects2d", "objects1d"):
        assert coverage.loc[name, "status"] in ("skipped", "failed"), name
        assert coverage.loc[name, "reason"], name
    got = rows(report)
    assert got.loc["good", "status"] == "fitted"
    assert got.loc["good", "log_norm"] == pytest.approx(log_norm(good), rel=1e-10)
    assert_failed_rows_clean(report)
    alphahat.describe(path)
    assert not marker.exists()


def test_npz_payload_is_real(tmp_path):
    """Positive control for the test above: a pickle-allowing load does run the payload."""
    marker = tmp_path / "PWNED"
    path, _ = _object_npz(tmp_path, marker)
    with np.load(path, allow_pickle=True) as archive:
        archive["objects1d"]
    assert marker.exists()


def test_npy_object_array_is_refused(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "objects.npy"
    arr = np.empty((2, 2), dtype=object)
    arr[0, 0] = _Payload(marker)
    np.save(path, arr)
    expect_source_error(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [rng(16).bytes(1024), b"", b"PK\x03\x04" + bytes(100)],
    ids=["random", "empty", "zip"],
)
def test_corrupt_npz(tmp_path, payload):
    path = tmp_path / "bad.npz"
    path.write_bytes(payload)
    expect_source_error(path)


@pytest.mark.parametrize("how", ["random", "empty", "truncated"])
def test_corrupt_npy(tmp_path, how):
    path = tmp_path / "bad.npy"
    np.save(path, rng(19).standard_normal((40, 20)))
    blob = path.read_bytes()
    path.write_bytes(
        {"random": rng(20).bytes(512), "empty": b"", "truncated": blob[: len(blob) // 2]}[how]
    )
    message = expect_source_error(path)
    if how == "truncated":  # a cut-off array is not a pickle: the message must not say so
        assert "unpickl" not in message.lower(), message


def _corrupt_npz_member(path: Path, member: str, at: str) -> None:
    """Flip bytes of one member's stored (possibly deflated) data, in place."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    blob = bytearray(path.read_bytes())
    off = info.header_offset
    start = (
        off
        + 30
        + int.from_bytes(blob[off + 26 : off + 28], "little")
        + int.from_bytes(blob[off + 28 : off + 30], "little")
    )
    pos = start if at == "start" else start + info.compress_size // 2
    for i in range(pos, pos + 8):
        blob[i] ^= 0x5A
    path.write_bytes(bytes(blob))


@pytest.mark.parametrize(
    ("compressed", "at"), [(False, "middle"), (True, "middle"), (True, "start"), (False, "start")]
)
def test_npz_corrupt_member_fails_alone(tmp_path, compressed, at):
    weights = {name: rng(21 + i).standard_normal((40, 20)) for i, name in enumerate("abc")}
    path = tmp_path / "damaged.npz"
    (np.savez_compressed if compressed else np.savez)(path, **weights)
    _corrupt_npz_member(path, "b.npy", at)
    report = alphahat.analyze(path)
    coverage = cov(report)
    assert set(coverage.index) == {"a", "b", "c"}
    assert coverage.loc["b", "status"] == "failed"
    assert coverage.loc["b", "reason"]
    got = rows(report)
    for name in ("a", "c"):
        assert got.loc[name, "status"] == "fitted"
        assert got.loc[name, "log_norm"] == pytest.approx(log_norm(weights[name]), rel=1e-10)
    assert_failed_rows_clean(report)


def test_npz_plain_archive_is_read(tmp_path):
    """Guard for the npz tests above: a valid archive is analysed."""
    weights = good_weights(17, count=2)
    path = tmp_path / "ok.npz"
    np.savez(path, **weights)
    got = rows(alphahat.analyze(path))
    for name, w in weights.items():
        assert got.loc[name, "log_norm"] == pytest.approx(log_norm(w), rel=1e-10)


# --------------------------------------------------------------------------- everything at once


def test_mixed_bad_model_keeps_every_good_layer(tmp_path):
    """All tensor-level problems in one file: each is reported, none hides another layer."""
    g = rng(18)
    good = {f"block{i}.weight": g.standard_normal((48, 24)).astype(np.float32) for i in range(3)}
    nan = g.standard_normal((32, 16)).astype(np.float32)
    nan[1, 1] = np.nan
    bad = {
        "nan.weight": nan,
        "zero.weight": np.zeros((32, 16), np.float32),
        "rank1.weight": np.outer(g.standard_normal(32), g.standard_normal(16)).astype(np.float32),
        "ids.weight": np.arange(320, dtype=np.int64).reshape(32, 10),
        "thin.weight": g.standard_normal((1, 64)).astype(np.float32),
        "vector.bias": g.standard_normal(32).astype(np.float32),
    }
    path = tmp_path / "mixed.safetensors"
    safetensors_numpy.save_file({**good, **bad}, str(path))
    report = alphahat.analyze(path)
    coverage = cov(report)
    assert set(coverage.index) == set(good) | set(bad)
    for name in good:
        assert coverage.loc[name, "status"] == "analysed"
        assert rows(report).loc[name, "status"] == "fitted"
    assert {n for n in bad if coverage.loc[n, "status"] == "failed"} == {
        "nan.weight",
        "zero.weight",
        "rank1.weight",
    }
    assert {n for n in bad if coverage.loc[n, "status"] == "skipped"} == {
        "ids.weight",
        "thin.weight",
        "vector.bias",
    }
    assert all(coverage["reason"][coverage["status"] != "analysed"].str.len() > 0)
    assert_failed_rows_clean(report)
