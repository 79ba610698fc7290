"""``WeightWatcher``: the reference tool's class (weightwatcher 0.7.7) on top of alphahat.

Every method takes the reference tool's arguments and returns what it returns (DataFrames with
its column names, dicts, arrays), computed by :func:`alphahat.analyze` and friends. Layer ids and
names follow the reference tool's numbering for ``torch.nn.Module`` models (the position in
``named_modules()``, name = last component of the module path) and state dicts (the position
among ``.weight`` keys, from 1); other inputs use alphahat's ids and names.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import logging
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from alphahat._imports import loaded
from alphahat.pipeline.options import reference_options

logger = logging.getLogger("alphahat.compat")

#: Reference layer types of alphahat kinds (what the reference tool calls them).
_TYPE_OF_KIND = {
    "linear": "dense",
    "embedding": "embedding",
    "conv1d": "conv1d",
    "conv2d": "conv2d",
}
_REFERENCE_TYPES = ("dense", "conv1d", "conv2d", "embedding", "norm")
#: The reference tool's keywords that are no alphahat option (this class applies them), with
#: the reference tool's defaults. Its other keywords are options of the option table
#: (``OptionSpec.reference``), whose rows give their reference defaults and spellings.
DEFAULT_MAX_N = 50000
WEAK_RANK_LOSS_TOLERANCE = 1e-6
_ANALYZE_ONLY = {
    "min_size": None,
    "max_size": None,
    "max_N": DEFAULT_MAX_N,
    "ww2x": False,
    "conv2d_fft": False,
    "ERG": False,
    "tolerance": WEAK_RANK_LOSS_TOLERANCE,
    "start_ids": 0,
    "seed": 0,  # an alphahat extra: the reference tool's randomize is unseeded
    "peft": False,
}
#: The reference tool's ``peft`` values: the LoRA rows without / with the base weights.
_PEFT_ONLY = (True, "peft", "peft_only")
_PEFT_WITH_BASE = "with_base"
_DESCRIBE_ONLY = {
    k: _ANALYZE_ONLY[k]
    for k in ("min_size", "max_size", "max_N", "ww2x", "conv2d_fft", "start_ids")
}
#: Options of the table the reference tool's describe() takes.
_DESCRIBE_OPTIONS = ("min_evals", "max_evals", "pool", "fft", "conv_scale")
#: Options accepted for compatibility and ignored (they only affect plots or speed).
_IGNORED = ("plot", "savefig", "svd_method", "channels", "deltas", "pl_package")
_NOT_SUPPORTED = ("glorot_fix",)
_SMOOTHING_METHODS = {
    "svd": "svd",
    "detX": "detX",
    "detx": "detX",
    "rmt": "mp_spikes",
    "alpha_min": "pl_spikes",
}


@dataclass(frozen=True)
class _ReferenceLayer:
    """How the reference tool names one layer."""

    layer_id: int
    name: str
    longname: str
    layer_type: str


def _module_type(module: Any, torch: Any) -> str | None:
    """The reference tool's type of a module (its isinstance / class-name-substring rules)."""
    typestr = str(type(module)).lower()
    nn = torch.nn
    if isinstance(module, nn.Linear) or "linear" in typestr:
        return "dense"
    if isinstance(module, nn.Conv1d) or "conv1d" in typestr:
        return "conv1d"
    if isinstance(module, nn.Conv2d) or "conv2d" in typestr:
        return "conv2d"
    if isinstance(module, nn.Embedding) or "embedding" in typestr:
        return "embedding"
    if "norm" in typestr:
        return "norm"
    return None


def _reference_layers(model: Any, start_ids: int) -> dict[str, _ReferenceLayer] | None:
    """Weight tensor name → the reference tool's id, name, longname and type (None: unknown)."""
    torch = loaded("torch")
    out: dict[str, _ReferenceLayer] = {}
    if torch is not None and isinstance(model, torch.nn.Module):
        for index, (longname, module) in enumerate(model.named_modules()):
            kind = _module_type(module, torch)
            weight = getattr(module, "weight", None)
            if kind is None or not isinstance(weight, torch.Tensor) or not longname:
                continue
            name = longname.split(".")[-1]
            out[f"{longname}.weight"] = _ReferenceLayer(index + start_ids, name, longname, kind)
        return out
    if isinstance(model, Mapping):
        layer_id = start_ids if start_ids else 1
        for key, value in model.items():
            if not str(key).endswith(".weight"):
                continue
            ndim = len(getattr(value, "shape", ()))
            kind = {2: "dense", 4: "conv2d"}.get(ndim, "unknown")
            longname = str(key)[: -len(".weight")]
            out[str(key)] = _ReferenceLayer(layer_id, longname, longname, kind)
            layer_id += 1
        return out
    return None


def _filters(layers: Any) -> tuple[list[int], list[str], list[str]]:
    """The reference tool's ``layers`` argument: ids, layer types, names."""
    if layers is None:
        return [], [], []
    if isinstance(layers, numbers.Integral | str):
        layers = [layers]
    ids, types, names = [], [], []
    for item in layers:
        if isinstance(item, numbers.Integral) and not isinstance(item, bool):
            ids.append(int(item))
        elif isinstance(item, str) and item in _REFERENCE_TYPES:
            types.append(item)
        elif isinstance(item, str):
            names.append(item)
        else:
            raise ValueError(f"layers: cannot filter by {item!r} (ids, layer types or names)")
    if ids and min(ids) < 0 < max(ids):
        raise ValueError(f"layers: ids must be all ≥ 0 (keep) or all < 0 (skip); got {ids}")
    if (
        names
        and any(n.startswith("-") for n in names)
        and not all(n.startswith("-") for n in names)
    ):
        raise ValueError(f"layers: names must be all to keep or all '-name' to skip; got {names}")
    return ids, types, names


def _selected(layer: _ReferenceLayer, filters: tuple[list[int], list[str], list[str]]) -> bool:
    ids, types, names = filters
    keep = True
    if types:
        keep = layer.layer_type in types
    if ids:
        keep = layer.layer_id in ids if min(ids) >= 0 else -layer.layer_id not in ids
    if names:
        skip = names[0].startswith("-")
        keep = f"-{layer.name}" not in names if skip else layer.name in names
    return keep


class WeightWatcher:
    """The reference tool's ``WeightWatcher`` class, computed by alphahat.

    >>> from alphahat.compat import WeightWatcher   # instead of: import weightwatcher as ww
    >>> watcher = WeightWatcher(model=model)        # doctest: +SKIP
    >>> details = watcher.analyze(mp_fit=True)       # doctest: +SKIP
    >>> watcher.get_summary(details)                 # doctest: +SKIP
    """

    def __init__(
        self,
        model: Any = None,
        framework: Any = None,
        base_model: Any = None,
        log_level: Any = None,
    ) -> None:
        self.model = model
        #: W − W_base is analysed (alphahat's ``analyze(base=…)``: tensors matched by name).
        self.base_model = base_model
        self.framework = framework
        self.details: pd.DataFrame | None = None

    def __repr__(self) -> str:
        return f"<alphahat.compat.WeightWatcher model={type(self.model).__name__}>"

    # ------------------------------------------------------------------ helpers

    def _model(self, model: Any) -> Any:
        if model is not None:
            self.model = model
        if self.model is None:
            raise ValueError("no model: pass model= to WeightWatcher(...) or to this method")
        return self.model

    def _plan(
        self,
        model: Any,
        *,
        layers: Any,
        min_evals: int,
        max_evals: int | None,
        max_N: int,
        pool: bool,
        start_ids: int,
        conv_scale: str,
    ) -> tuple[pd.DataFrame, dict[str, _ReferenceLayer]]:
        """Describe rows of the layers the reference tool would analyse, in its order."""
        from alphahat.analysis import describe

        described = describe(model, min_evals=0, conv_scale=conv_scale)  # type: ignore[arg-type]
        described = described[described["status"] == "analysed"]
        reference = _reference_layers(model, start_ids)
        if reference is None:  # other inputs: alphahat's ids and names
            reference = {
                str(row.name): _ReferenceLayer(
                    int(row.layer_id),
                    str(row.name).removesuffix(".weight"),
                    str(row.name).removesuffix(".weight"),
                    _TYPE_OF_KIND.get(str(row.kind), str(row.kind)),
                )
                for row in described.itertuples()
            }
        filters = _filters(layers)
        keep = []
        for row in described.itertuples():
            layer = reference.get(str(row.name))
            if layer is None or layer.layer_type not in ("dense", "conv1d", "conv2d", "embedding"):
                continue
            if not _selected(layer, filters):
                continue
            count = int(row.M) if (not pool) else int(row.num_evals)
            if (min_evals and count < min_evals) or (max_evals and count > max_evals):
                continue
            if int(row.N) > max_N:
                continue
            keep.append(row.Index)
        chosen = described.loc[keep].copy()
        chosen["_id"] = [reference[str(n)].layer_id for n in chosen["name"]]
        return chosen.sort_values("_id", kind="stable"), reference

    # ------------------------------------------------------------------ analyze / describe

    @staticmethod
    def _reference_options(
        given: dict[str, Any], only: Mapping[str, Any], names: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """Our option values (and the reference-only ones) from the reference tool's keywords.

        Each option of the table with a reference name takes the keyword of that name (or the
        reference tool's default) in our spelling; ``given`` is left with the keywords that are
        neither, which :meth:`_check_ignored` then judges.
        """
        out: dict[str, Any] = {}
        for spec in reference_options():
            if spec.name == "layers" or (names is not None and spec.name not in names):
                continue
            out[spec.name] = spec.from_reference(given.pop(spec.reference, spec.reference_value))
        for name, value in only.items():
            out[name] = given.pop(name, value)
        return out

    def analyze(self, model: Any = None, layers: Any = None, **options: Any) -> pd.DataFrame:
        """The reference tool's ``analyze``: one row per layer with its column names.

        Keywords are the reference tool's (weightwatcher 0.7.7), with its defaults: those of
        alphahat's options are mapped through the option table (``OptionSpec.reference``);
        ``min_size``, ``max_size``, ``max_N``, ``ww2x``, ``conv2d_fft``, ``ERG``, ``tolerance``
        and ``start_ids`` are applied here; ``base_model`` (here or in the constructor)
        analyses W − W_base per layer (alphahat's ``base=``). Extra: ``seed`` (the reference
        tool's ``randomize`` is unseeded). Plot options are accepted and ignored; see
        docs/coming-from-weightwatcher.md for every option.
        """
        from alphahat.analysis import analyze

        base = options.pop("base_model", None)
        base = base if base is not None else self.base_model
        values = self._reference_options(options, _ANALYZE_ONLY)
        self._check_ignored(options)
        model = self._model(model)
        peft = values.pop("peft")
        if peft is not None and peft is not False:
            return self._analyze_peft(model, layers, peft, base, values)
        ww2x, conv2d_fft, erg = values.pop("ww2x"), values.pop("conv2d_fft"), values.pop("ERG")
        pool = values.pop("pool") and not ww2x
        values["fft"] = bool(values["fft"] or conv2d_fft)
        values["detX"] = bool(values["detX"] or erg)
        min_evals, max_evals = values.pop("min_evals"), values.pop("max_evals")
        max_N, start_ids = values.pop("max_N"), values.pop("start_ids")  # noqa: N806
        tolerance = values.pop("tolerance")
        for unused in ("min_size", "max_size"):
            values.pop(unused)
        chosen, reference = self._plan(
            model,
            layers=layers,
            min_evals=min_evals,
            max_evals=max_evals,
            max_N=max_N,
            pool=pool,
            start_ids=start_ids,
            conv_scale=values["conv_scale"],
        )
        names = chosen["name"].tolist()
        if not names:
            self.details = pd.DataFrame(columns=["layer_id", "name"])
            return self.details
        report = analyze(
            model, layers=names, min_evals=0, keep_eigenvalues=True, pool=pool, base=base, **values
        )
        rows = []
        records: list[dict[str, Any]] = report.details.to_dict("records")  # type: ignore[assignment]
        tensors = [str(row["name"]).split(" [")[0] for row in records]
        for row, tensor in zip(records, tensors, strict=True):
            evals = np.asarray(report.eigenvalues.get(str(row["name"]), np.empty(0)))
            layer = reference.get(tensor) or _ReferenceLayer(0, tensor, tensor, "stacked")
            if values["intra"]:
                layer = _pair_layer(tensor, reference)
            out = self._reference_row(row, layer, evals, tolerance)
            if values["intra"]:
                out["Xflag"] = True
            if not pool:  # the reference numbers every row's slice; rf stays the kernel's
                sliced = row.get("slice_id") is not None and not pd.isna(row["slice_id"])
                out["slice_id"] = int(row["slice_id"]) if sliced else 0
                if sliced:
                    out["rf"] = tensors.count(tensor)
            rows.append(out)
        if not rows:  # e.g. intra=True on a model of conv layers only
            self.details = pd.DataFrame(columns=["layer_id", "name"])
            return self.details
        details = pd.DataFrame(rows)
        lead = ["layer_id", "name"]
        details = details[lead + sorted(c for c in details.columns if c not in lead)]
        self.details = details
        return details

    def _analyze_peft(
        self, model: Any, layers: Any, peft: Any, base: Any, values: dict[str, Any]
    ) -> pd.DataFrame:
        """``peft=True``: a row per LoRA update ΔW; ``peft='with_base'``: also W + ΔW and W.

        ``model`` is a ``peft`` LoRA model (its active adapter) or a LoRA adapter folder (with
        ``base_model`` for ``'with_base'``), read by alphahat's LoRA reader
        (:mod:`alphahat.sources.peft_adapters`): ΔW = s·B·A, ``[delta]``, ``[merged]`` and
        ``[base]`` views. Rows are named as the reference names them for a peft model
        (``lora_BA``, ``lora_W_plus_AB`` and ``base_layer``); see
        docs/coming-from-weightwatcher.md for the differences.
        """
        from alphahat.analysis import analyze
        from alphahat.sources.peft_adapters import peft_model_source

        if peft not in (*_PEFT_ONLY, _PEFT_WITH_BASE):
            raise ValueError(f"peft must be False, True, 'peft_only' or 'with_base'; got {peft!r}")
        with_base = peft == _PEFT_WITH_BASE
        torch = loaded("torch")
        in_memory = torch is not None and isinstance(model, torch.nn.Module)
        if in_memory:
            source: Any = peft_model_source(model, with_base=with_base)
            base = None
        else:
            source = model
            if with_base and base is None:
                raise ValueError("peft='with_base' on an adapter folder needs base_model=")
            base = base if with_base else None
        for unused in ("ww2x", "conv2d_fft", "ERG", "min_evals", "max_evals", "max_N"):
            values.pop(unused)
        for unused in ("min_size", "max_size", "start_ids", "tolerance"):
            values.pop(unused)
        report = analyze(source, min_evals=0, keep_eigenvalues=True, base=base, **values)
        reference = _reference_layers(model, 0) if in_memory else None
        adapter = str(getattr(model, "active_adapter", "")) if in_memory else ""
        order = {"[base]": 0, "[merged]": 1, "[delta]": 2}
        rows = []
        records: list[dict[str, Any]] = report.details.to_dict("records")  # type: ignore[assignment]
        for row in records:
            tensor, _, view = str(row["name"]).partition(" ")
            if view not in order or (not with_base and view != "[delta]"):
                continue
            layer = _lora_layer(tensor, view, adapter, reference)
            if layers is not None and not _selected(layer, _filters(layers)):
                continue
            evals = np.asarray(report.eigenvalues.get(str(row["name"]), np.empty(0)))
            out = self._reference_row(row, layer, evals, WEAK_RANK_LOSS_TOLERANCE)
            out["peft"] = view != "[base]"
            rows.append((tensor, order[view], out))
        rows.sort(key=lambda item: (item[0], item[1]) if with_base else 0)
        details = pd.DataFrame([out for _, _, out in rows])
        if details.empty:
            details = pd.DataFrame(columns=["layer_id", "name"])
        lead = ["layer_id", "name"]
        details = details[lead + sorted(c for c in details.columns if c not in lead)]
        self.details = details
        return details

    @staticmethod
    def _check_ignored(ignored: Mapping[str, Any]) -> None:
        for key, value in ignored.items():
            if key in _NOT_SUPPORTED:
                if value:
                    raise NotImplementedError(
                        f"{key}={value!r} is not supported by alphahat.compat "
                        "(see docs/coming-from-weightwatcher.md)"
                    )
            elif key in _IGNORED:
                if value not in (None, False, "ww", "accurate", "fast"):
                    logger.info("%s=%r has no effect in alphahat.compat", key, value)
            else:
                raise TypeError(f"analyze() got an unexpected keyword argument {key!r}")

    @staticmethod
    def _reference_row(
        row: Mapping[str, Any], layer: _ReferenceLayer, evals: np.ndarray, tolerance: float
    ) -> dict[str, Any]:
        fitted = row["status"] == "fitted"
        lambda_max = float(row["lambda_max"])
        out: dict[str, Any] = {
            "layer_id": layer.layer_id,
            "name": layer.name,
            "longname": layer.longname,
            "layer_type": layer.layer_type,
            "N": int(row["N"]),
            "M": int(row["M"]),
            "rf": int(row["num_matrices"]),
            "Q": float(row["Q"]),
            "has_esd": True,
            "num_evals": int(row["num_evals"]),
            "sv_max": math.sqrt(lambda_max) if math.isfinite(lambda_max) else math.nan,
            "sv_min": math.sqrt(float(evals.min())) if evals.size else math.nan,
            "rank_loss": (
                int(row["num_evals"]) - int(row["matrix_rank"])
                if row["matrix_rank"] is not None and not pd.isna(row["matrix_rank"])
                else None
            ),
            "weak_rank_loss": int(np.count_nonzero(evals < tolerance)),
            "spectral_norm": lambda_max,
            "status": "success" if fitted else "failed",
        }
        skip = {"name", "kind", "shape", "dtype", "note", "num_matrices", "reason", "status"}
        for key, value in row.items():
            if key not in skip and key not in out:
                out[key] = value
        if "slice_id" in row and row["slice_id"] is not None and not pd.isna(row["slice_id"]):
            out["slice_id"] = int(row["slice_id"])
        if "detX_num" in row:
            out["num_ERG_spikes"] = row["detX_num"]
            norm, n = float(row["norm"]), int(row["num_evals"])
            out["detX_val_unrescaled"] = float(row["detX_val"]) * n / norm if norm else math.nan
        return out

    def describe(self, model: Any = None, layers: Any = None, **options: Any) -> pd.DataFrame:
        """The reference tool's ``describe``: the layers ``analyze`` would analyse.

        Keywords and defaults are the reference tool's (see :meth:`analyze`).
        """
        values = self._reference_options(options, _DESCRIBE_ONLY, _DESCRIBE_OPTIONS)
        self._check_ignored(options)
        model = self._model(model)
        pool = values["pool"] and not values["ww2x"]
        chosen, reference = self._plan(
            model,
            layers=layers,
            min_evals=values["min_evals"],
            max_evals=values["max_evals"],
            max_N=values["max_N"],
            pool=pool,
            start_ids=values["start_ids"],
            conv_scale=values["conv_scale"],
        )
        rows = []
        records: list[dict[str, Any]] = chosen.to_dict("records")  # type: ignore[assignment]
        for row in records:
            layer = reference[str(row["name"])]
            N, M, count = int(row["N"]), int(row["M"]), int(row["num_matrices"])
            slices = count if not pool and row["kind"] == "conv2d" else 1
            for slice_id in range(slices):
                entry = {
                    "layer_id": layer.layer_id,
                    "name": layer.name,
                    "M": M,
                    "N": N,
                    "Q": N / M,
                    "layer_type": layer.layer_type,
                    "longname": layer.longname,
                    "num_evals": M if not pool else int(row["num_evals"]),
                    "rf": count,
                }
                if not pool:
                    entry["slice_id"] = slice_id
                rows.append(entry)
        frame = pd.DataFrame(rows)
        if frame.empty:
            return pd.DataFrame(columns=["layer_id", "name"])
        lead = ["layer_id", "name"]
        return frame[lead + sorted(c for c in frame.columns if c not in lead)]

    def get_details(self) -> pd.DataFrame | None:
        """The details of the last :meth:`analyze`."""
        return self.details

    def get_summary(self, details: pd.DataFrame | None = None) -> dict[str, float]:
        """Means of the summary metrics over the rows (failed fits are NaN, so left out)."""
        if details is None:
            details = self.details
        metrics = (
            "log_norm",
            "alpha",
            "alpha_weighted",
            "log_alpha_norm",
            "log_spectral_norm",
            "stable_rank",
            "mp_softrank",
        )
        if details is None:
            return {}
        return {m: float(details[m].mean()) for m in metrics if m in details.columns}

    # ------------------------------------------------------------------ single layers

    def _tensor_name(self, model: Any, layer: Any) -> str:
        described = self.describe(model=model, min_evals=0, max_evals=None, max_N=2**62)
        if isinstance(layer, numbers.Integral):
            match = described[described["layer_id"] == int(layer)]
        else:
            match = described[described["name"] == layer]
            if match.empty:
                match = described[described["longname"] == layer]
        if match.empty:
            raise ValueError(f"no analysable layer {layer!r} in this model")
        return f"{match.iloc[0]['longname']}.weight"

    def get_ESD(  # noqa: N802 (the reference tool's name)
        self, model: Any = None, layer: Any = None, random: bool = False, seed: int = 0, **_: Any
    ) -> np.ndarray:
        """The eigenvalues of one layer (by reference id or name), or of its shuffled W."""
        from alphahat.layers import LayerFilter
        from alphahat.pipeline import AnalysisOptions, iter_layers
        from alphahat.spectrum import layer_spectrum
        from alphahat.spectrum.randomize import layer_randomized_spectrum

        model = self._model(model)
        tensor = self._tensor_name(model, layer)
        options = AnalysisOptions(layers=LayerFilter(names=(tensor,)), min_evals=0)
        with contextlib.closing(iter_layers(model, options)) as layers:
            found = next((item for item in layers if item.name == tensor), None)
        if found is None or found.values is None:
            raise ValueError(f"layer {layer!r} cannot be read: {found.error if found else tensor}")
        if not random:
            return layer_spectrum(list(found.matrices), found.plan.scale).eigenvalues
        shuffled = layer_randomized_spectrum(
            found.values, found.matrices, found.plan.scale, seed=seed, name=tensor
        )
        return np.asarray(shuffled.eigenvalues)

    # ------------------------------------------------------------------ distances, smoothing

    def distances(
        self,
        model_1: Any,
        model_2: Any,
        method: str = "raw",
        layers: Any = None,
        start_ids: int = 0,
        pool: bool = True,
        channels: Any = None,
    ) -> tuple[float, float, pd.DataFrame]:
        """(mean ΔW, mean Δb, per-layer frame) between two models of the same architecture."""
        from alphahat.distances import distances

        method = (method or "raw").lower()
        if method not in ("raw", "euclidean", "cka"):
            raise ValueError(f"method must be 'raw', 'euclidean' or 'cka'; got {method!r}")
        table = distances(model_1, model_2)
        reference = _reference_layers(model_1, start_ids) or {}
        filters = _filters(layers)
        rows = []
        records: list[dict[str, Any]] = table.to_dict("records")  # type: ignore[assignment]
        for row in records:
            tensor = str(row["name"])
            layer = reference.get(tensor) or _ReferenceLayer(
                int(row["layer_id"]),
                tensor.removesuffix(".weight"),
                tensor.removesuffix(".weight"),
                _TYPE_OF_KIND.get(str(row["kind"]), str(row["kind"])),
            )
            if not _selected(layer, filters):
                continue
            column = {"raw": "delta_W", "euclidean": "euclidean", "cka": "cka"}[method]
            value = float(row[column])
            rows.append(
                {
                    "method": method,
                    "layer_id": layer.layer_id,
                    "name": layer.name,
                    # the reference's "cka" is √CKA: ‖AᵀB‖_F / √(‖AᵀA‖_F ‖BᵀB‖_F)
                    "delta_W": math.sqrt(value) if method == "cka" else value,
                    "delta_b": row["delta_b"] if method == "raw" else 0.0,
                    "M": row["M"],
                    "N": row["N"],
                    "b_shape": row["b_shape"] if method == "raw" else "unknown",
                    "longname": layer.longname,
                }
            )
        frame = pd.DataFrame(rows).set_index("layer_id")
        return float(frame["delta_W"].mean()), float(frame["delta_b"].mean()), frame

    def SVDSmoothing(  # noqa: N802 (the reference tool's name)
        self,
        model: Any = None,
        percent: float = 0.8,
        pool: bool = True,
        layers: Any = None,
        method: str = "detX",
        fit: str = "PL",
        plot: bool = False,
        start_ids: int = 0,
        svd_method: str = "fast",
    ) -> Any:
        """A smoothed copy of the model (the reference edits the model in place; this never does).

        ``method``: ``"svd"`` keeps the top ``percent`` of the singular components, ``"detX"``
        the det X = 1 tail, ``"rmt"`` the MP spikes, ``"alpha_min"`` the power-law tail.
        """
        return self._smoothed(model, layers, start_ids, _SMOOTHING_METHODS.get(method), percent)

    def SVDSharpness(  # noqa: N802 (the reference tool's name)
        self,
        model: Any = None,
        pool: bool = True,
        layers: Any = None,
        plot: bool = False,
        start_ids: int = 0,
    ) -> Any:
        """A copy of the model with each layer's correlation traps (top components) removed."""
        return self._smoothed(model, layers, start_ids, "sharpen", 0.0)

    def _smoothed(
        self, model: Any, layers: Any, start_ids: int, method: str | None, percent: float
    ) -> Any:
        from alphahat.smoothing import svd_smoothing

        if method is None:
            raise ValueError(f"method must be one of {', '.join(map(repr, _SMOOTHING_METHODS))}")
        model = self._model(model)
        reference = _reference_layers(model, start_ids)
        names = None
        if reference is not None:
            filters = _filters(layers)
            names = [
                tensor
                for tensor, layer in reference.items()
                if layer.layer_type in ("dense", "conv1d", "conv2d", "embedding")
                and _selected(layer, filters)
            ]
        result = svd_smoothing(model, method=method, percent=percent, layers=names)  # type: ignore[arg-type]
        return _with_weights(model, result.weights)


def _lora_layer(
    tensor: str, view: str, adapter: str, reference: Mapping[str, _ReferenceLayer] | None
) -> _ReferenceLayer:
    """The reference's row of a LoRA view of ``tensor`` (``fc1.weight``) of a peft model.

    ``[delta]`` is its ``lora_BA`` row (the ``lora_A`` module's id), ``[merged]`` its
    ``lora_W_plus_AB`` row (the ``lora_B`` module's id), ``[base]`` the ``base_layer``.
    """
    module = tensor.removesuffix(".weight")
    if reference is None:  # an adapter folder: alphahat's names
        return _ReferenceLayer(0, f"{module} {view}", f"{module} {view}", "dense")
    path = f"base_model.model.{module}"
    key, longname = {
        "[delta]": (f"{path}.lora_A.{adapter}", f"{path}.lora_BA.{adapter}"),
        "[merged]": (f"{path}.lora_B.{adapter}", f"{path}.lora_W_plus_AB.{adapter}"),
        "[base]": (f"{path}.base_layer", f"{path}.base_layer"),
    }[view]
    found = reference.get(f"{key}.weight")
    layer_id = found.layer_id if found is not None else 0
    return _ReferenceLayer(layer_id, longname.split(".")[-1], longname, "dense")


def _pair_layer(tensor: str, reference: Mapping[str, _ReferenceLayer]) -> _ReferenceLayer:
    """The reference's row of a cross matrix: ``"id₀ X id₁ "``, the second layer's id and path."""
    from alphahat.layers.intra import PAIR_SEPARATOR

    first, second = (reference[part] for part in tensor.split(PAIR_SEPARATOR))
    name = f"{first.layer_id} X {second.layer_id} "  # the reference's, trailing space included
    return _ReferenceLayer(second.layer_id, name, second.longname, second.layer_type)


def _reference_signature(
    method: Any, only: Mapping[str, Any], names: Sequence[str] | None = None
) -> inspect.Signature:
    """``self, model, layers`` and the reference tool's keywords with its defaults (for help)."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("model", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None),
        inspect.Parameter("layers", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None),
    ]
    for spec in reference_options():
        if spec.name != "layers" and (names is None or spec.name in names):
            params.append(inspect.Parameter(spec.reference, keyword, default=spec.reference_value))
    params += [inspect.Parameter(name, keyword, default=value) for name, value in only.items()]
    return inspect.signature(method).replace(parameters=params)


WeightWatcher.analyze.__signature__ = _reference_signature(  # type: ignore[attr-defined]
    WeightWatcher.analyze, {**_ANALYZE_ONLY, "base_model": None}
)
WeightWatcher.describe.__signature__ = _reference_signature(  # type: ignore[attr-defined]
    WeightWatcher.describe, _DESCRIBE_ONLY, _DESCRIBE_OPTIONS
)


def _with_weights(model: Any, weights: Mapping[str, np.ndarray]) -> Any:
    """A copy of ``model`` (module or mapping) with the given tensors replaced."""
    torch = loaded("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        clone = copy.deepcopy(model)
        params = dict(clone.named_parameters(remove_duplicate=False))
        with torch.no_grad():
            for name, value in weights.items():
                if name in params:
                    target = params[name]
                    target.copy_(torch.from_numpy(np.ascontiguousarray(value)).to(target.dtype))
        return clone
    if isinstance(model, Mapping):
        out: dict[str, Any] = {}
        for name, value in model.items():
            if name in weights:
                new = weights[name]
                if torch is not None and isinstance(value, torch.Tensor):
                    new = torch.from_numpy(np.ascontiguousarray(new)).to(value.dtype)
                out[name] = new
            else:
                out[name] = value
        return out
    return dict(weights)


__all__ = ["WeightWatcher"]
