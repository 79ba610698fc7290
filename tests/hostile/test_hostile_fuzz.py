"""Fuzzing the readers of untrusted headers: random headers, shapes, offsets and bytes.

Property: whatever the bytes, reading a file either works or raises ``SourceError`` (our
documented error) — never another exception, never a hang, never an allocation sized by the
header. A tensor listed without a problem loads to exactly its declared shape (or raises
``SourceError`` if its bytes are gone); a tensor listed with a problem raises ``SourceError``.

About 3000 cases in all; ``deadline=None`` because CI machines are slow, not because a case
may be: a single case taking seconds would show up in the total run time.
"""

from __future__ import annotations

import importlib.util
import json
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alphahat.errors import SourceError
from alphahat.layers import plan_tensors
from alphahat.sources import open_source
from alphahat.sources.safetensors_files import read_safetensors_header

SETTINGS = settings(
    deadline=None,
    derandomize=True,  # the same cases every run: a failure is reproducible
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
CODES = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3"]

# -------------------------------------------------------------------- strategies

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=4,
)
dims = st.one_of(
    st.integers(min_value=0, max_value=40),
    st.integers(min_value=-(2**65), max_value=2**65),
    st.sampled_from([2**31, 2**32, 2**62, 2**63 - 1, 2**63, 2**64]),
    json_scalars,
)
offsets = st.one_of(
    st.integers(min_value=-16, max_value=1024),
    st.integers(min_value=-(2**70), max_value=2**70),
    json_scalars,
)


@st.composite
def entries(draw: Any) -> Any:
    """A header entry: usually well-formed, often subtly wrong, sometimes anything."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(json_values)
    entry: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        entry["dtype"] = draw(st.sampled_from(CODES) | json_scalars)
    if draw(st.integers(0, 9)):
        entry["shape"] = draw(st.lists(dims, max_size=5) | json_values)
    if draw(st.integers(0, 9)):
        entry["data_offsets"] = draw(st.lists(offsets, min_size=0, max_size=3) | json_values)
    return entry


@st.composite
def consistent_entries(draw: Any, start: int) -> tuple[dict[str, Any], int]:
    """A well-formed entry at ``start`` (so that some tensors really load)."""
    code = draw(st.sampled_from(["F64", "F32", "F16", "BF16", "I8"]))
    size = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I8": 1}[code]
    shape = draw(st.lists(st.integers(0, 6), max_size=3))
    nbytes = int(np.prod(shape, dtype=np.int64)) * size
    return {"dtype": code, "shape": shape, "data_offsets": [start, start + nbytes]}, nbytes


@st.composite
def safetensors_files(draw: Any) -> bytes:
    header: dict[str, Any] = {}
    position = 0
    for i in range(draw(st.integers(0, 5))):
        name = draw(st.text(max_size=6)) if draw(st.booleans()) else f"t{i}"
        if draw(st.booleans()):
            entry, nbytes = draw(consistent_entries(position))
            position += nbytes if draw(st.integers(0, 3)) else 0  # sometimes overlap
            header[name] = entry
        else:
            header[name] = draw(entries())
    if draw(st.integers(0, 4)) == 0:
        header["__metadata__"] = draw(json_values)
    raw = json.dumps(header).encode()
    if draw(st.integers(0, 5)) == 0:  # damage the JSON text itself
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut] + draw(st.binary(max_size=4)) + raw[cut + draw(st.integers(0, 3)) :]
    data = draw(st.binary(max_size=64)) if draw(st.booleans()) else bytes(position)
    data = data[: draw(st.integers(0, len(data)))] if draw(st.integers(0, 3)) == 0 else data
    length = len(raw)
    if draw(st.integers(0, 6)) == 0:
        length = draw(st.integers(0, 2**64 - 1) | st.integers(len(raw) - 4, len(raw) + 8))
        length = max(0, length)
    return struct.pack("<Q", length) + raw + data


# -------------------------------------------------------------------- properties


def check_file(path: Path) -> None:
    """The property of the module docstring, for one file."""
    try:
        refs = read_safetensors_header(path)
    except SourceError:
        return
    for ref in refs:
        if ref.problem is None:
            try:
                values = ref.load()
            except SourceError:
                continue
            assert values.shape == ref.shape, (ref, values.shape)
        else:
            with pytest.raises(SourceError):
                ref.load()
    plans = list(plan_tensors(refs, min_evals=0))  # what describe() and analyze() plan
    assert {p.ref.name for p in plans} >= {r.name for r in refs}
    for plan in plans:
        assert plan.status in ("analyse", "skipped", "failed")
        assert plan.status != "failed" or plan.reason


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


@pytest.mark.slow
@settings(SETTINGS, max_examples=1000)
@given(blob=safetensors_files())
def test_fuzz_structured_safetensors_headers(scratch, blob):
    path = scratch / "fuzz.safetensors"
    path.write_bytes(blob)
    check_file(path)


@settings(SETTINGS, max_examples=400)
@given(blob=st.binary(max_size=200), length=st.integers(0, 300) | st.integers(0, 2**64 - 1))
def test_fuzz_raw_bytes(scratch, blob, length):
    path = scratch / "raw.safetensors"
    path.write_bytes(struct.pack("<Q", length) + blob)
    check_file(path)


def _valid_file() -> bytes:
    w = np.arange(24, dtype="<f4").reshape(6, 4)
    header = {
        "a.weight": {"dtype": "F32", "shape": [6, 4], "data_offsets": [0, 96]},
        "b.weight": {"dtype": "F32", "shape": [4, 6], "data_offsets": [96, 192]},
        "__metadata__": {"format": "pt"},
    }
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + w.tobytes() + w.tobytes()


VALID = _valid_file()


@settings(SETTINGS, max_examples=600)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255), st.integers(0, 2)),
        min_size=1,
        max_size=6,
    )
)
def test_fuzz_mutated_valid_file(scratch, edits):
    """Flip, insert or delete bytes of a valid file (header and data alike)."""
    blob = bytearray(VALID)
    for position, value, how in edits:
        position = min(position, len(blob) - 1)
        if how == 0:
            blob[position] = value
        elif how == 1:
            blob.insert(position, value)
        elif len(blob) > 1:
            del blob[position]
    path = scratch / "mutated.safetensors"
    path.write_bytes(bytes(blob))
    check_file(path)


shard_names = st.one_of(
    st.sampled_from(
        ["model-1.safetensors", "../x.safetensors", "/etc/passwd", "", ".", "..", "sub/"]
    ),
    st.text(max_size=12),
    st.text(alphabet="./\\\x00a", max_size=8),
)


@pytest.mark.slow
@settings(SETTINGS, max_examples=400)
@given(
    weight_map=st.dictionaries(st.text(max_size=6), shard_names | json_scalars, max_size=6),
    wrap=st.integers(0, 3),
    extra=json_values,
)
def test_fuzz_shard_index(scratch, weight_map, wrap, extra):
    folder = scratch / "ckpt"
    folder.mkdir(exist_ok=True)
    (folder / "model-1.safetensors").write_bytes(VALID)
    content: Any = {"weight_map": weight_map, "metadata": extra}
    if wrap == 1:
        content = weight_map
    elif wrap == 2:
        content = [content]
    (folder / "model.safetensors.index.json").write_text(json.dumps(content))
    try:
        source = open_source(folder)
    except SourceError:
        return
    with source:
        refs = list(source.tensors())
    for ref in refs:
        assert ref.origin.startswith(str(folder)), ref.origin  # nothing read outside
        if ref.problem is not None:
            with pytest.raises(SourceError):
                ref.load()
        else:
            assert ref.load().shape == ref.shape


def _valid_gguf() -> bytes:
    gguf = pytest.importorskip("gguf")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ok.gguf"
        writer = gguf.GGUFWriter(str(path), "llama")
        writer.add_array("tokenizer.ggml.tokens", ["a", "bc", "def"])
        writer.add_uint32("general.alignment", 32)
        writer.add_tensor("blk.0.attn_q.weight", np.arange(48, dtype=np.float32).reshape(8, 6))
        writer.add_tensor("blk.0.attn_k.weight", np.ones((6, 8), dtype=np.float16))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path.read_bytes()


GGUF_VALID = _valid_gguf() if importlib.util.find_spec("gguf") else b""


@pytest.mark.slow
@settings(SETTINGS, max_examples=500)
@given(
    edits=st.lists(
        st.tuples(
            st.integers(0, 400),  # the header and metadata are at the front
            st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]) | st.integers(0, 255),
            st.integers(0, 3),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_fuzz_gguf_header(scratch, edits):
    """Flip, insert, delete or truncate bytes of a valid GGUF file's header."""
    blob = bytearray(GGUF_VALID or _valid_gguf())
    for position, value, how in edits:
        if not blob:
            break
        position = min(position, len(blob) - 1)
        if how == 0:
            blob[position] = value
        elif how == 1:
            blob.insert(position, value)
        elif how == 2 and len(blob) > 1:
            del blob[position]
        else:
            del blob[position + value :]
    path = scratch / "fuzz.gguf"
    path.write_bytes(bytes(blob))
    try:
        source = open_source(path)
    except SourceError:
        return
    with source:
        refs = list(source.tensors())
    for ref in refs:
        if ref.problem is not None or ref.skip_reason is not None:
            continue
        try:
            values = ref.load()
        except SourceError:
            continue
        assert values.shape == ref.shape
    list(plan_tensors(refs, min_evals=0))
