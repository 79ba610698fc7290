"""Correlation traps in depth: the randomized model, one row per trap, and trap removal.

* :func:`randomize_model` — the element-shuffled weights of ``analyze(randomize=True,
  seed=…)``, each layer's permutation, and a fingerprint (SHA-256 of the shuffle rule, the seed
  and the layers' names and shapes). The shuffle is the analysis' own
  (:func:`alphahat.spectrum.randomize.layer_permutations`: per-layer seed from the seed and the
  name, 2-D weights shuffled as stored, conv kernels per N × M matrix).
* :func:`analyze_traps` — every trap (:mod:`alphahat.metrics.traps`: a singular mode of a
  shuffled matrix above the MP edge plus the Tracy–Widom margin, the ``num_traps`` rule) with
  its piece σ·u·vᵀ un-shuffled into W's layout, how concentrated it is, and where it sits.
  Layers of fewer than 100 eigenvalues are shuffled 5 times, as by the analysis: their traps
  of every shuffle are listed (column ``replica``) and the layer's ``num_traps`` is the rows
  divided by the shuffles, rounded — equal to ``analyze``'s ``num_traps`` of every layer.
* :func:`remove_traps` — new weights (the input is never modified) with the traps of the first
  shuffle taken out: the entries of each piece's support (the fewest entries holding 90 % of
  its mass, which is where the piece stands out of the bulk) are replaced by noise matched to
  the rest of W (its mean and standard deviation, seeded) or by the mean of the rest of W; every
  other entry is left as it was (subtracting the whole piece would also project the bulk's own
  noise out of the trap's row and column of the shuffled matrix, shrinking the bulk).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from alphahat.layers import LayerFilter, TensorPlan, layer_matrices
from alphahat.metrics.traps import (
    TrapMode,
    inverse_participation_ratio,
    largest_entries,
    support,
    top_mass,
    trap_modes,
    unshuffle,
)
from alphahat.pipeline import (
    LAYER_ERRORS,
    AnalysisOptions,
    analyse_loaded,
    load_layer,
    plan_layers,
)
from alphahat.sources import open_source
from alphahat.spectrum.randomize import layer_permutations, layer_seed

IndexArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
RemovalMethod = Literal["noise", "mean"]
REMOVAL_METHODS: tuple[str, ...] = ("noise", "mean")
#: The name of the shuffle rule in fingerprints (change it if the rule ever changes).
SHUFFLE_RULE = "alphahat.spectrum.randomize/v1: RandomState(sha256(seed:name)[:4]).shuffle"
#: Largest entries of a trap's piece listed in the table (top_entries, rows, columns).
TOP_ENTRIES = 5
#: The planning options the trap functions take (the rest of the analysis is fixed).
TRAP_OPTIONS: tuple[str, ...] = (
    "min_evals", "max_evals", "conv_scale", "max_matrix_elements", "max_memory",
    "split_fused", "fused_heads",
)  # fmt: skip

TRAP_COLUMNS = [
    "layer_id", "name", "replica", "matrix", "mode", "lambda", "spike_edge", "bulk_max",
    "above_edge", "edge_ratio", "sigma", "top5_mass", "top10_mass", "ipr_u", "ipr_v",
    "rows", "columns", "top_entries",
]  # fmt: skip
LAYER_COLUMNS = [
    "layer_id", "name", "shape", "N", "M", "replicas", "num_traps", "trap_rows",
    "rand_bulk_max", "spike_edge", "max_trap_lambda", "status", "reason",
]  # fmt: skip


def _options(
    layers: Sequence[str] | str | None, seed: int, options: dict[str, Any]
) -> AnalysisOptions:
    unknown = sorted(set(options) - set(TRAP_OPTIONS))
    if unknown:
        raise TypeError(f"unexpected option(s) {', '.join(unknown)}; these take {TRAP_OPTIONS}")
    chosen: Any = LayerFilter() if layers is None else layers
    return AnalysisOptions(layers=chosen, seed=seed, randomize=True, **options)


def _index_matrices(plan: TensorPlan, shape: tuple[int, ...]) -> list[IndexArray]:
    """The matrices the analysis shuffles, holding flat positions in the stored tensor."""
    index = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    if index.ndim == 2:
        return [index]
    return [np.asarray(m, dtype=np.int64) for m in layer_matrices(index, plan)]


def fingerprint(seed: int, layers: Sequence[tuple[str, Sequence[int]]]) -> str:
    """SHA-256 (hex) of the shuffle rule, the seed and the layers' names and shapes, in order."""
    text = json.dumps(
        {"rule": SHUFFLE_RULE, "seed": int(seed), "layers": [[n, list(s)] for n, s in layers]},
        sort_keys=True,
        ensure_ascii=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _save(
    path: str | Path, arrays: dict[str, npt.NDArray[np.generic]], meta: dict[str, str]
) -> None:
    from safetensors.numpy import save

    from alphahat.engine.files import write_atomic

    contiguous = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    write_atomic(Path(path), save(contiguous, metadata=meta))


def _output_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    return dtype if dtype.kind == "f" else np.dtype(np.float32)


# --- the randomized model ------------------------------------------------------------------


@dataclass(frozen=True)
class RandomizedModel:
    """Result of :func:`randomize_model`.

    Attributes:
        weights: each randomized layer's shuffled tensor (stored shape; bf16 as float32).
        permutations: each layer's permutation G of its flat stored tensor (the first
            shuffle): ``shuffled.reshape(-1) == stored.reshape(-1)[G]``.
        fingerprint: :func:`fingerprint` of the seed and the layers.
        seed: the run's seed (each layer's own seed comes from it and its name).
    """

    weights: dict[str, npt.NDArray[np.generic]] = field(repr=False)
    permutations: dict[str, IndexArray] = field(repr=False)
    fingerprint: str
    seed: int

    def save(self, path: str | Path) -> None:
        """Write the shuffled weights as safetensors (the fingerprint and seed as metadata)."""
        meta = {"alphahat.fingerprint": self.fingerprint, "alphahat.seed": str(self.seed)}
        _save(path, self.weights, meta)


def _layers(model: Any, options: AnalysisOptions, unsafe_load: bool) -> Iterator[Any]:
    """Each analysable layer, loaded (one at a time)."""
    with open_source(model, unsafe_load=unsafe_load) as source:
        for plan in plan_layers(source, options):
            if plan.status == "analyse":
                yield plan


def randomize_model(
    model: Any,
    *,
    layers: Sequence[str] | str | None = None,
    seed: int = 0,
    unsafe_load: bool = False,
    **options: Any,
) -> RandomizedModel:
    """The element-shuffled weights of ``analyze(model, randomize=True, seed=seed)``.

    Args:
        model: anything :func:`alphahat.analyze` reads.
        layers: the layers to shuffle (ids, names, globs or kinds, as ``analyze``'s).
        seed: the run's seed.
        unsafe_load: allow a full unpickle of ``.pt/.bin`` files.
        options: the planning options of :data:`TRAP_OPTIONS` (``min_evals``, …).
    """
    chosen = _options(layers, seed, options)
    weights: dict[str, npt.NDArray[np.generic]] = {}
    permutations: dict[str, IndexArray] = {}
    shapes: list[tuple[str, tuple[int, ...]]] = []
    for plan in _layers(model, chosen, unsafe_load):
        layer = load_layer(plan)
        values = np.asarray(layer.values)
        index = _index_matrices(plan, values.shape)
        (permutation,) = layer_permutations(
            index, values.size, seed=seed, name=layer.name, replicas=1
        )
        shuffled = values.reshape(-1)[permutation].reshape(values.shape)
        weights[layer.name] = shuffled.astype(_output_dtype(values.dtype))
        permutations[layer.name] = permutation
        shapes.append((layer.name, values.shape))
    return RandomizedModel(weights, permutations, fingerprint(seed, shapes), int(seed))


# --- the traps -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Trap:
    """One trap and what is needed to rebuild its piece in W's layout.

    Attributes:
        name, layer_id: the layer.
        replica, matrix: which shuffle of the layer, and which of its matrices (conv: kernel
            position).
        mode: the singular mode of the shuffled matrix (:class:`~alphahat.metrics.traps.TrapMode`).
        source: for each entry of the shuffled matrix (C order), its flat position in W.
        shape: W's stored shape.
    """

    name: str
    layer_id: int | None
    replica: int
    matrix: int
    mode: TrapMode
    source: IndexArray = field(repr=False)
    shape: tuple[int, ...]

    def piece(self) -> FloatArray:
        """σ·u·vᵀ un-shuffled into W's stored layout (0 outside the trap's matrix)."""
        size = int(np.prod(self.shape))
        return unshuffle(self.mode.piece(), self.source, size).reshape(self.shape)


@dataclass(frozen=True)
class TrapAnalysis:
    """Result of :func:`analyze_traps`.

    Attributes:
        traps: one row per trap (:data:`TRAP_COLUMNS`; see docs/traps.md).
        layers: one row per layer (:data:`LAYER_COLUMNS`); ``num_traps`` = trap rows divided
            by the layer's shuffles, rounded (``analyze``'s ``num_traps``).
        summary: one row for the model: layers, layers with traps, traps, seed, fingerprint.
        fingerprint: of the seed and the analysed layers (as :func:`randomize_model`'s).
        seed: the run's seed.
        found: the traps themselves (pieces, for :func:`remove_traps` and the heat maps).
    """

    traps: pd.DataFrame
    layers: pd.DataFrame
    summary: pd.DataFrame
    fingerprint: str
    seed: int
    found: tuple[Trap, ...] = field(repr=False)

    def to_csv(self, path: str | Path | None = None) -> str:
        """The trap table as CSV (written atomically to ``path`` when given)."""
        text = _frame(self.traps).to_csv(index=False, lineterminator="\n")
        if path is not None:
            from alphahat.engine.files import write_atomic

            write_atomic(Path(path), text)
        return str(text)

    def to_json(self, path: str | Path | None = None) -> str:
        """The three tables, the seed and the fingerprint as JSON (atomically to ``path``)."""
        from alphahat.report import records

        data = {
            "fingerprint": self.fingerprint,
            "seed": self.seed,
            "summary": records(self.summary),
            "layers": records(self.layers),
            "traps": records(self.traps),
        }
        text = json.dumps(data, indent=2, allow_nan=False) + "\n"
        if path is not None:
            from alphahat.engine.files import write_atomic

            write_atomic(Path(path), text)
        return text


def _frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Lists as JSON text, for CSV cells."""
    out = frame.copy()
    for column in ("rows", "columns", "top_entries"):
        if column in out:
            out[column] = [json.dumps(v) for v in out[column]]
    return out


def _trap_row(
    trap: Trap, values: npt.NDArray[np.generic], edge: float, bulk_max: float
) -> dict[str, Any]:
    piece = trap.piece()
    top = largest_entries(piece, TOP_ENTRIES)
    where = [tuple(int(i) for i in np.unravel_index(int(t), trap.shape)) for t in top]
    flat = values.reshape(-1)
    entries = [
        {"index": list(w), "weight": float(flat[t]), "piece": float(piece.reshape(-1)[t])}
        for w, t in zip(where, top, strict=True)
    ]
    mode = trap.mode
    return {
        "layer_id": trap.layer_id,
        "name": trap.name,
        "replica": trap.replica,
        "matrix": trap.matrix,
        "mode": mode.mode,
        "lambda": mode.eigenvalue,
        "spike_edge": edge,
        "bulk_max": bulk_max,
        "above_edge": mode.eigenvalue - edge,
        "edge_ratio": mode.eigenvalue / bulk_max,
        "sigma": mode.singular_value,
        "top5_mass": top_mass(piece, 5),
        "top10_mass": top_mass(piece, 10),
        "ipr_u": inverse_participation_ratio(mode.u),
        "ipr_v": inverse_participation_ratio(mode.v),
        "rows": sorted({w[0] for w in where}),
        "columns": sorted({w[1] for w in where}),
        "top_entries": entries,
    }


def _layer_traps(
    plan: TensorPlan, options: AnalysisOptions
) -> tuple[dict[str, Any], list[Trap], list[dict[str, Any]]]:
    """One layer: its analysis (for the MP edge of the shuffled ESD), then its traps."""
    layer = load_layer(plan)
    values = np.asarray(layer.values)
    shape = tuple(values.shape)
    row: dict[str, Any] = {
        "layer_id": plan.layer_id, "name": layer.name, "shape": "x".join(map(str, shape)),
        "N": plan.N, "M": plan.M,
    }  # fmt: skip
    result = analyse_loaded(layer, options)
    fit = result.randomized_mp_fit
    if fit is None or not fit.fitted:
        reason = result.reason or "the MP fit of the shuffled ESD failed"
        row.update(status="failed", reason=reason, replicas=None, num_traps=None, trap_rows=0)
        return row, [], []
    index = _index_matrices(plan, shape)
    permutations = layer_permutations(index, values.size, seed=options.seed, name=layer.name)
    flat = values.reshape(-1)
    found: list[Trap] = []
    shuffled_replicas = result.randomized.replicas if result.randomized is not None else ()
    for r, permutation in enumerate(permutations):
        if r < len(shuffled_replicas) and not np.any(shuffled_replicas[r] > fit.spike_edge):
            continue  # the analysis' own shuffled ESD has no trap in this shuffle
        for j, matrix in enumerate(index):
            positions = matrix.reshape(-1)
            source = permutation[positions]
            shuffled = flat[source].reshape(matrix.shape)
            for mode in trap_modes(shuffled, plan.scale, fit.spike_edge):
                found.append(Trap(layer.name, plan.layer_id, r, j, mode, source, shape))
    rows = [_trap_row(t, values, fit.spike_edge, fit.bulk_max) for t in found]
    row.update(
        replicas=len(permutations),
        num_traps=int(round(len(found) / len(permutations))),
        trap_rows=len(found),
        rand_bulk_max=fit.bulk_max,
        spike_edge=fit.spike_edge,
        max_trap_lambda=max((t.mode.eigenvalue for t in found), default=float("nan")),
        status="analysed",
        reason="",
    )
    return row, found, rows


def analyze_traps(
    model: Any,
    *,
    layers: Sequence[str] | str | None = None,
    seed: int = 0,
    unsafe_load: bool = False,
    **options: Any,
) -> TrapAnalysis:
    """Every correlation trap of a model, one row each (see the module docstring).

    Args:
        model: anything :func:`alphahat.analyze` reads.
        layers: the layers to look at (as ``analyze``'s ``layers``).
        seed: the seed of the shuffles (``analyze(randomize=True, seed=seed)``'s).
        unsafe_load: allow a full unpickle of ``.pt/.bin`` files.
        options: the planning options of :data:`TRAP_OPTIONS`.

    A layer that fails (unreadable, non-finite weights, no MP fit) gets a ``failed`` row with
    the reason; the other layers are unaffected.
    """
    chosen = _options(layers, seed, options)
    layer_rows: list[dict[str, Any]] = []
    trap_rows: list[dict[str, Any]] = []
    found: list[Trap] = []
    shapes: list[tuple[str, tuple[int, ...]]] = []
    for plan in _layers(model, chosen, unsafe_load):
        shapes.append((plan.ref.name, tuple(plan.ref.shape)))
        try:
            row, traps, rows = _layer_traps(plan, chosen)
        except LAYER_ERRORS as exc:
            row = {"layer_id": plan.layer_id, "name": plan.ref.name, "status": "failed"}
            row["reason"] = str(exc) or type(exc).__name__
            traps, rows = [], []
        layer_rows.append(row)
        trap_rows.extend(rows)
        found.extend(traps)
    layers_frame = pd.DataFrame(layer_rows, columns=LAYER_COLUMNS)
    analysed = layers_frame[layers_frame["status"] == "analysed"]
    summary = pd.DataFrame(
        [
            {
                "layers": len(analysed),
                "failed": int((layers_frame["status"] == "failed").sum()),
                "layers_with_traps": int((analysed["num_traps"] > 0).sum()),
                "num_traps": int(analysed["num_traps"].sum()),
                "max_edge_ratio": max((r["edge_ratio"] for r in trap_rows), default=float("nan")),
                "seed": int(seed),
                "fingerprint": fingerprint(seed, shapes),
            }
        ]
    )
    return TrapAnalysis(
        pd.DataFrame(trap_rows, columns=TRAP_COLUMNS),
        layers_frame,
        summary,
        fingerprint(seed, shapes),
        int(seed),
        tuple(found),
    )


# --- removal -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CleanedModel:
    """Result of :func:`remove_traps`.

    Attributes:
        weights: every tensor of the model by name (cleaned ones replaced).
        details: one row per layer with traps: ``name``, ``method``, ``traps_removed``,
            ``entries_replaced``, ``status``, ``reason``.
    """

    weights: dict[str, npt.NDArray[np.generic]] = field(repr=False)
    details: pd.DataFrame

    def save(self, path: str | Path) -> None:
        """Write ``weights`` as a safetensors file (atomically)."""
        _save(path, self.weights, {})


def _cleaned(
    values: npt.NDArray[np.generic], traps: Sequence[Trap], method: str, seed: int
) -> tuple[FloatArray, int]:
    """W with the traps' supports replaced (the rest untouched); and how many entries were."""
    w = np.asarray(values, dtype=np.float64).reshape(-1)
    replaced = np.zeros(w.size, dtype=bool)
    for trap in traps:
        replaced[support(trap.piece().reshape(-1))] = True
    out = w.copy()
    rest = w[~replaced]
    mean = float(rest.mean()) if rest.size else 0.0
    if method == "noise":
        std = float(rest.std()) if rest.size else 0.0
        rng = np.random.default_rng([int(seed), layer_seed(seed, traps[0].name)])
        out[replaced] = rng.normal(mean, std, int(replaced.sum()))
    else:
        out[replaced] = mean
    return out.reshape(values.shape), int(replaced.sum())


def remove_traps(
    model: Any,
    traps: TrapAnalysis,
    *,
    method: RemovalMethod = "noise",
    unsafe_load: bool = False,
) -> CleanedModel:
    """New weights with the traps of the first shuffle taken out (see the module docstring).

    Args:
        model: the model ``traps`` was found on (each cleaned tensor must have its shape).
        traps: :func:`analyze_traps`' result.
        method: ``"noise"`` (matched Gaussian noise, seeded by the traps' seed) or ``"mean"``.
        unsafe_load: allow a full unpickle of ``.pt/.bin`` files.

    Raises:
        ValueError: an unknown method, or a model whose layers differ from the traps' model.
    """
    if method not in REMOVAL_METHODS:
        raise ValueError(
            f"method must be one of {', '.join(map(repr, REMOVAL_METHODS))}; got {method!r}"
        )
    by_layer: dict[str, list[Trap]] = {}
    for trap in traps.found:
        if trap.replica == 0:
            by_layer.setdefault(trap.name, []).append(trap)
    weights: dict[str, npt.NDArray[np.generic]] = {}
    rows = []
    with open_source(model, unsafe_load=unsafe_load) as source:
        shapes = {ref.name: tuple(ref.shape) for ref in source.tensors()}
        for ref in source.tensors():
            if ref.skip_reason is not None or ref.problem is not None:
                continue
            values = np.asarray(ref.load())
            layer_traps = by_layer.pop(ref.name, None)
            if not layer_traps:
                weights[ref.name] = values
                continue
            if tuple(values.shape) != layer_traps[0].shape:
                raise ValueError(
                    f"{ref.name}: shape {values.shape} is not the shape the traps were found "
                    f"on ({layer_traps[0].shape}); remove traps from the model they came from"
                )
            cleaned, count = _cleaned(values, layer_traps, method, traps.seed)
            weights[ref.name] = cleaned.astype(_output_dtype(values.dtype))
            rows.append({"name": ref.name, "method": method, "traps_removed": len(layer_traps),
                         "entries_replaced": count, "status": "cleaned", "reason": ""})  # fmt: skip
    for name in by_layer:
        reason = "a part of a fused tensor (not removed)" if name not in shapes else "not read"
        rows.append({"name": name, "method": method, "traps_removed": 0,
                     "entries_replaced": 0, "status": "skipped", "reason": reason})  # fmt: skip
    columns = ["name", "method", "traps_removed", "entries_replaced", "status", "reason"]
    return CleanedModel(weights, pd.DataFrame(rows, columns=columns))


__all__ = [
    "LAYER_COLUMNS",
    "REMOVAL_METHODS",
    "TRAP_COLUMNS",
    "CleanedModel",
    "RandomizedModel",
    "Trap",
    "TrapAnalysis",
    "analyze_traps",
    "fingerprint",
    "randomize_model",
    "remove_traps",
]
