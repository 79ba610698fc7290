"""Executors: run independent, picklable tasks and yield ``(index, outcome)`` as each finishes.

An outcome is the task function's return value, or a :class:`TaskFailure` when the task did
not return: it raised, it ran past the timeout, or its worker process died (killed by the
out-of-memory killer, a segfault in a BLAS library, …). One task's failure never stops the
others. Results arrive in completion order; callers that need the input order sort by index.

* :class:`SerialExecutor` — in this process, in order.
* :class:`ProcessExecutor` — N worker processes (forked from a clean ``forkserver`` process, or
  ``spawn``ed: never forked from the caller, so no inherited threads or locks); each limits its
  BLAS/OpenMP threads (environment variables before NumPy loads, then ``threadpoolctl``) so
  that workers × threads ≤ cores. A task that exceeds the timeout has
  its worker killed and replaced; tasks are pulled from the input lazily (at most one per
  worker in flight), so a generator of large tasks holds only that many at a time.
* :class:`DaskExecutor` — any ``dask.distributed.Client``; failures come back per task.

This module imports nothing heavy at import time: a spawned worker sets its thread limits
before NumPy is first imported.
"""

from __future__ import annotations

import importlib
import os
import pickle
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

TaskFunction = Callable[[Any], Any]
Outcome = tuple[int, Any]

#: Environment variables that cap the threads of BLAS/OpenMP libraries (read when they load).
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


@dataclass(frozen=True)
class TaskFailure:
    """A task that did not return a result.

    Attributes:
        reason: what happened, in one line.
        transient: the task itself may be fine (timeout, dead worker, lost cluster worker):
            a later run may try it again.
    """

    reason: str
    transient: bool = False


class WorkerStartError(RuntimeError):
    """A worker process died before it was ready (its imports failed): nothing can run."""


class Executor(Protocol):
    """Runs a picklable function over tasks, yielding ``(index, result | TaskFailure)``."""

    def map_unordered(self, fn: TaskFunction, tasks: Iterable[Any]) -> Iterator[Outcome]:
        """Outcomes in completion order; ``index`` is the task's position in ``tasks``."""
        ...


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """BLAS threads for each of ``workers`` processes so that workers × threads ≤ cores."""
    return max(1, (cores or available_cores()) // max(1, workers))


def _failure_of(exc: BaseException) -> TaskFailure:
    return TaskFailure(f"internal error: {type(exc).__name__}: {exc}")


class SerialExecutor:
    """Run each task in this process, in order."""

    def map_unordered(self, fn: TaskFunction, tasks: Iterable[Any]) -> Iterator[Outcome]:
        """Outcomes in input order; a task is released before the next one is taken."""
        for index, task in enumerate(tasks):
            try:
                result = fn(task)
            except Exception as exc:  # the task function should catch its own errors
                result = _failure_of(exc)
            del task  # before the next task is drawn: a task may hold a large tensor
            yield index, result


# ---------------------------------------------------------------------------------------------
# local process pool

_THREAD_LIMITS: list[Any] = []  # keeps the threadpoolctl limiter of a worker alive


def limit_threads(threads: int, preload: Sequence[str] = ()) -> None:
    """In a worker process: cap BLAS/OpenMP threads at ``threads``, then import ``preload``.

    Environment variables act on libraries loaded afterwards (NumPy's OpenBLAS, torch's
    OpenMP); ``threadpoolctl``, when installed, also caps libraries already loaded.
    """
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(threads)
    for module in preload:
        importlib.import_module(module)
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return
    _THREAD_LIMITS.append(threadpool_limits(limits=threads))
    torch = __import__("sys").modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def _worker_main(conn: Any, threads: int, preload: Sequence[str]) -> None:
    """Entry point of a worker process: receive pickled (fn, task), send back outcomes."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    limit_threads(threads, preload)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        index, payload = message
        try:
            fn, task = pickle.loads(payload)
            reply: tuple[Any, ...] = ("done", index, fn(task))
        except Exception as exc:
            reply = ("failed", index, f"internal error: {type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except Exception as exc:  # an unpicklable result
            conn.send(("failed", index, f"result could not be sent back: {exc}"))


@dataclass
class _Worker:
    process: Any
    conn: Any
    ready: bool = False
    index: int | None = None  # task in flight
    deadline: float = float("inf")
    started: float = field(default_factory=time.monotonic)

    def stop(self, kill: bool = False) -> None:
        if not kill:
            try:
                self.conn.send(None)
            except (OSError, ValueError):
                kill = True
            self.process.join(timeout=2.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5.0)
        self.conn.close()


def _death_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        import signal

        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"its worker process was killed by {name}{hint}"
    return f"its worker process exited with code {exitcode}"


class ProcessExecutor:
    """Run tasks on ``workers`` local processes, each with ``threads`` BLAS threads.

    Args:
        workers: number of worker processes (≥ 1).
        threads: BLAS/OpenMP threads per worker; default cores // workers (at least 1).
        timeout: seconds a task may run before its worker is killed (None: no limit).
        preload: modules each worker imports before it reports ready (so that import time
            does not count against a task's timeout).
        start_method: ``multiprocessing`` start method; default ``forkserver`` where the OS
            has it (a clean server process imports ``preload`` once and forks each worker
            from it: no inherited threads, fast start), else ``spawn``.
    """

    def __init__(
        self,
        workers: int,
        *,
        threads: int | None = None,
        timeout: float | None = None,
        preload: Sequence[str] = (),
        start_method: str | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be ≥ 1; got {workers}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds; got {timeout}")
        self.workers = workers
        self.threads = threads or threads_per_worker(workers)
        self.timeout = timeout
        self.preload = tuple(preload)
        self.start_method = start_method

    def _start(self, ctx: Any) -> _Worker:
        parent, child = ctx.Pipe(duplex=True)
        process = ctx.Process(
            target=_worker_main,
            args=(child, self.threads, self.preload),
            name="alphahat-worker",
            daemon=True,
        )
        process.start()
        child.close()
        return _Worker(process, parent)

    def map_unordered(self, fn: TaskFunction, tasks: Iterable[Any]) -> Iterator[Outcome]:
        """Outcomes in completion order (see the class doc)."""
        import multiprocessing
        from multiprocessing.connection import wait

        method = self.start_method
        if method is None:
            method = (
                "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
            )
        ctx = multiprocessing.get_context(method)
        if method == "forkserver" and self.preload:
            ctx.set_forkserver_preload(list(self.preload))
        source = enumerate(tasks)
        size = len(tasks) if isinstance(tasks, Sequence) else None
        count = self.workers if size is None else min(self.workers, size)
        if count == 0:
            return
        workers = [self._start(ctx) for _ in range(count)]
        exhausted = False
        try:
            while True:
                unsent: list[Outcome] = []
                for worker in workers:
                    while worker.ready and worker.index is None and not exhausted:
                        item = next(source, None)
                        if item is None:
                            exhausted = True
                        elif (failure := self._submit(worker, fn, *item)) is not None:
                            unsent.append((item[0], failure))
                yield from unsent
                busy = [w for w in workers if w.index is not None]
                if exhausted and not busy:
                    return
                now = time.monotonic()
                wait_for = min((w.deadline for w in busy), default=float("inf")) - now
                handles = [w.conn for w in workers] + [w.process.sentinel for w in workers]
                timeout = None if wait_for == float("inf") else max(0.0, wait_for)
                ready = set(wait(handles, timeout=timeout))
                outcomes: list[Outcome] = []
                for position, worker in enumerate(workers):
                    replacement = self._service(worker, ready, outcomes)
                    if replacement:
                        worker.stop(kill=True)
                        workers[position] = self._start(ctx)
                yield from outcomes
        finally:
            for worker in workers:
                worker.stop(kill=worker.index is not None)

    def _submit(
        self, worker: _Worker, fn: TaskFunction, index: int, task: Any
    ) -> TaskFailure | None:
        """Send a task to an idle worker; a task that cannot be pickled fails on its own."""
        try:
            payload = pickle.dumps((fn, task), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            return TaskFailure(f"internal error: the task cannot be sent to a worker: {exc}")
        worker.conn.send((index, payload))
        worker.index = index
        worker.deadline = time.monotonic() + self.timeout if self.timeout else float("inf")
        return None

    def _service(self, worker: _Worker, ready: set[Any], outcomes: list[Outcome]) -> bool:
        """Handle one worker's messages, death or timeout; True if it must be replaced."""
        if worker.conn in ready:
            try:
                while worker.conn.poll():
                    message = worker.conn.recv()
                    if message[0] == "ready":
                        worker.ready = True
                    elif worker.index == message[1]:
                        outcome = message[2] if message[0] == "done" else TaskFailure(message[2])
                        outcomes.append((message[1], outcome))
                        worker.index, worker.deadline = None, float("inf")
            except (EOFError, OSError):
                pass  # it died; the sentinel says how
        if not worker.process.is_alive():  # workers only exit when told to: this one died
            worker.process.join(timeout=1.0)
            if not worker.ready:
                raise WorkerStartError(
                    f"an alphahat worker process failed to start: "
                    f"{_death_reason(worker.process.exitcode).replace('its ', '')}"
                )
            if worker.index is not None:
                reason = f"layer not finished: {_death_reason(worker.process.exitcode)}"
                outcomes.append((worker.index, TaskFailure(reason, transient=True)))
                worker.index = None
            return True
        if worker.index is not None and time.monotonic() >= worker.deadline:
            reason = f"timed out after {self.timeout:g} s (layer timeout); its worker was stopped"
            outcomes.append((worker.index, TaskFailure(reason, transient=True)))
            worker.index = None
            return True
        return False


# ---------------------------------------------------------------------------------------------
# Dask


class DaskExecutor:
    """Run tasks on a Dask cluster through ``client`` (a ``dask.distributed.Client``).

    Every task is submitted at once (tasks are small: they name a file and a tensor, never
    carry weights); outcomes come back as tasks finish. A task whose worker died more often
    than the scheduler allows (``KilledWorker``) is a transient failure.
    """

    def __init__(self, client: Any) -> None:
        self.client = client

    def map_unordered(self, fn: TaskFunction, tasks: Iterable[Any]) -> Iterator[Outcome]:
        """Outcomes in completion order."""
        import uuid

        from distributed import as_completed

        run = uuid.uuid4().hex[:8]
        index_of: dict[str, int] = {}
        futures = []
        for index, task in enumerate(tasks):
            future = self.client.submit(fn, task, pure=False, key=f"alphahat-{run}-{index}")
            index_of[future.key] = index
            futures.append(future)
        if not futures:
            return
        try:
            for future in as_completed(futures):  # type: ignore[no-untyped-call]
                index = index_of[future.key]
                if future.status == "finished":
                    yield index, future.result()
                else:
                    yield index, self._failure(future)
                future.release()
        finally:
            pending = [f for f in futures if f.status == "pending"]
            if pending:
                self.client.cancel(pending)

    @staticmethod
    def _failure(future: Any) -> TaskFailure:
        if future.status == "cancelled":
            return TaskFailure("cancelled on the Dask cluster", transient=True)
        exc = future.exception()
        transient = type(exc).__name__ in ("KilledWorker", "CommClosedError", "TimeoutError")
        return TaskFailure(
            f"failed on the Dask cluster: {type(exc).__name__}: {exc}", transient=transient
        )


# ---------------------------------------------------------------------------------------------
# choosing one


def _noop() -> None:
    pass


def make_executor(
    *,
    workers: int = 1,
    scheduler: Any = None,
    timeout: float | None = None,
    threads: int | None = None,
    preload: Sequence[str] = (),
) -> tuple[Executor, Callable[[], None], str]:
    """The executor for these settings, a function to call when done with it, and its name.

    ``scheduler``: a Dask scheduler address (``tcp://host:port``, connected here and closed by
    the returned function) or a ``dask.distributed.Client``. Else ``workers`` > 1 or a
    ``timeout`` (which needs a process it can stop) give a :class:`ProcessExecutor` with
    ``threads`` BLAS threads per worker; otherwise a :class:`SerialExecutor`.
    """
    if scheduler is not None:
        if isinstance(scheduler, str):
            from alphahat._imports import require

            distributed = require("distributed", "running on a Dask cluster (--scheduler)")
            try:
                client = distributed.Client(scheduler, timeout="30s")
            except (OSError, TimeoutError) as exc:
                raise ValueError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
            return DaskExecutor(client), client.close, f"dask {scheduler}"
        return DaskExecutor(scheduler), _noop, "dask client"
    if workers > 1 or timeout is not None:
        pool = ProcessExecutor(workers, threads=threads, timeout=timeout, preload=preload)
        return pool, _noop, f"{pool.workers} processes × {pool.threads} BLAS threads"
    return SerialExecutor(), _noop, "serial"


def blas_limit(threads: int | None) -> Any:
    """A context manager capping BLAS threads in this process (restored afterwards)."""
    import contextlib

    if threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads)
