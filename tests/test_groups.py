"""Per-block and per-module-kind views (α, α̂: mean, std, min, max, count).

On the real MiniLM-L6 (BERT naming) and on a generated Llama-shaped checkpoint, each checked
against a pandas groupby over block and kind labels written out here independently.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alphahat
from alphahat.cli import app
from alphahat.metrics import SUMMARY_METRICS
from alphahat.report.groups import (
    aggregate,
    block_kind_matrix,
    block_of,
    compile_block_pattern,
    module_kind,
)

typer_testing = pytest.importorskip("typer.testing")
runner = typer_testing.CliRunner()

STATS = ("mean", "std", "min", "max")

#: MiniLM-L6's per-block tensor suffixes and their module kinds, written out by hand.
MINILM_KINDS = {
    "attention.self.query.weight": "q",
    "attention.self.key.weight": "k",
    "attention.self.value.weight": "v",
    "attention.output.dense.weight": "o",
    "intermediate.dense.weight": "up",
    "output.dense.weight": "down",
}


def _expected(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The independent groupby: fitted layers, pandas' own mean/std(ddof=1)/min/max."""
    fitted = frame[(frame["status"] == "fitted") & frame["alpha"].notna()]
    grouped = fitted.groupby(keys)
    out = pd.DataFrame({"count": grouped.size()})
    for metric in ("alpha", "alpha_weighted"):
        for stat in STATS:
            out[f"{metric}_{stat}"] = getattr(grouped[metric], stat)()
    return out


def _compare(ours: pd.DataFrame, expected: pd.DataFrame, keys: list[str]) -> None:
    mine = ours.set_index(keys).sort_index()
    expected = expected.sort_index()
    assert list(mine.index) == list(expected.index)
    assert mine["count"].tolist() == expected["count"].tolist()
    for column in expected.columns.drop("count"):
        np.testing.assert_allclose(mine[column], expected[column], rtol=1e-12, equal_nan=True)


def test_minilm_blocks_and_kinds_equal_a_pandas_groupby(minilm_report) -> None:  # type: ignore[no-untyped-def]
    details = minilm_report.details
    labelled = details.copy()
    labelled["block"] = [
        int(m.group(1)) if (m := re.match(r"encoder\.layer\.(\d+)\.", n)) else None
        for n in labelled["name"]
    ]
    labelled["module_kind"] = [
        next((k for s, k in MINILM_KINDS.items() if n.endswith("." + s)), None)
        for n in labelled["name"]
    ]
    in_blocks = labelled[labelled["block"].notna()]
    assert in_blocks["module_kind"].notna().all()  # every block layer has a hand-written kind

    by_block = minilm_report.by_block()
    assert by_block["block"].tolist() == [0, 1, 2, 3, 4, 5]
    assert set(by_block["stack"]) == {"encoder"}
    _compare(by_block.drop(columns="stack"), _expected(in_blocks, ["block"]), ["block"])

    by_kind = minilm_report.by_kind()
    assert by_kind["module_kind"].tolist()[:6] == ["q", "k", "v", "o", "up", "down"]
    block_kinds = by_kind[by_kind["module_kind"].isin(list(MINILM_KINDS.values()))]
    _compare(block_kinds, _expected(in_blocks, ["module_kind"]), ["module_kind"])
    embedding = by_kind.set_index("module_kind").loc["embedding"]
    fitted_embeddings = details[(details["kind"] == "embedding") & (details["status"] == "fitted")]
    assert embedding["count"] == len(fitted_embeddings)

    both = aggregate(minilm_report, "block_kind")
    assert len(both) == 36 and (both["count"] == 1).all()
    _compare(
        both.drop(columns="stack"),
        _expected(in_blocks, ["block", "module_kind"]),
        ["block", "module_kind"],
    )
    matrix = block_kind_matrix(details)
    assert matrix.shape == (6, 6) and list(matrix.columns) == ["q", "k", "v", "o", "up", "down"]
    layer = details.set_index("name").loc["encoder.layer.4.attention.self.value.weight"]
    assert matrix.loc["4", "v"] == layer["alpha"]


def test_minilm_summary_shows_the_groups_compactly(minilm_report) -> None:  # type: ignore[no-untyped-def]
    summary = minilm_report.summary()
    text = summary.to_text()
    by_block = minilm_report.by_block()
    low = by_block.loc[by_block["alpha_mean"].idxmin()]
    assert f"by block: mean α from {low['alpha_mean']:.2f} (block {low['block']})" in text
    assert "over 6 blocks" in text and "by module kind: mean α q " in text
    assert "by block" in summary.to_markdown() and "by block" in summary.to_html()
    counts = {"num_layers", "num_analysed", "num_failed", "num_skipped", "num_under_trained"}
    counts |= {"num_over_trained", "include_embeddings"}
    # the JSON summary (and so the default JSON output) is unchanged: means and counts only
    assert set(minilm_report.to_dict()["summary"]) == {*SUMMARY_METRICS, *counts}


LLAMA_LAYERS = 3
HIDDEN, INTERMEDIATE, VOCAB = 48, 96, 120


def _llama_checkpoint(path: Path) -> dict[str, np.ndarray]:
    """A small Llama-shaped safetensors file with random (Student-t) weights."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(7)

    def weight(rows: int, cols: int) -> np.ndarray:
        return rng.standard_t(3.0, size=(rows, cols)).astype(np.float32)

    tensors = {"model.embed_tokens.weight": weight(VOCAB, HIDDEN)}
    for i in range(LLAMA_LAYERS):
        prefix = f"model.layers.{i}"
        for proj in ("q", "k", "v", "o"):
            tensors[f"{prefix}.self_attn.{proj}_proj.weight"] = weight(HIDDEN, HIDDEN)
        tensors[f"{prefix}.mlp.gate_proj.weight"] = weight(INTERMEDIATE, HIDDEN)
        tensors[f"{prefix}.mlp.up_proj.weight"] = weight(INTERMEDIATE, HIDDEN)
        tensors[f"{prefix}.mlp.down_proj.weight"] = weight(HIDDEN, INTERMEDIATE)
        tensors[f"{prefix}.input_layernorm.weight"] = np.ones(HIDDEN, dtype=np.float32)
    tensors["lm_head.weight"] = weight(VOCAB, HIDDEN)
    save_file(tensors, str(path))
    return tensors


LLAMA_KINDS = ["q", "k", "v", "o", "gate", "up", "down"]


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, alphahat.Report]:
    path = tmp_path_factory.mktemp("llama") / "model.safetensors"
    _llama_checkpoint(path)
    return path, alphahat.analyze(path)


def test_llama_shaped_checkpoint_blocks_and_kinds(llama: tuple[Path, alphahat.Report]) -> None:
    _, report = llama
    details = report.details
    labelled = details.copy()
    labelled["block"] = [
        int(n.split(".")[2]) if n.startswith("model.layers.") else None for n in details["name"]
    ]
    labelled["module_kind"] = [
        "embedding"
        if n == "model.embed_tokens.weight"
        else "other"
        if n == "lm_head.weight"
        else n.split(".")[-2].removesuffix("_proj")
        for n in details["name"]
    ]
    assert (details["status"] == "fitted").all()
    by_block = report.by_block()
    assert by_block["stack"].tolist() == ["model"] * LLAMA_LAYERS
    assert (by_block["count"] == 7).all()
    in_blocks = labelled[labelled["block"].notna()]
    _compare(by_block.drop(columns="stack"), _expected(in_blocks, ["block"]), ["block"])
    by_kind = report.by_kind()
    assert by_kind["module_kind"].tolist() == [*LLAMA_KINDS, "embedding", "other"]
    _compare(by_kind, _expected(labelled, ["module_kind"]), ["module_kind"])
    matrix = block_kind_matrix(details)
    assert list(matrix.columns) == LLAMA_KINDS and list(matrix.index) == ["0", "1", "2"]
    alpha = details.set_index("name")["alpha"]
    assert matrix.loc["2", "gate"] == alpha["model.layers.2.mlp.gate_proj.weight"]


def test_llama_heat_map_and_html_section(llama: tuple[Path, alphahat.Report]) -> None:
    pytest.importorskip("matplotlib")
    from alphahat.html_report import report_html
    from alphahat.plot import HEATMAP_GID, block_kind_heatmap

    _, report = llama
    figure = block_kind_heatmap(report)
    (image,) = [i for i in figure.axes[0].get_images() if i.get_gid() == HEATMAP_GID]
    drawn = np.ma.filled(image.get_array(), np.nan)
    np.testing.assert_array_equal(drawn, block_kind_matrix(report.details).to_numpy())
    page = report_html(report, diagnostics="none")
    assert 'id="blocks"' in page and "block × module kind heat map of mean α" in page
    assert 'id="by-kind"' in page and 'id="by-block"' in page


def test_no_blocks_no_section_and_the_summary_unchanged() -> None:
    pytest.importorskip("matplotlib")
    from alphahat.html_report import report_html

    rng = np.random.default_rng(0)
    report = alphahat.analyze({"fc1.weight": rng.standard_normal((80, 40))})
    assert report.by_block().empty
    assert "by block" not in report.summary().to_text()
    assert 'id="blocks"' not in report_html(report, diagnostics="none")


def test_cli_by_block_kind_in_every_format(llama: tuple[Path, alphahat.Report]) -> None:
    path, report = llama
    result = runner.invoke(app, ["analyze", str(path), "--by", "block", "-f", "csv", "-q"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(io.StringIO(result.stdout))
    expected = report.by_block()
    assert table["block"].tolist() == expected["block"].tolist()
    np.testing.assert_allclose(table["alpha_mean"], expected["alpha_mean"], rtol=1e-12)
    result = runner.invoke(app, ["analyze", str(path), "--by", "kind", "-f", "json", "-q"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["by"] == "kind"
    assert [g["module_kind"] for g in data["groups"]] == [*LLAMA_KINDS, "embedding", "other"]
    result = runner.invoke(app, ["analyze", str(path), "--by", "block-kind", "-q"])
    assert result.exit_code == 0 and "gate" in result.stdout and "by block_kind" in result.stdout


def test_cli_refuses_a_bad_group_or_pattern(llama: tuple[Path, alphahat.Report]) -> None:
    path, _ = llama
    result = runner.invoke(app, ["analyze", str(path), "--by", "layer"])
    assert result.exit_code == 2
    assert "--by must be one of 'block', 'kind', 'block_kind'; got 'layer'" in result.output
    result = runner.invoke(app, ["analyze", str(path), "--by", "block", "--block-pattern", "("])
    assert result.exit_code == 2 and "is not a regular expression" in result.output
    result = runner.invoke(app, ["analyze", str(path), "--block-pattern", r"layers\.(\d+)"])
    assert result.exit_code == 2 and "--block-pattern needs --by" in result.output


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("transformer.h.3.attn.c_attn.weight", "qkv"),  # GPT-2
        ("transformer.h.3.attn.c_attn.weight [k]", "k"),  # split with split_fused
        ("transformer.h.3.attn.c_proj.weight", "o"),
        ("transformer.h.3.mlp.c_fc.weight", "up"),
        ("transformer.h.3.mlp.c_proj.weight", "down"),
        ("transformer.wte.weight", "embedding"),
        ("gpt_neox.layers.1.attention.query_key_value.weight", "qkv"),  # GPT-NeoX
        ("gpt_neox.layers.1.attention.dense.weight", "o"),
        ("gpt_neox.layers.1.mlp.dense_h_to_4h.weight", "up"),
        ("gpt_neox.layers.1.mlp.dense_4h_to_h.weight", "down"),
        ("gpt_neox.embed_in.weight", "embedding"),
        ("encoder.block.2.layer.0.SelfAttention.q.weight", "q"),  # T5
        ("encoder.block.2.layer.0.SelfAttention.o.weight", "o"),
        ("decoder.block.2.layer.2.DenseReluDense.wi_0.weight", "gate"),
        ("decoder.block.2.layer.2.DenseReluDense.wi_1.weight", "up"),
        ("decoder.block.2.layer.2.DenseReluDense.wo.weight", "down"),
        ("shared.weight", "embedding"),
        ("bert.encoder.layer.0.attention.output.dense.weight", "o"),  # BERT
        ("bert.encoder.layer.0.output.dense.weight", "down"),
        ("bert.pooler.dense.weight", "other"),
        ("model.layers.0.block_sparse_moe.experts.3.w1.weight", "gate"),  # Mixtral
        ("lm_head.weight", "other"),
    ],
)
def test_module_kinds_of_common_namings(name: str, kind: str) -> None:
    assert module_kind(name) == kind


def test_blocks_and_the_pattern_override() -> None:
    assert block_of("encoder.block.2.layer.0.SelfAttention.q.weight") == ("encoder", 2)
    assert block_of("decoder.block.2.layer.1.EncDecAttention.k.weight") == ("decoder", 2)
    assert block_of("transformer.h.11.mlp.c_fc.weight") == ("transformer", 11)
    assert block_of("blocks.7.attn.qkv.weight") == ("", 7)
    assert block_of("model.embed_tokens.weight") is None
    assert block_of("stage2.unit5.conv.weight") is None
    assert block_of("stage2.unit5.conv.weight", r"unit(\d+)\.") == ("stage2", 5)
    details = pd.DataFrame(
        {
            "name": ["s.unit1.a.weight", "s.unit1.b.weight", "s.unit2.a.weight"],
            "kind": ["linear"] * 3,
            "status": ["fitted"] * 3,
            "alpha": [2.0, 4.0, 3.0],
            "alpha_weighted": [1.0, 2.0, 5.0],
        }
    )
    table = aggregate(details, "block", block_pattern=r"unit(\d+)\.")
    assert table["block"].tolist() == [1, 2] and table["count"].tolist() == [2, 1]
    assert table["alpha_mean"].tolist() == [3.0, 3.0]
    assert table["alpha_std"].iloc[0] == pytest.approx(np.sqrt(2.0))  # ddof = 1
    assert np.isnan(table["alpha_std"].iloc[1])
    with pytest.raises(ValueError, match="needs a group for the block index"):
        compile_block_pattern(r"unit\d+")
    with pytest.raises(ValueError, match="by must be one of"):
        aggregate(details, "layer")
