"""What a worker keeps between tasks, and what an in-memory task carries.

* :func:`cached` — a small per-process cache: a worker computes something expensive once (an
  opened and planned model) and reuses it for the next tasks that need it.
* :class:`LoadedTensor` — a picklable loader that carries the values, for a model that exists
  only in memory (an ``nn.Module``, a dict of arrays): a local worker gets the tensor with the
  task instead of re-opening a file.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from alphahat.errors import SourceError

T = TypeVar("T")

#: Values a worker process keeps (least recently used dropped first).
CACHE_SIZE = 4
_CACHE: OrderedDict[Hashable, Any] = OrderedDict()
_CACHE_LOCK = threading.Lock()


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


@dataclass(frozen=True)
class FailedLoad:
    """A picklable loader that raises the error the parent got reading the tensor."""

    message: str

    def __call__(self) -> Any:
        """Raise the error."""
        raise SourceError(self.message)


__all__ = ["CACHE_SIZE", "FailedLoad", "LoadedTensor", "cached"]
