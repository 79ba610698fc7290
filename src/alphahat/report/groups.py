"""Per-block and per-module-kind views of a report: mean and spread of α and α̂.

Pure functions of a report's per-layer table (``Report.details``): nothing is recomputed.

* **Block**: the transformer block a layer belongs to, from its name — the first match of
  :data:`DEFAULT_BLOCK_PATTERN`, ``(layers|layer|h|blocks|block).<i>.`` (``model.layers.12.``,
  ``encoder.layer.3.``, ``transformer.h.5.``, ``blocks.7.``, T5's ``encoder.block.2.``), or
  of a user regex whose first group is the block index. The text before the match is the
  layer's **stack** (``encoder``, ``decoder``, ``model``, ``transformer``…), so the blocks of
  an encoder and a decoder stay apart. Layers outside every block (embeddings, heads) have
  none and are left out of the block view.
* **Module kind** (:func:`module_kind`): ``q``, ``k``, ``v`` (attention projections),
  ``qkv`` (a fused projection left whole; with ``split_fused`` its ``[q]``/``[k]``/``[v]``
  parts are q, k, v), ``o`` (attention output), ``gate``, ``up``, ``down`` (MLP),
  ``embedding``, ``other`` — from BERT, Llama/Mistral, GPT-2, GPT-NeoX/Pythia, T5, DistilBERT
  and OPT/BART naming (the rules are :data:`KIND_RULES`).
* **Aggregates** (:func:`aggregate`): over the layers whose fit succeeded (``status`` fitted,
  α finite), per group: ``count``, and for α and α̂ (``alpha_weighted``) the mean, the
  standard deviation (sample, ddof = 1: NaN for one layer), the min and the max.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Literal, Protocol

import pandas as pd


class HasDetails(Protocol):
    """A report (anything with a per-layer ``details`` table)."""

    @property
    def details(self) -> pd.DataFrame: ...  # noqa: D102


GroupBy = Literal["block", "kind", "block_kind"]
#: What :func:`aggregate` groups by.
GROUP_BYS: tuple[str, ...] = ("block", "kind", "block_kind")
#: The block of a layer name: the first group is the index.
DEFAULT_BLOCK_PATTERN = r"(?:^|\.)(?:layers|layer|h|blocks|block)\.(\d+)(?:\.|$)"
#: Module kinds, in the order tables show them.
MODULE_KINDS = ("q", "k", "v", "qkv", "o", "gate", "up", "down", "embedding", "other")
#: Metrics aggregated, and the statistics of each.
AGGREGATED_METRICS = ("alpha", "alpha_weighted")
STATISTICS = ("mean", "std", "min", "max")

_EMBEDDING_MODULES = frozenset(
    {"embed_tokens", "word_embeddings", "position_embeddings", "token_type_embeddings",
     "wte", "wpe", "embed_in", "embed_positions", "shared", "embeddings", "tok_embeddings"}
)  # fmt: skip
#: module name → kind, whatever its parent (the module name is the last part of the tensor
#: name before ``weight``/``bias``).
KIND_RULES: Mapping[str, str] = {
    # attention projections
    **dict.fromkeys(("q_proj", "query", "q", "q_lin", "wq", "to_q"), "q"),
    **dict.fromkeys(("k_proj", "key", "k", "k_lin", "wk", "to_k"), "k"),
    **dict.fromkeys(("v_proj", "value", "v", "v_lin", "wv", "to_v"), "v"),
    **dict.fromkeys(
        ("c_attn", "query_key_value", "qkv_proj", "qkv", "wqkv", "in_proj", "in_proj_weight"),
        "qkv",
    ),
    **dict.fromkeys(("o_proj", "out_proj", "o", "out_lin", "to_out"), "o"),
    # MLP
    **dict.fromkeys(("gate_proj", "wi_0", "w1"), "gate"),
    **dict.fromkeys(("up_proj", "c_fc", "dense_h_to_4h", "fc1", "wi", "wi_1", "w3", "lin1"), "up"),
    **dict.fromkeys(("down_proj", "dense_4h_to_h", "fc2", "w2", "lin2"), "down"),
}
#: (module, parent) → kind, for module names that depend on where they sit.
_PARENT_RULES: Mapping[tuple[str, str], str] = {
    ("dense", "intermediate"): "up",  # BERT intermediate.dense
    ("dense", "attention"): "o",  # GPT-NeoX attention.dense
    ("dense", "self_attention"): "o",  # BLOOM / Falcon self_attention.dense
    ("c_proj", "attn"): "o",  # GPT-2 attn.c_proj
    ("c_proj", "mlp"): "down",  # GPT-2 mlp.c_proj
    ("wo", "densereludense"): "down",  # T5 DenseReluDense.wo
    ("wo", "selfattention"): "o",
    ("wo", "encdecattention"): "o",
}
_PARAMETER_SUFFIXES = frozenset({"weight", "bias", "kernel"})


def _split(name: str) -> tuple[str, str]:
    """``"x.c_attn.weight [q]"`` → (``"x.c_attn.weight"``, ``"q"``)."""
    if name.endswith("]") and " [" in name:
        base, part = name.rsplit(" [", 1)
        return base, part[:-1]
    return name, ""


def module_kind(name: str, kind: str = "") -> str:
    """The module kind of layer ``name`` (see the module docstring); ``kind`` is its row's.

    >>> module_kind("model.layers.3.self_attn.q_proj.weight")
    'q'
    >>> module_kind("encoder.layer.0.attention.output.dense.weight")
    'o'
    """
    base, part = _split(name)
    if part in ("q", "k", "v"):  # a split fused projection
        return part
    parts = [p for p in base.lower().split(".") if p]
    if parts and parts[-1] in _PARAMETER_SUFFIXES:
        parts = parts[:-1]
    if kind == "embedding" or _EMBEDDING_MODULES & set(parts):
        return "embedding"
    if not parts:
        return "other"
    module = parts[-1]
    parent = parts[-2] if len(parts) > 1 else ""
    if module == "dense" and parent == "output":  # BERT: attention.output / output (the MLP)
        grandparent = parts[-3] if len(parts) > 2 else ""
        return "o" if grandparent == "attention" else "down"
    found = _PARENT_RULES.get((module, parent)) or KIND_RULES.get(module)
    if module == "wo" and found is None:
        found = "o"
    return found or "other"


def compile_block_pattern(pattern: str | None = None) -> re.Pattern[str]:
    """``pattern`` (default :data:`DEFAULT_BLOCK_PATTERN`) compiled and checked.

    Raises:
        ValueError: not a regular expression, or without a group for the block index.
    """
    text = DEFAULT_BLOCK_PATTERN if pattern is None else pattern
    try:
        compiled = re.compile(text)
    except re.error as exc:
        raise ValueError(f"block pattern {text!r} is not a regular expression: {exc}") from None
    if compiled.groups < 1:
        raise ValueError(
            f"block pattern {text!r} needs a group for the block index, e.g. r'layers\\.(\\d+)\\.'"
        )
    return compiled


def block_of(name: str, pattern: re.Pattern[str] | str | None = None) -> tuple[str, int] | None:
    """(stack, block index) of layer ``name``, or None outside every block.

    >>> block_of("model.layers.12.mlp.up_proj.weight")
    ('model', 12)
    """
    compiled = pattern if isinstance(pattern, re.Pattern) else compile_block_pattern(pattern)
    base, _ = _split(name)
    match = compiled.search(base)
    if match is None:
        return None
    index = match.group(1)
    if index is None or not index.strip().isdigit():
        raise ValueError(
            f"block pattern {compiled.pattern!r}: its first group matched {index!r} in layer "
            f"{name!r}, not a block number"
        )
    return base[: match.start()].strip("."), int(index)


def layer_groups(details: pd.DataFrame, block_pattern: str | None = None) -> pd.DataFrame:
    """``name``, ``stack``, ``block`` (nullable int), ``module_kind`` of each row of ``details``."""
    compiled = compile_block_pattern(block_pattern)
    names = [str(n) for n in details["name"]]
    kinds = [str(k) for k in details["kind"]] if "kind" in details else [""] * len(names)
    blocks = [block_of(n, compiled) for n in names]
    return pd.DataFrame(
        {
            "name": names,
            "stack": [b[0] if b else None for b in blocks],
            "block": pd.array([b[1] if b else None for b in blocks], dtype="Int64"),
            "module_kind": [module_kind(n, k) for n, k in zip(names, kinds, strict=True)],
        },
        index=details.index,
    )


def _keys(by: str) -> list[str]:
    if by not in GROUP_BYS:
        raise ValueError(f"by must be one of {', '.join(map(repr, GROUP_BYS))}; got {by!r}")
    return {"block": ["stack", "block"], "kind": ["module_kind"]}.get(
        by, ["stack", "block", "module_kind"]
    )


def aggregate(
    report: HasDetails | pd.DataFrame,
    by: GroupBy | str = "block",
    block_pattern: str | None = None,
) -> pd.DataFrame:
    """Mean, std (ddof = 1), min and max of α and α̂ per block, module kind, or both.

    Args:
        report: a :class:`~alphahat.report.Report`, or its per-layer table
            (``Report.details``: needs ``name``, ``status``, ``alpha``, ``alpha_weighted``;
            ``kind`` is used where present).
        by: ``"block"`` (columns ``stack``, ``block``), ``"kind"`` (``module_kind``) or
            ``"block_kind"`` (all three).
        block_pattern: a regex whose first group is the block index (default
            :data:`DEFAULT_BLOCK_PATTERN`).

    Returns:
        One row per group, in block order and :data:`MODULE_KINDS` order: the keys,
        ``count`` (fitted layers), then ``alpha_mean``, ``alpha_std``, ``alpha_min``,
        ``alpha_max`` and the same for ``alpha_weighted``. Layers outside every block are
        not in the block views.
    """
    details = report if isinstance(report, pd.DataFrame) else report.details
    keys = _keys(by)
    stats = [f"{m}_{s}" for m in AGGREGATED_METRICS for s in STATISTICS]
    groups = layer_groups(details, block_pattern)
    alpha = pd.to_numeric(details["alpha"], errors="coerce").astype("float64")
    fitted = (details["status"] == "fitted").to_numpy() & alpha.notna().to_numpy()
    frame = groups[fitted].copy()
    for metric in AGGREGATED_METRICS:
        frame[metric] = pd.to_numeric(details.loc[fitted, metric], errors="coerce").astype(
            "float64"
        )
    if "block" in keys:
        frame = frame[frame["block"].notna()]
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "count", *stats])
    grouped = frame.groupby(keys, sort=False, dropna=False)
    out = grouped.agg(
        count=("alpha", "size"),
        **{f"{m}_{s}": (m, s) for m in AGGREGATED_METRICS for s in STATISTICS},
    ).reset_index()
    out["count"] = out["count"].astype("int64")
    order = {k: i for i, k in enumerate(MODULE_KINDS)}
    sort_keys = [k if k != "module_kind" else "_kind_order" for k in keys]
    if "module_kind" in keys:
        out["_kind_order"] = out["module_kind"].map(order)
    out = out.sort_values(sort_keys, kind="stable").drop(columns=["_kind_order"], errors="ignore")
    if "block" in out:
        out["block"] = out["block"].astype("int64")
    return out.reset_index(drop=True)[[*keys, "count", *stats]]


def block_kind_matrix(
    details: pd.DataFrame, metric: str = "alpha_mean", block_pattern: str | None = None
) -> pd.DataFrame:
    """Blocks (rows, ``stack.block`` labels) × module kinds (columns) of ``metric``; NaN gaps."""
    table = aggregate(details, "block_kind", block_pattern)
    if table.empty:
        return pd.DataFrame()
    stacks = table["stack"].unique()
    table["row"] = [
        f"{s}.{b}" if len(stacks) > 1 and s else str(b)
        for s, b in zip(table["stack"], table["block"], strict=True)
    ]
    rows = list(dict.fromkeys(table["row"]))
    columns = [k for k in MODULE_KINDS if k in set(table["module_kind"])]
    matrix = table.pivot(index="row", columns="module_kind", values=metric)
    return matrix.reindex(index=rows, columns=columns)


def describe_groups(details: pd.DataFrame, block_pattern: str | None = None) -> list[str]:
    """Two compact summary lines (blocks: the range of their mean α; kinds: each mean α).

    Empty when fewer than two blocks are found (not a transformer-like naming).
    """
    blocks = aggregate(details, "block", block_pattern)
    if len(blocks) < 2:
        return []
    several = len(set(blocks["stack"])) > 1
    rows: list[dict[str, Any]] = blocks.to_dict("records")  # type: ignore[assignment]

    def label(row: Mapping[str, Any]) -> str:
        where = f"{row['stack']}." if several and row["stack"] else ""
        return f"block {where}{row['block']}"

    low = min(rows, key=lambda r: float(r["alpha_mean"]))
    high = max(rows, key=lambda r: float(r["alpha_mean"]))
    kinds = aggregate(details, "kind", block_pattern)
    parts = [
        f"{k} {_number(m)} ({c})"
        for k, m, c in zip(kinds["module_kind"], kinds["alpha_mean"], kinds["count"], strict=True)
    ]
    return [
        f"by block: mean α from {_number(low['alpha_mean'])} ({label(low)}) to "
        f"{_number(high['alpha_mean'])} ({label(high)}) over {len(blocks)} blocks",
        "by module kind: mean α " + " · ".join(parts),
    ]


def _number(value: float) -> str:
    return "—" if not math.isfinite(float(value)) else f"{float(value):.2f}"


__all__ = [
    "AGGREGATED_METRICS",
    "DEFAULT_BLOCK_PATTERN",
    "GROUP_BYS",
    "KIND_RULES",
    "MODULE_KINDS",
    "GroupBy",
    "HasDetails",
    "aggregate",
    "block_kind_matrix",
    "block_of",
    "compile_block_pattern",
    "describe_groups",
    "layer_groups",
    "module_kind",
]
