"""Read ahead: load the next item in a background thread while the caller uses the current one."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def read_ahead(items: Iterable[T], load: Callable[[T], R]) -> Iterator[R]:
    """``load(item)`` of each item, in order, the next one loading while this one is used.

    At most two loaded items exist at a time: the one yielded and the one being loaded. An
    exception raised by ``load`` is raised here, when its item's turn comes (callers that
    must not stop make ``load`` return their errors instead).
    """
    with ThreadPoolExecutor(1, thread_name_prefix="alphahat-read") as reader:
        pending: Future[R] | None = None
        for item in items:
            future = reader.submit(load, item)
            if pending is not None:
                yield pending.result()
            pending = future
            del future
        if pending is not None:
            yield pending.result()


__all__ = ["read_ahead"]
