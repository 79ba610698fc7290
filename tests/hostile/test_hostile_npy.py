""".npy/.npz files whose headers claim sizes the bytes do not hold, and decompression bombs.

Each file is built here by hand; the CLI runs in a subprocess under an address-space limit
(RLIMIT_AS), and with strace (when installed) nothing outside the model file is opened.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hostile_inputs import (
    CLI_ADDRESS_SPACE,
    deflate_zeros_after,
    good_matrix,
    npy_bytes,
    npz_member,
    run_cli_limited,
    strace_path,
    traced_peak,
    zip_bytes,
)

from alphahat.sources import open_source

#: the confined CLI never gets near the address-space limit: it refuses before allocating
PEAK_BOUND = 1 * 2**30


def _good_members() -> list[dict]:
    return [
        npz_member("good_a", good_matrix(1, (60, 30)).astype("<f4")),
        npz_member("good_b", good_matrix(2, (50, 40)).astype("<f8")),
    ]


def _forged_directory_member() -> dict:
    """The zip directory claims 3.9 GB for 12 kB of deflated data (a 31000² float32)."""
    member = npz_member("forged", npy_bytes((31_000, 31_000), "<f4", bytes(12_000)))
    member["size"] = 31_000 * 31_000 * 4 + 128
    return member


def _bomb_member() -> dict:
    """A deflate bomb: 1 GiB of zeros in about 1 MB, with a header declaring exactly that."""
    head = npy_bytes((16_384, 16_384), "<f4")
    data, crc = deflate_zeros_after(head, 2**30)
    return {"name": "bomb.npy", "data": data, "method": 8, "crc": crc, "size": len(head) + 2**30}


def _huge_header_member() -> dict:
    """An .npy version 2.0 header length of 2³²−1 inside a stored member."""
    raw = b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**32 - 1) + b"{" * 100
    crc = zlib.crc32(raw)
    return {"name": "header.npy", "data": raw, "method": 0, "crc": crc, "size": len(raw)}


def _statuses(run) -> dict[str, tuple[str, str]]:
    return {row["name"]: (row["status"], row.get("reason") or "") for row in run.json()["layers"]}


def _assert_clean(run) -> None:
    assert "internal error" not in run.stderr, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert run.peak_rss < PEAK_BOUND, run.peak_rss


@pytest.fixture(scope="module")
def hostile_npz(tmp_path_factory):
    folder = tmp_path_factory.mktemp("npz")
    members = [*_good_members(), _forged_directory_member(), _bomb_member(), _huge_header_member()]
    path = folder / "model.npz"
    path.write_bytes(zip_bytes(members))
    return path


def test_npz_forged_sizes_fail_alone_and_the_bomb_is_skipped(hostile_npz):
    run = run_cli_limited(
        "analyze", str(hostile_npz), "-f", "json", "-q", cwd=hostile_npz.parent,
        trace_opens=strace_path() is not None,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    _assert_clean(run)
    rows = _statuses(run)
    assert rows["good_a"][0] == rows["good_b"][0] == "fitted"
    assert rows["forged"][0] == "failed"
    assert "deflate cannot expand" in rows["forged"][1]
    assert rows["header"][0] == "failed" and "header claims 4294967295 bytes" in rows["header"][1]
    tensors = {t["name"]: t for t in run.json()["tensors"]}
    assert tensors["bomb"]["status"] == "skipped"
    assert "too large: needs about" in tensors["bomb"]["reason"]
    assert "--max-memory" in tensors["bomb"]["reason"]
    if run.opened is not None:  # the trace sees the model file (it works), and nothing else
        assert set(run.opened_under(hostile_npz.parent.parent)) == {str(hostile_npz.resolve())}


def test_describe_does_not_call_forged_members_analysed(hostile_npz):
    run = run_cli_limited("describe", str(hostile_npz), "-f", "json", cwd=hostile_npz.parent)
    assert run.returncode == 0, run.stderr
    _assert_clean(run)
    status = {t["name"]: t["status"] for t in run.json()["tensors"]}
    assert status["forged"] == status["header"] == "failed"
    assert status["good_a"] == status["good_b"] == "analysed"


def test_the_bomb_within_budget_is_read_straight_into_its_array(tmp_path):
    """With --max-memory raised the bomb is read: decompressed into one array, no copy."""
    head = npy_bytes((4096, 4096), "<f4")
    data, crc = deflate_zeros_after(head, 4096 * 4096 * 4)
    bomb = {"name": "zeros.npy", "data": data, "method": 8, "crc": crc, "size": len(head) + 2**26}
    path = tmp_path / "bomb.npz"
    path.write_bytes(zip_bytes([bomb]))
    with open_source(path) as source:
        (ref,) = list(source.tensors())
        values, peak = traced_peak(ref.load)
    assert values.shape == (4096, 4096) and not values.any()
    assert peak < 1.1 * values.nbytes, (peak, values.nbytes)


def test_npz_members_read_as_numpy_reads_them(tmp_path):
    """The streamed reader gives numpy's own values (C and Fortran order, big-endian)."""
    arrays = {
        "c": good_matrix(3, (30, 20)),
        "f": np.asfortranarray(good_matrix(4, (20, 30)).astype(np.float32)),
        "be": good_matrix(5, (25, 25)).astype(">f8"),
    }
    path = tmp_path / "m.npz"
    np.savez_compressed(path, **arrays)
    with open_source(path) as source:
        loaded = {ref.name: ref.load() for ref in source.tensors()}
    for name, array in arrays.items():
        np.testing.assert_array_equal(loaded[name], array)


def test_a_corrupt_stream_fails_its_member(tmp_path):
    member = npz_member("bad", good_matrix(6, (40, 20)).astype("<f4"))
    member["crc"] ^= 1
    path = tmp_path / "m.npz"
    path.write_bytes(zip_bytes([member, *_good_members()]))
    run = run_cli_limited("analyze", str(path), "-f", "json", "-q", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    _assert_clean(run)
    rows = _statuses(run)
    assert rows["bad"][0] == "failed" and "CRC" in rows["bad"][1]
    assert rows["good_a"][0] == "fitted"


def test_npy_header_length_of_4_gib_is_refused_before_reading(tmp_path):
    path = tmp_path / "w.npy"
    path.write_bytes(b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**32 - 1) + b"{" * 64)
    run = run_cli_limited(
        "analyze", str(path), cwd=tmp_path, address_space=CLI_ADDRESS_SPACE,
        trace_opens=strace_path() is not None,
    )  # fmt: skip
    assert run.returncode == 2
    _assert_clean(run)
    message = run.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "w.npy" in message and "header claims 4294967295 bytes" in message
    if run.opened is not None:
        assert set(run.opened_under(tmp_path.parent)) <= {str(path.resolve())}
