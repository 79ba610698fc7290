"""What travels to a worker: how to re-open the model, never its weights.

A :class:`SourceSpec` names a model by path (absolute, so a worker with another working
directory finds it) plus the keyword arguments of :func:`alphahat.sources.open_source`. A
worker opens it once — reading headers only — and keeps it in a small per-process cache
(:func:`cached`), then reads just the tensor its task names.

For a model that exists only in memory (an ``nn.Module``, a dict of arrays), a local worker
gets the tensor's values with the task instead (:class:`LoadedTensor`); a Dask cluster cannot.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from alphahat.sources import WeightSource, open_source

T = TypeVar("T")

#: Opened (and planned) sources a worker process keeps.
CACHE_SIZE = 4
_CACHE: OrderedDict[Hashable, Any] = OrderedDict()
_CACHE_LOCK = threading.Lock()


@dataclass(frozen=True)
class SourceSpec:
    """How to open a model again in another process: ``open_source(path, **options)``.

    Attributes:
        path: absolute path of the model file or checkpoint folder.
        options: keyword arguments of ``open_source`` as sorted (name, value) pairs.
    """

    path: str
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, model: Any, **options: Any) -> SourceSpec | None:
        """The spec of a path-like ``model``; None for in-memory models."""
        if not isinstance(model, str | os.PathLike):
            return None
        return cls(str(Path(model).resolve()), tuple(sorted(options.items())))

    def open(self) -> WeightSource:
        """Open the source (headers only)."""
        return open_source(self.path, **dict(self.options))


def cached(key: Hashable, factory: Callable[[], T]) -> T:
    """``factory()`` computed once per process for ``key`` (least recently used of 4 kept)."""
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            value: T = _CACHE[key]
            return value
    value = factory()
    with _CACHE_LOCK:
        _CACHE[key] = value
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return value


@dataclass(frozen=True)
class LoadedTensor:
    """A picklable tensor loader that carries the values (in-memory models, local workers)."""

    values: npt.NDArray[np.generic]

    def __call__(self) -> npt.NDArray[np.generic]:
        """The values."""
        return self.values
