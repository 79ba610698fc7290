"""Fine-tune deltas: W − W_base for every tensor of a model, matched to its base by full name.

Tensors are matched by their full name only, never by a substring or a suffix: a tensor with no
namesake in the base, or whose shape differs from its namesake's, is listed with the reason
and not analysed (never treated as a zero delta). Tensors only the base has are listed too.
The difference is taken in float64 after widening both tensors, so it is exact for float16,
bfloat16 and float32 weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from alphahat.errors import SourceError
from alphahat.sources.base import FLOAT_DTYPES, TensorRef, WeightSource

Array = npt.NDArray[np.generic]


def difference_loader(model: TensorRef, base: TensorRef) -> Callable[[], Array]:
    """Load both tensors and return ``model − base`` in float64."""

    def load() -> Array:
        values = np.asarray(model.load(), dtype=np.float64)
        reference = np.asarray(base.load(), dtype=np.float64)
        if values.shape != reference.shape:
            raise SourceError(
                f"{model.name}: read shapes differ: {values.shape} vs the base's {reference.shape}"
            )
        delta: Array = values - reference
        return delta

    return load


class DeltaSource(WeightSource):
    """The differences W − W_base of a fine-tuned model and its base, tensor by tensor."""

    def __init__(self, model: WeightSource, base: WeightSource) -> None:
        self.model = model
        self.base = base
        self.description = f"{model.description} − base {base.description}"
        self.files = (*model.files, *base.files)
        base_refs = {ref.name: ref for ref in base.tensors()}
        refs: list[TensorRef] = []
        matched: set[str] = set()
        for ref in model.tensors():
            other = base_refs.get(ref.name)
            if other is not None:
                matched.add(ref.name)
            refs.append(self._delta(ref, other))
        for name, other in base_refs.items():
            if name not in matched:
                refs.append(
                    replace(
                        other,
                        skip_reason="only in the base model (no tensor of this name in the model)",
                        note="base only",
                    )
                )
        self._refs = refs

    def _delta(self, ref: TensorRef, base: TensorRef | None) -> TensorRef:
        if ref.skip_reason is not None or ref.problem is not None:
            return ref
        if base is None:
            reason = "no tensor of this full name in the base model; delta not computed"
            return replace(ref, skip_reason=reason)
        if base.problem is not None:
            return replace(ref, problem=f"base tensor unreadable: {base.problem}")
        if base.shape != ref.shape:
            reason = (
                f"shape {list(ref.shape)} differs from the base's {list(base.shape)}; "
                "delta not computed"
            )
            return replace(ref, skip_reason=reason)
        if ref.dtype not in FLOAT_DTYPES or base.dtype not in FLOAT_DTYPES:
            return ref  # the planner skips non-float tensors with its own reason
        note = "; ".join(filter(None, [ref.note, "W − W_base (float64)"]))
        return replace(
            ref, dtype="float64", load=difference_loader(ref, base), note=note, skip_reason=None
        )

    def tensors(self) -> Iterator[TensorRef]:
        """Model tensors (as deltas) in the model's order, then tensors only the base has."""
        return iter(self._refs)

    def close(self) -> None:
        """Close both sources."""
        self.model.close()
        self.base.close()
