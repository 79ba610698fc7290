"""Hostile HDF5 (Keras weights) files: data in other files, unallocated chunks, gzip bombs.

The files are built here with h5py (a Keras 3 ``layers/<name>/vars/<i>`` layout); the CLI runs
in a subprocess under an address-space limit (RLIMIT_AS), and with strace (when installed) no
file outside the model's folder is opened.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hostile_inputs import good_matrix, run_cli_limited, strace_path, traced_peak, zip_bytes

h5py = pytest.importorskip("h5py")
PEAK_BOUND = 1 * 2**30


def _gzip_bomb(group, shape=(16_384, 16_384), chunk=(1024, 1024)) -> None:
    """A gzip-compressed float32 dataset of zeros: 1 GiB declared, about 1 MB stored.

    Each chunk is compressed once and written raw (``write_direct_chunk``): no gigabyte of
    zeros goes through the compressor.
    """
    dataset = group.create_dataset("0", shape=shape, dtype="<f4", chunks=chunk, compression=9)
    packed = zlib.compress(bytes(4 * chunk[0] * chunk[1]), 9)
    for i in range(0, shape[0], chunk[0]):
        for j in range(0, shape[1], chunk[1]):
            dataset.id.write_direct_chunk((i, j), packed)


@pytest.fixture(scope="module")
def hostile_h5(tmp_path_factory):
    root = tmp_path_factory.mktemp("h5")
    folder, outside = root / "model", root / "outside"
    folder.mkdir()
    outside.mkdir()
    raw = good_matrix(9, (64, 48)).astype("<f4")
    (outside / "raw.bin").write_bytes(raw.tobytes())
    with h5py.File(outside / "src.h5", "w") as f:
        f["w"] = raw
        f.create_group("layers/dense_9/vars")["0"] = raw
    path = folder / "model.weights.h5"
    with h5py.File(path, "w") as f:
        layers = f.create_group("layers")
        for i, shape in enumerate([(32, 64), (48, 40)]):
            group = layers.create_group(f"dense_{i}/vars")
            group["0"] = good_matrix(i, shape).astype("<f4")  # Keras kernels are (in, out)
            group["1"] = np.zeros(shape[1], "<f4")
        layers.create_group("external_storage/vars").create_dataset(
            "0", shape=(64, 48), dtype="<f4", external=[(str(outside / "raw.bin"), 0, raw.nbytes)]
        )
        layout = h5py.VirtualLayout(shape=(64, 48), dtype="<f4")
        layout[:] = h5py.VirtualSource(str(outside / "src.h5"), "w", shape=(64, 48))
        layers.create_group("virtual/vars").create_virtual_dataset("0", layout)
        layers["linked"] = h5py.ExternalLink(str(outside / "src.h5"), "/layers/dense_9")
        layers.create_group("unallocated/vars").create_dataset(
            "0", shape=(39_500, 39_500), dtype="<f4", chunks=(1000, 1000)
        )  # 5.8 GiB declared, no chunk written
        _gzip_bomb(layers.create_group("bomb/vars"))
    return path, outside


def test_data_outside_the_file_and_forged_sizes_fail_alone(hostile_h5):
    path, outside = hostile_h5
    run = run_cli_limited(
        "analyze", str(path), "-f", "json", "-q", cwd=outside,
        trace_opens=strace_path() is not None,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "internal error" not in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert run.peak_rss < PEAK_BOUND, run.peak_rss
    rows = {r["name"]: r for r in run.json()["layers"]}
    assert rows["dense_0.kernel"]["status"] == rows["dense_1.kernel"]["status"] == "fitted"
    expected = {
        "external_storage.kernel": "HDF5 external storage in other files",
        "virtual.kernel": "an HDF5 virtual dataset",
        "linked": "an HDF5 external link to",
        "unallocated.kernel": "only 0 are stored",
    }
    for name, fragment in expected.items():
        assert rows[name]["status"] == "failed", (name, rows[name])
        assert fragment in rows[name]["reason"], rows[name]["reason"]
    tensors = {t["name"]: t for t in run.json()["tensors"]}
    bomb = tensors["bomb.kernel"]
    assert bomb["status"] == "skipped" and "too large: needs about" in bomb["reason"]
    if run.opened is not None:  # the trace sees the model file (it works), not the others
        assert str(path.resolve()) in run.opened
        assert run.opened_under(outside) == []


def test_describe_already_shows_them_failed(hostile_h5):
    path, outside = hostile_h5
    run = run_cli_limited("describe", str(path), "-f", "json", cwd=outside)
    assert run.returncode == 0, run.stderr
    status = {t["name"]: t["status"] for t in run.json()["tensors"]}
    assert status["dense_0.kernel"] == "analysed"
    for name in ("external_storage.kernel", "virtual.kernel", "linked", "unallocated.kernel"):
        assert status[name] == "failed", name


def test_a_bomb_within_the_budget_reads_into_one_array(tmp_path):
    """With the budget raised, the gzip bomb is read chunk by chunk into its array."""
    from alphahat.sources import open_source

    path = tmp_path / "model.weights.h5"
    with h5py.File(path, "w") as f:
        _gzip_bomb(f.create_group("layers/dense/vars"), shape=(4096, 2048), chunk=(512, 512))
    with open_source(path) as source:
        (ref,) = list(source.tensors())
        values, peak = traced_peak(ref.load)
    assert values.shape == (2048, 4096) and not values.any()
    assert peak < 1.2 * values.nbytes, (peak, values.nbytes)


def test_a_keras_archive_whose_zip_directory_lies_is_refused(tmp_path):
    """A stored model.weights.h5 whose zip entry claims 4 GB for 2 kB: one line naming both."""
    import alphahat
    from alphahat.errors import SourceError

    inner = tmp_path / "inner.h5"
    with h5py.File(inner, "w") as f:
        f.create_group("layers/dense/vars")["0"] = good_matrix(1, (32, 16)).astype("<f4")
    data = inner.read_bytes()
    entry = {"name": "model.weights.h5", "data": data, "method": 0, "crc": zlib.crc32(data),
             "size": 4_000_000_000}  # fmt: skip
    path = tmp_path / "model.keras"
    path.write_bytes(zip_bytes([entry]))
    with pytest.raises(SourceError) as info:
        alphahat.describe(path)
    message = str(info.value)
    assert "model.keras" in message and "model.weights.h5" in message
    assert "claiming 4000000000 bytes" in message and len(message.splitlines()) == 1
