"""Builders of hostile and broken inputs (made on the fly) and independent checks.

Nothing here uses alphahat: the bytes are laid out by hand from the format specifications,
and expected values come from plain numpy.
"""

from __future__ import annotations

import builtins
import json
import math
import os
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: safetensors dtype codes and their numpy equivalents (little-endian)
ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "U8": "u1"}


def safetensors_bytes(header: Any, data: bytes = b"", *, claimed_len: int | None = None) -> bytes:
    """A safetensors file: u64 LE header length, the JSON header, the data.

    ``header`` may be any JSON-able value or raw ``bytes`` (for malformed JSON);
    ``claimed_len`` forges the length prefix.
    """
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    length = len(raw) if claimed_len is None else claimed_len
    return struct.pack("<Q", length) + raw + data


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    """A valid safetensors file written by hand (contiguous data in name order)."""
    header: dict[str, Any] = {}
    chunks, offset = [], 0
    codes = {np.dtype(v): k for k, v in ST_DTYPES.items()}
    for name, array in tensors.items():
        blob = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {
            "dtype": codes[np.dtype(array.dtype)],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        chunks.append(blob)
        offset += len(blob)
    path.write_bytes(safetensors_bytes(header, b"".join(chunks)))
    return path


def good_matrix(seed: int, shape: tuple[int, ...] = (48, 24)) -> np.ndarray:
    """A heavy-tailed random matrix whose power-law fit succeeds."""
    return np.random.default_rng(seed).standard_t(4, size=shape)


def eigenvalues(w: np.ndarray) -> np.ndarray:
    """Independent ESD: squared singular values of W in float64 (numpy's SVD), ascending."""
    return np.sort(np.linalg.svd(np.asarray(w, dtype=np.float64), compute_uv=False) ** 2)


def log10_frobenius_sq(w: np.ndarray, scale: float = 1.0) -> float:
    """log₁₀ ‖scale·W‖²_F computed without overflow: ‖W‖² in float64, then + 2 log₁₀ scale."""
    w64 = np.asarray(w, dtype=np.float64)
    return math.log10(math.fsum((w64 * w64).ravel())) + 2 * math.log10(scale)


class Payload:
    """Unpickling an instance runs code: it creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


def finishes_within(seconds: float, call: Callable[[], Any]) -> tuple[bool, Any]:
    """Run ``call`` in a daemon thread: (finished in time, its result or exception)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            box["value"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    return (not thread.is_alive()), box.get("value")


def traced_peak(call: Callable[[], Any]) -> tuple[Any, int]:
    """``call()``'s result and the peak of memory traced by tracemalloc while it ran (bytes)."""
    import tracemalloc

    tracemalloc.start()
    try:
        result = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def make_fifo(path: Path) -> Path:
    """A named pipe with no writer: opening it for reading blocks forever."""
    os.mkfifo(path)
    return path


#: address-space limit of the confined CLI runs (RLIMIT_AS): hostile files claim far more
CLI_ADDRESS_SPACE = 3 * 2**30

_LIMITED_CLI = """
import resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
sys.argv = ["alphahat", *sys.argv[2:]]
from alphahat.cli import main
main()
"""


class CliRun:
    """One confined CLI run: exit code, output, peak RSS and the files it opened."""

    def __init__(
        self, returncode: int, stdout: str, stderr: str, peak_rss: int, opened: list[str] | None
    ) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.peak_rss = peak_rss  # bytes (ru_maxrss of the process tree)
        self.opened = opened  # absolute paths opened successfully (None without strace)

    def json(self) -> Any:
        return json.loads(self.stdout)

    def opened_under(self, folder: Path) -> list[str]:
        """Files (not folders) under ``folder`` this run opened successfully (needs strace)."""
        assert self.opened is not None
        root = os.path.realpath(folder)
        inside = [p for p in self.opened if p == root or p.startswith(root + os.sep)]
        return [p for p in inside if not os.path.isdir(p)]


def strace_path() -> str | None:
    """The ``strace`` executable, or None (tests of opened files are skipped without it)."""
    import shutil

    return shutil.which("strace")


_OPEN_LINE = None


def _opened_files(trace: str, cwd: Path) -> list[str]:
    """Absolute real paths of successful open/openat/openat2 calls in an strace log."""
    import re

    global _OPEN_LINE
    if _OPEN_LINE is None:
        _OPEN_LINE = re.compile(r'open(?:at2?)?\((?:[^,]*, )?"((?:[^"\\]|\\.)*)".*\)\s+=\s+(\d+)')
    opened = []
    for line in trace.splitlines():
        match = _OPEN_LINE.search(line)
        if match is None:
            continue
        path = match.group(1).encode().decode("unicode_escape")
        full = path if os.path.isabs(path) else os.path.join(cwd, path)
        opened.append(os.path.realpath(full))
    return opened


def run_cli_limited(
    *args: str,
    cwd: Path,
    address_space: int = CLI_ADDRESS_SPACE,
    trace_opens: bool = False,
    timeout: float = 240,
) -> CliRun:
    """``alphahat ARGS`` in a subprocess under RLIMIT_AS, optionally under ``strace``.

    The peak RSS is the subprocess tree's ``ru_maxrss`` (``os.wait4``); with ``trace_opens``
    (strace present) ``opened`` lists every file opened successfully.
    """
    import subprocess
    import sys
    import tempfile

    command = [sys.executable, "-c", _LIMITED_CLI, str(address_space), *args]
    trace_file = None
    if trace_opens:
        tracer = strace_path()
        assert tracer is not None, "trace_opens needs strace"
        fd, trace_name = tempfile.mkstemp(suffix=".strace")
        os.close(fd)
        trace_file = Path(trace_name)
        command = [tracer, "-f", "-qq", "-e", "trace=open,openat,openat2", "-o",
                   trace_name, *command]  # fmt: skip
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "COLUMNS": "200"}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=err, env=env)
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)  # this child's own peak, not all
        finally:
            timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        peak = usage.ru_maxrss * 1024
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    opened = None
    if trace_file is not None:
        trace = trace_file.read_text(errors="replace")
        trace_file.unlink()
        opened = _opened_files(trace, cwd)
    return CliRun(process.returncode, stdout, stderr, peak, opened)


def npy_bytes(shape: tuple[int, ...], descr: str = "<f4", data: bytes = b"") -> bytes:
    """A version 1.0 ``.npy`` stream: magic, header (padded to 64 bytes), ``data``."""
    header = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {tuple(shape)!r}, }}"
    pad = 64 - (10 + len(header) + 1) % 64
    text = (header + " " * pad + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + data


def deflate_zeros_after(prefix: bytes, zero_bytes: int) -> tuple[bytes, int]:
    """Raw deflate of ``prefix`` + ``zero_bytes`` zeros, and its CRC-32, built in O(output).

    One MiB of zeros is compressed once after a full flush (so it does not depend on what
    came before) and repeated: a decompression bomb without compressing gigabytes.
    """
    import zlib

    block = 1 << 20
    assert zero_bytes % block == 0
    head = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = head.compress(prefix) + head.flush(zlib.Z_FULL_FLUSH)
    body = zlib.compressobj(9, zlib.DEFLATED, -15)
    one = body.compress(bytes(block)) + body.flush(zlib.Z_FULL_FLUSH)
    end = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
    crc = zlib.crc32(prefix)
    zeros = bytes(block)
    for _ in range(zero_bytes // block):
        crc = zlib.crc32(zeros, crc)
    return start + one * (zero_bytes // block) + end, crc


def zip_bytes(members: list[dict[str, Any]]) -> bytes:
    """A zip archive written by hand, so sizes in its directory can be forged.

    Each member: ``name``, ``data`` (the bytes as stored), ``method`` (0 stored, 8 deflate),
    ``crc``, ``size`` (the uncompressed size claimed in both headers).
    """
    local, central, offset = [], [], 0
    for m in members:
        name = m["name"].encode()
        fixed = struct.pack(
            "<HHHHHIIIHH", 20, 0, m["method"], 0, 0, m["crc"], len(m["data"]), m["size"],
            len(name), 0,
        )  # fmt: skip
        entry = b"PK\x03\x04" + fixed + name + m["data"]
        tail = struct.pack("<HHHII", 0, 0, 0, 0, offset)
        central.append(b"PK\x01\x02" + struct.pack("<H", 20) + fixed + tail + name)
        local.append(entry)
        offset += len(entry)
    directory = b"".join(central)
    end = b"PK\x05\x06" + struct.pack(
        "<HHHHIIH", 0, 0, len(members), len(members), len(directory), offset, 0
    )
    return b"".join(local) + directory + end


def npz_member(name: str, array_or_npy: Any, *, deflate: bool = True) -> dict[str, Any]:
    """A zip member ``name.npy`` holding an array (or raw ``.npy`` bytes)."""
    import zlib

    raw = (
        array_or_npy
        if isinstance(array_or_npy, bytes)
        else npy_bytes(array_or_npy.shape, array_or_npy.dtype.str, array_or_npy.tobytes())
    )
    data = raw
    if deflate:
        packer = zlib.compressobj(6, zlib.DEFLATED, -15)
        data = packer.compress(raw) + packer.flush()
    return {
        "name": f"{name}.npy",
        "data": data,
        "method": 8 if deflate else 0,
        "crc": zlib.crc32(raw),
        "size": len(raw),
    }


def gguf_bytes(
    tensors: list[dict[str, Any]], *, string_array: int = 0, alignment: int = 32
) -> bytes:
    """A GGUF v3 file laid out by hand (little-endian), so that any field can be forged.

    Each tensor: ``name``, ``dims`` (fastest first, as ggml's ``ne``), ``type_id``, ``data``
    (bytes), and optionally ``offset`` (forged; by default the data's own aligned offset).
    ``string_array``: items of a one-character string array ``tokenizer.ggml.tokens``.
    """

    def string(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    kv = [string("general.architecture") + struct.pack("<I", 8) + string("llama")]
    if string_array:
        item = string("a")
        kv.append(
            string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, string_array)
            + item * string_array
        )  # fmt: skip
    infos, blobs, offset = [], [], 0
    for t in tensors:
        own = offset
        infos.append(
            string(t["name"]) + struct.pack("<I", len(t["dims"]))
            + b"".join(struct.pack("<Q", d) for d in t["dims"])
            + struct.pack("<IQ", t["type_id"], t.get("offset", own))
        )  # fmt: skip
        data = t["data"] + bytes(-len(t["data"]) % alignment)
        blobs.append(data)
        offset += len(data)
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv)) + b"".join(kv) + b"".join(infos)
    return head + bytes(-len(head) % alignment) + b"".join(blobs)
