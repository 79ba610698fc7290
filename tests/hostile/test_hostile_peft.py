"""Hostile PEFT LoRA adapter folders: files outside the folder, huge deltas, broken configs.

Each folder is built here (adapter_config.json + adapter_model.safetensors written by hand);
the CLI runs in a subprocess under an address-space limit (RLIMIT_AS), and with strace (when
installed) no file outside the adapter folder is opened.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hostile_inputs import (
    good_matrix,
    run_cli_limited,
    strace_path,
    traced_peak,
    write_safetensors,
)

PEAK_BOUND = 1 * 2**30
TRACE = strace_path() is not None


def _config(**extra) -> dict:
    return {"peft_type": "LORA", "r": 4, "lora_alpha": 8, **extra}


def _adapter(folder: Path, *, huge: bool = False, config: dict | None = None) -> Path:
    """An adapter for modules q and v (rank 4), and with ``huge`` a rank-1 30000² ΔW (6.7 GiB)."""
    folder.mkdir(parents=True, exist_ok=True)
    prefix = "base_model.model."
    tensors = {
        f"{prefix}q.lora_A.weight": good_matrix(1, (4, 64)),
        f"{prefix}q.lora_B.weight": good_matrix(2, (96, 4)),
        f"{prefix}v.lora_A.weight": good_matrix(3, (4, 64)),
        f"{prefix}v.lora_B.weight": good_matrix(4, (80, 4)),
    }
    if huge:
        tensors[f"{prefix}big.lora_A.weight"] = good_matrix(5, (4, 30_000)).astype("float32")
        tensors[f"{prefix}big.lora_B.weight"] = good_matrix(6, (30_000, 4)).astype("float32")
    write_safetensors(folder / "adapter_model.safetensors", tensors)
    (folder / "adapter_config.json").write_text(json.dumps(config or _config()))
    return folder


def _rows(run) -> dict[str, tuple[str, str]]:
    rows = {t["name"]: (t["status"], t["reason"] or "") for t in run.json()["tensors"]}
    rows.update({r["name"]: (r["status"], r.get("reason") or "") for r in run.json()["layers"]})
    return rows


def _clean(run) -> None:
    assert "internal error" not in run.stderr, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert run.peak_rss < PEAK_BOUND, run.peak_rss


def test_a_huge_delta_is_skipped_with_its_size_before_it_is_built(tmp_path):
    folder = _adapter(tmp_path / "adapter", huge=True)
    run = run_cli_limited("analyze", str(folder), "-f", "json", "-q", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    _clean(run)
    rows = _rows(run)
    assert rows["q.weight [delta]"][0] == rows["v.weight [delta]"][0] == "fitted"
    status, reason = rows["big.weight [delta]"]
    assert status == "skipped" and "too large: needs about" in reason and "GiB" in reason


def test_the_delta_is_built_with_one_array_of_its_size():
    """ΔW = s·B·A, scaled in place (tracemalloc: one ΔW-sized array, not two)."""
    import numpy as np

    from alphahat.sources.peft_adapters import lora_delta

    a, b = good_matrix(1, (2, 1500)), good_matrix(2, (1200, 2))
    delta, peak = traced_peak(lambda: lora_delta(a, b, 0.5, embedding=False, fan_in_fan_out=False))
    np.testing.assert_allclose(delta, 0.5 * b @ a)
    assert peak < 1.2 * delta.nbytes, (peak, delta.nbytes)


@pytest.mark.parametrize("which", ["adapter_config.json", "adapter_model.safetensors"])
def test_adapter_files_symlinked_outside_are_refused_unopened(tmp_path, which):
    outside = _adapter(tmp_path / "outside")
    folder = _adapter(tmp_path / "adapter")
    (folder / which).unlink()
    (folder / which).symlink_to(outside / which)
    run = run_cli_limited("analyze", str(folder), "-q", cwd=tmp_path, trace_opens=TRACE)
    assert run.returncode == 2
    _clean(run)
    message = run.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert which in message and "outside" in message and "refused" in message
    if run.opened is not None:
        assert run.opened_under(outside) == []


@pytest.mark.parametrize(
    ("config", "fragments"),
    [
        (b'{"r": 4, "lora_alpha": 8, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
         ["adapter_config.json", "nested too deeply"]),
        (json.dumps(_config(rank_pattern={"q(": 2})).encode(),
         ["adapter_config.json", "rank_pattern", "not a valid regular expression"]),
        (json.dumps(_config(alpha_pattern={"[z-a]": 2})).encode(),
         ["adapter_config.json", "alpha_pattern", "not a valid regular expression"]),
        (b'{"r": 4, "r": 8, "lora_alpha": 8}', ["adapter_config.json", "'r' appears twice"]),
        (json.dumps(_config(r=10**30)).encode(), ["adapter_config.json", "'r' must be"]),
    ],
)  # fmt: skip
def test_broken_configs_are_one_line_errors_naming_file_and_field(tmp_path, config, fragments):
    import alphahat
    from alphahat.errors import SourceError

    folder = _adapter(tmp_path / "adapter")
    (folder / "adapter_config.json").write_bytes(config)
    with pytest.raises(SourceError) as info:
        alphahat.describe(folder)
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    for fragment in fragments:
        assert fragment in message, message


def test_a_config_nested_100000_deep_on_the_command_line(tmp_path):
    folder = _adapter(tmp_path / "adapter")
    deep = b'{"r": 4, "lora_alpha": 8, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    (folder / "adapter_config.json").write_bytes(deep)
    run = run_cli_limited("analyze", str(folder), "-q", cwd=tmp_path)
    assert run.returncode == 2
    _clean(run)
    message = run.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "adapter_config.json" in message and "nested too deeply" in message
