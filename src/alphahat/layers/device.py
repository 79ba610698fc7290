"""A layer's matrices left where the framework holds them (torch tensors on a device).

:func:`alphahat.pipeline.walk.load_layer` with a device gives a layer whose tensor is a torch
tensor on that device (an in-memory module's parameter read as stored, see
:class:`alphahat.sources.arrays.TorchTensorLoader`) as :class:`DeviceMatrices` instead of
NumPy arrays. The torch spectrum backend computes its eigenvalues there, so only the M
eigenvalues per matrix reach host memory, not the N × M weights. A stage that needs the
weights themselves (the shuffled ESD of ``randomize``, eigenvectors, FARMS submatrices, the
FFT operator spectrum, ``intra``/``inverse``) reads them to the host with :meth:`host_weight`
and :meth:`host_matrices`, once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.generic]


@dataclass(frozen=True, eq=False)
class DeviceMatrices:
    """A layer's N × M matrices (N ≥ M) as torch tensors on ``device``.

    Attributes:
        weight: the tensor as stored (a torch tensor on ``device``).
        tensors: its matrices, each N × M (views of ``weight`` where possible).
        device: where they are (``cuda:0``, ``cpu``, …).
        to_host: turns the stored tensor into a host NumPy array (the source's loader).
        split: turns a stored array into its matrices (the same split as ``tensors``).
    """

    weight: Any = field(repr=False)
    tensors: tuple[Any, ...] = field(repr=False)
    device: str
    to_host: Any = field(repr=False)
    split: Any = field(repr=False)
    _host: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        """(N, M) of each matrix."""
        rows, cols = self.tensors[0].shape
        return int(rows), int(cols)

    def __len__(self) -> int:
        return len(self.tensors)

    def host_weight(self) -> Array:
        """The stored tensor read to host memory (once; later calls return the same array)."""
        if "weight" not in self._host:
            self._host["weight"] = np.asarray(self.to_host())
        weight: Array = self._host["weight"]
        return weight

    def host_matrices(self) -> list[Array]:
        """The matrices as NumPy views of :meth:`host_weight`."""
        matrices: Sequence[Array] = self.split(self.host_weight())
        return list(matrices)


__all__ = ["DeviceMatrices"]
