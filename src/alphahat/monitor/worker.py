"""The rows of one monitored step, and the background worker *process* that computes them.

* :func:`compute_rows` — one step's analysis: each planned layer read in turn
  (:func:`~alphahat.pipeline.walk.load_planned`) and analysed by
  :func:`alphahat.run.run_layer_task`, with the plan's columns first (so a row equals
  :func:`alphahat.analyze`'s). Every mode of the monitor (foreground, thread, process) computes
  its rows with it.
* :class:`ProcessWorker` — ``Monitor(..., background="process")``. At a scheduled step the
  training process copies the analysed tensors into a block of shared memory (one ``memcpy``
  per tensor; a GPU tensor is copied to the host) and queues a :class:`SnapshotJob`: the
  module's tensor list (names, shapes, dtypes, kinds: no values) whose loaders
  (:class:`SharedArray`) read the block. ONE long-lived worker process, started on the first
  job by :class:`alphahat.engine.executors.ProcessExecutor` (a clean ``forkserver``/``spawn``
  process, its BLAS threads limited), plans the same tensor list with the same options
  (:func:`~alphahat.pipeline.walk.plan_layers`), computes the rows and sends them back (a few
  hundred bytes per layer). A thread of the training process receives them, in step order, and
  hands each step to the monitor's ``finish`` (journal, alerts, means, history, TensorBoard):
  the journal has one writer, the training process.

At most ``waiting`` snapshots wait besides the one being analysed; the next scheduled step
blocks until one is done. The blocks are reused from step to step (no new shared memory, and no
page faults, once the first ``waiting + 1`` steps have run), and unlinked by :meth:`stop`.

Errors: a step whose analysis failed in the worker (the worker raised, was killed, or could not
start) is a :class:`MonitorWorkerError`, raised in the training process at the next ``submit``
(``Monitor.step``), :meth:`join` or :meth:`stop`; the snapshots that were waiting behind it
are dropped (as the thread mode drops them), and the next step starts a new worker if needed.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from multiprocessing import shared_memory
from typing import Any

import numpy as np
import numpy.typing as npt

from alphahat.engine.executors import ProcessExecutor, TaskFailure
from alphahat.engine.tasks import FailedLoad
from alphahat.layers import TensorPlan
from alphahat.layers.limits import format_bytes
from alphahat.pipeline.core import error_reason
from alphahat.pipeline.options import AnalysisOptions
from alphahat.pipeline.walk import load_planned, plan_layers, spectrum_device
from alphahat.run import LayerTask, plan_row, run_layer_task
from alphahat.sources import TensorRef, WeightSource

#: Byte alignment of each tensor in a shared block.
ALIGN = 64
#: Where Linux keeps POSIX shared memory (checked for room before a block is made).
SHM_FOLDER = "/dev/shm"

Finish = Callable[[int, float | None, list[dict[str, Any]], float], Any]


class MonitorWorkerError(RuntimeError):
    """A step's analysis failed in the monitor's worker process (raised in the training one)."""


def compute_rows(plans: Iterable[TensorPlan], options: AnalysisOptions) -> list[dict[str, Any]]:
    """The rows of the planned layers: plan columns, then :func:`run_layer_task`'s metrics.

    A layer that cannot be read or analysed is a ``failed`` row; the others are unaffected.
    A module's tensors on the torch backend's device stay there
    (:func:`~alphahat.pipeline.walk.spectrum_device`): only their eigenvalues reach the host.
    """
    rows = []
    for layer in load_planned(plans, device=spectrum_device(options)):
        outcome = run_layer_task(LayerTask(options, layer.layer_id, layer.name, loaded=layer))
        rows.append({**plan_row(layer.plan), **outcome.row})
        del layer  # before the next read: one layer's matrices in memory at a time
    return rows


def planned_tensors(model: Any, plans: Iterable[TensorPlan]) -> dict[str, Any]:
    """The module's parameters and buffers that ``plans`` read (a part's whole tensor), by name."""
    tensors = dict(model.named_parameters(remove_duplicate=False))
    tensors.update(model.named_buffers(remove_duplicate=False))
    wanted = {plan.ref.name.split(" [", 1)[0] for plan in plans}
    return {name: tensors[name] for name in wanted if name in tensors}


# ---------------------------------------------------------------------------------------------
# the worker's side


_ATTACHED: dict[str, shared_memory.SharedMemory] = {}  # the blocks this process has mapped
_ATTACHED_MAX = 4


def _attached(block: str) -> shared_memory.SharedMemory:
    """The shared block named ``block``, mapped once per process (older mappings released)."""
    shm = _ATTACHED.get(block)
    if shm is None:
        shm = shared_memory.SharedMemory(name=block)
        _ATTACHED[block] = shm
        while len(_ATTACHED) > _ATTACHED_MAX:  # a block the training process has replaced
            old = _ATTACHED.pop(next(iter(_ATTACHED)))
            with contextlib.suppress(BufferError):  # an array still views it
                old.close()
    return shm


@dataclass(frozen=True)
class SharedArray:
    """A picklable tensor loader: a read-only array in the shared block ``block``."""

    block: str
    offset: int
    shape: tuple[int, ...]
    dtype: str

    def __call__(self) -> npt.NDArray[np.generic]:
        """The array (a view of the block: no copy)."""
        buffer = _attached(self.block).buf
        array: npt.NDArray[np.generic] = np.ndarray(
            self.shape, np.dtype(self.dtype), buffer=buffer, offset=self.offset
        )
        array.flags.writeable = False
        return array


@dataclass(frozen=True)
class SnapshotJob:
    """One step's work for the worker: the module's tensor list, its loaders reading a block."""

    options: AnalysisOptions
    description: str
    model_config: Mapping[str, Any] | None
    refs: tuple[TensorRef, ...]


class _SnapshotSource(WeightSource):
    """The tensor list of a :class:`SnapshotJob`, as the module's source listed it."""

    in_build_order = True

    def __init__(self, job: SnapshotJob) -> None:
        self.description = job.description
        self.model_config = job.model_config
        self._refs = job.refs

    def tensors(self) -> Iterator[TensorRef]:
        """The module's tensors, in its order."""
        return iter(self._refs)


def analyse_snapshot(job: SnapshotJob) -> tuple[list[dict[str, Any]], float]:
    """In the worker: the step's rows (planned as the training process planned them), seconds."""
    started = time.perf_counter()
    source = _SnapshotSource(job)
    plans = [p for p in plan_layers(source, job.options) if p.status == "analyse"]
    rows = compute_rows(plans, job.options)
    return rows, time.perf_counter() - started


# ---------------------------------------------------------------------------------------------
# the training process's side


def _numpy_dtype(tensor: Any) -> np.dtype[Any]:
    """The dtype :func:`~alphahat.sources.arrays.torch_to_numpy` gives ``tensor`` (raises as it)."""
    import torch

    from alphahat.sources.arrays import torch_to_numpy

    return torch_to_numpy(torch.empty(0, dtype=tensor.dtype)).dtype


def _aligned(size: int) -> int:
    return -(-size // ALIGN) * ALIGN


def _check_room(nbytes: int) -> None:
    """Refuse a block larger than the free shared memory (writing it would crash: SIGBUS)."""
    try:
        info = os.statvfs(SHM_FOLDER)
    except OSError:  # not Linux: the OS reports a lack of room when the block is made
        return
    free = info.f_bavail * info.f_frsize
    if nbytes > free:
        raise MonitorWorkerError(
            f"background='process' needs {format_bytes(nbytes)} of shared memory for a "
            f"snapshot of the weights, but {SHM_FOLDER} has {format_bytes(free)} free "
            "(in Docker: --shm-size); use background='thread' instead"
        )


@dataclass
class _Pending:
    step: int
    epoch: float | None
    block: shared_memory.SharedMemory


def _unlink(blocks: list[shared_memory.SharedMemory]) -> None:
    for shm in blocks:
        try:
            shm.close()
            shm.unlink()
        except (OSError, BufferError):  # pragma: no cover - already gone
            pass
    blocks.clear()


class ProcessWorker:
    """One worker process analysing snapshots in step order (see the module docstring).

    Args:
        options: the analysis options (they travel with each job: they must pickle).
        finish: called in the training process (by a receiving thread) with
            ``(step, epoch, rows, seconds)`` for each analysed step, in step order.
        threads: BLAS/OpenMP threads of the worker process (default 1: the worker takes one
            core from training; more threads oversubscribe cores the training step uses).
        waiting: snapshots that may wait besides the one being analysed.
    """

    def __init__(
        self,
        options: AnalysisOptions,
        finish: Finish,
        *,
        threads: int | None = None,
        waiting: int = 2,
    ) -> None:
        self.options = options
        self.threads = threads or 1
        self._finish = finish
        self._limit = waiting + 1
        self._cond = threading.Condition()
        self._jobs: queue.SimpleQueue[tuple[int, SnapshotJob] | None] = queue.SimpleQueue()
        self._pending: dict[int, _Pending] = {}
        self._sent: dict[int, int] = {}  # the executor's index of a job taken → its key
        self._count = 0
        self._running = False  # a receiving thread runs the queued jobs
        self._blocks: list[shared_memory.SharedMemory] = []  # every block, to unlink
        self._free: list[shared_memory.SharedMemory] = []
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._finalizer = weakref.finalize(self, _unlink, self._blocks)

    # -- the training thread ------------------------------------------------------------------

    def submit(
        self, step: int, epoch: float | None, model: Any, plans: Sequence[TensorPlan]
    ) -> None:
        """Copy the planned tensors of ``model`` into a block and queue the step's job.

        Blocks while ``waiting`` snapshots wait; raises the error of an earlier step.
        """
        with self._cond:
            self._raise()
            while len(self._pending) >= self._limit and self._error is None:
                self._cond.wait()
            self._raise()
            block = self._free.pop() if self._free else None
        try:
            job, block = self._snapshot(model, plans, block)
        except BaseException:
            with self._cond:
                if block is not None and block in self._blocks:  # still ours: reusable
                    self._free.append(block)
            raise
        with self._cond:
            key, self._count = self._count, self._count + 1
            self._pending[key] = _Pending(step, epoch, block)
            if not self._running:
                self._running = True
                self._thread = threading.Thread(
                    target=self._run, name="alphahat-monitor-receiver", daemon=True
                )
                self._thread.start()
            self._jobs.put((key, job))

    def join(self) -> None:
        """Wait for the submitted steps (re-raising the error of a failed one)."""
        with self._cond:
            while self._pending:
                self._cond.wait()
            self._raise()

    def stop(self) -> None:
        """Finish the submitted steps, end the worker process, release the shared memory."""
        try:
            with self._cond:
                running, self._running = self._running, False
            if running:
                self._jobs.put(None)  # the thread runs the jobs before it, then ends the worker
            if self._thread is not None:
                self._thread.join()
                self._thread = None
            with self._cond:
                self._raise()
        finally:
            with self._cond:
                self._free.clear()
                self._finalizer()

    def _raise(self) -> None:
        """Raise the pending error once (called holding the lock)."""
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _snapshot(
        self, model: Any, plans: Sequence[TensorPlan], block: shared_memory.SharedMemory | None
    ) -> tuple[SnapshotJob, shared_memory.SharedMemory]:
        """The step's job, its analysed tensors copied into ``block`` (a new one if too small)."""
        import torch

        from alphahat.sources.torch_sources import ModuleSource

        tensors = planned_tensors(model, plans)
        layout: dict[str, tuple[int, np.dtype[Any]]] = {}
        failed: dict[str, str] = {}
        size = 0
        for name in sorted(tensors):
            try:
                dtype = _numpy_dtype(tensors[name])
            except Exception as exc:  # numpy has no such dtype: a failed row, as in the thread
                failed[name] = error_reason(exc)
                continue
            layout[name] = (size, dtype)
            size += _aligned(tensors[name].numel() * dtype.itemsize)
        if block is None or block.size < size:
            block = self._new_block(size, block)
        source = ModuleSource(model)
        refs = []
        with torch.no_grad():
            for ref in source.tensors():
                if ref.name in layout:
                    offset, dtype = layout[ref.name]
                    tensor = tensors[ref.name]
                    loader = SharedArray(block.name, offset, tuple(tensor.shape), dtype.str)
                    target = np.ndarray(loader.shape, dtype, buffer=block.buf, offset=offset)
                    torch.from_numpy(target).copy_(tensor.detach())
                    del target
                    refs.append(replace(ref, load=loader))
                else:
                    reason = failed.get(ref.name, f"{ref.name}: not in the monitor's snapshot")
                    refs.append(replace(ref, load=FailedLoad(reason)))
        job = SnapshotJob(self.options, source.description, source.model_config, tuple(refs))
        return job, block

    def _new_block(
        self, size: int, old: shared_memory.SharedMemory | None
    ) -> shared_memory.SharedMemory:
        _check_room(size)
        if old is not None:  # too small (the model grew): replaced
            with self._cond:
                self._blocks.remove(old)
            _unlink([old])
        block = shared_memory.SharedMemory(create=True, size=max(size, 1))
        with self._cond:
            self._blocks.append(block)
        return block

    # -- the receiving thread -------------------------------------------------------------------

    def _tasks(self) -> Iterator[SnapshotJob]:
        """The queued jobs, as the executor asks for them; those behind an error are dropped."""
        taken = 0
        while (item := self._jobs.get()) is not None:
            key, job = item
            with self._cond:
                if self._error is not None:
                    self._done(key)
                    continue
                self._sent[taken] = key
            taken += 1
            yield job

    def _run(self) -> None:
        """Run the queued jobs on one worker process; finish each step as its rows come back."""
        executor = ProcessExecutor(1, threads=self.threads, preload=("alphahat.monitor.worker",))
        try:
            for index, outcome in executor.map_unordered(analyse_snapshot, self._tasks()):
                with self._cond:
                    key = self._sent.pop(index)
                self._outcome(key, outcome)
        except BaseException as exc:  # the executor itself failed: every queued step is lost
            self._fail(exc)

    def _outcome(self, key: int, outcome: Any) -> None:
        with self._cond:
            pending = self._pending[key]
        error: BaseException | None = None
        if isinstance(outcome, TaskFailure):
            reason = outcome.reason.removeprefix("layer not finished: ")
            error = MonitorWorkerError(
                f"the monitor's analysis of step {pending.step} failed in its worker process: "
                f"{reason.replace('its worker process', 'the worker process')}"
            )
        else:
            rows, seconds = outcome
            try:
                self._finish(pending.step, pending.epoch, rows, seconds)
            except BaseException as exc:  # re-raised in the training thread
                error = exc
        with self._cond:
            if error is not None and self._error is None:
                self._error = error
            self._done(key)

    def _done(self, key: int) -> None:
        """Release a finished or dropped job's block (called holding the lock)."""
        pending = self._pending.pop(key)
        if pending.block in self._blocks:
            self._free.append(pending.block)
        self._cond.notify_all()

    def _fail(self, exc: BaseException) -> None:
        """The executor failed (the worker could not start, or died between steps)."""
        with self._cond:
            self._running = False  # the next submit starts a new thread (and worker)
            steps = sorted(p.step for p in self._pending.values())
            if isinstance(exc, OSError | EOFError):
                exc = MonitorWorkerError(
                    f"the monitor's worker process is gone (killed or crashed: {exc}); "
                    f"not analysed: step(s) {', '.join(map(str, steps))}"
                )
            elif not isinstance(exc, MonitorWorkerError):
                text = str(exc).replace("an alphahat worker", "the monitor's worker")
                exc = MonitorWorkerError(
                    f"{text}; not analysed: step(s) {', '.join(map(str, steps))}"
                )
            if self._error is None:
                self._error = exc
            while True:  # the queued jobs will not run
                try:
                    self._jobs.get_nowait()
                except queue.Empty:
                    break
            for key in list(self._pending):
                self._done(key)


__all__ = [
    "MonitorWorkerError",
    "ProcessWorker",
    "SharedArray",
    "SnapshotJob",
    "analyse_snapshot",
    "compute_rows",
]
