"""The distribution of each layer's weight entries: tail laws and bulk shape, side by side.

:func:`analyze_weights` walks the model like :func:`alphahat.analyze` (the same layers and
planning options) and fits, for each layer, its positive entries and the magnitudes of its
negative entries apart (:func:`alphahat.fit.entries.fit_entry_side`: power law, exponential
and log-normal on the tail with KS distances and likelihood-ratio tests; half-Gaussian and
half-Laplace on the whole side). A layer with more than ``max_entries`` entries is fitted on a
seeded sample of that many, drawn without replacement (``np.random.default_rng`` seeded by
:func:`alphahat.spectrum.randomize.layer_seed` of the seed and the layer name); the row says how
many were used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from alphahat.fit.entries import ENTRY_COLUMNS, fit_entry_side
from alphahat.layers import LayerFilter
from alphahat.pipeline import LAYER_ERRORS, AnalysisOptions, load_layer, plan_layers
from alphahat.sources import open_source
from alphahat.spectrum.randomize import layer_seed

#: Entries per layer above which a seeded sample is fitted.
DEFAULT_MAX_ENTRIES = 100_000
WEIGHT_COLUMNS = (
    "layer_id", "name", "side", "entries", "entries_used", *ENTRY_COLUMNS, "status", "reason",
)  # fmt: skip
_PLANNING = ("min_evals", "max_evals", "conv_scale", "max_matrix_elements", "max_memory",
             "split_fused", "fused_heads")  # fmt: skip


@dataclass(frozen=True)
class WeightDistributions:
    """Result of :func:`analyze_weights`.

    Attributes:
        details: one row per layer and side (``positive``, ``negative``): :data:`WEIGHT_COLUMNS`.
        samples: each layer's fitted entries (the sample where one was drawn), for figures.
        seed, max_entries: the subsampling settings.
    """

    details: pd.DataFrame
    samples: dict[str, npt.NDArray[np.float64]] = field(repr=False)
    seed: int
    max_entries: int

    def to_csv(self, path: str | Path | None = None) -> str:
        """The table as CSV (atomically to ``path`` when given)."""
        text = str(self.details.to_csv(index=False, lineterminator="\n"))
        if path is not None:
            from alphahat.engine.files import write_atomic

            write_atomic(Path(path), text)
        return text

    def to_json(self, path: str | Path | None = None) -> str:
        """The table, seed and max_entries as JSON (atomically to ``path`` when given)."""
        import json

        from alphahat.report import records

        data = {"seed": self.seed, "max_entries": self.max_entries, "layers": records(self.details)}
        text = json.dumps(data, indent=2, allow_nan=False) + "\n"
        if path is not None:
            from alphahat.engine.files import write_atomic

            write_atomic(Path(path), text)
        return text


def subsample(
    values: npt.ArrayLike, max_entries: int, *, seed: int, name: str
) -> npt.NDArray[np.float64]:
    """All entries (flat, float64), or ``max_entries`` of them drawn without replacement, seeded."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    if flat.size <= max_entries:
        return flat
    rng = np.random.default_rng(layer_seed(seed, name))
    chosen = np.sort(rng.choice(flat.size, size=max_entries, replace=False))
    return flat[chosen]


def analyze_weights(
    model: Any,
    *,
    layers: Sequence[str] | str | None = None,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    seed: int = 0,
    unsafe_load: bool = False,
    **options: Any,
) -> WeightDistributions:
    """Fit each layer's entry distribution, positive and negative sides apart.

    Args:
        model: anything :func:`alphahat.analyze` reads.
        layers: the layers (as ``analyze``'s ``layers``).
        max_entries: entries per layer above which a seeded sample of this many is fitted.
        seed: the seed of the samples.
        unsafe_load: allow a full unpickle of ``.pt/.bin`` files.
        options: planning options (``min_evals``, ``max_evals``, ``conv_scale``, …).
    """
    if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 2:
        raise ValueError(f"max_entries must be an integer ≥ 2; got {max_entries!r}")
    unknown = sorted(set(options) - set(_PLANNING))
    if unknown:
        raise TypeError(f"unexpected option(s) {', '.join(unknown)}")
    chosen: Any = LayerFilter() if layers is None else layers
    plan_options = AnalysisOptions(layers=chosen, seed=seed, **options)
    rows: list[dict[str, Any]] = []
    samples: dict[str, npt.NDArray[np.float64]] = {}
    with open_source(model, unsafe_load=unsafe_load) as source:
        for plan in plan_layers(source, plan_options):
            if plan.status != "analyse":
                continue
            base = {"layer_id": plan.layer_id, "name": plan.ref.name}
            try:
                values = np.asarray(load_layer(plan).values)
                if not np.isfinite(values).all():
                    raise ValueError(f"{plan.ref.name}: weights are not all finite")
                sample = subsample(values, max_entries, seed=seed, name=plan.ref.name)
                samples[plan.ref.name] = sample
                for side, x in (
                    ("positive", sample[sample > 0]),
                    ("negative", -sample[sample < 0]),
                ):
                    row = {**base, "side": side, "entries": int(values.size)}
                    row.update(entries_used=int(sample.size), **fit_entry_side(x))
                    rows.append({**row, "status": "fitted", "reason": ""})
            except LAYER_ERRORS as exc:
                reason = str(exc) or type(exc).__name__
                rows.append({**base, "status": "failed", "reason": reason})
    frame = pd.DataFrame(rows, columns=list(WEIGHT_COLUMNS))
    return WeightDistributions(frame, samples, int(seed), int(max_entries))


__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "WEIGHT_COLUMNS",
    "WeightDistributions",
    "analyze_weights",
    "subsample",
]
