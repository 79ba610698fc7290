"""The α monitor of a model in training: analyse its weights every N steps, journal, alert.

:class:`Monitor` holds a live ``torch.nn.Module``. At each scheduled step it plans the
module's layers (:func:`alphahat.pipeline.walk.plan_layers` on the module's
:class:`~alphahat.sources.torch_sources.ModuleSource`), reads them one at a time
(:func:`~alphahat.pipeline.walk.load_planned`) and analyses each with
:func:`alphahat.run.run_layer_task` — the analysis of :func:`alphahat.analyze`, so a
monitor row equals ``analyze``'s row of the same weights. The step's rows are appended to the
journal (:mod:`alphahat.monitor.journal`) as soon as they are computed; the alert rules
(:mod:`alphahat.monitor.alerts`) are checked against the previous analysis; the step's model
means (:func:`alphahat.metrics.summarize`) are returned as a :class:`StepSummary` and, with a
TensorBoard ``SummaryWriter``, written as scalars.

With ``background=True`` (or ``"thread"``) the scheduled step only clones the analysed
tensors (on their device: a GPU model's weights are copied on the GPU) and a worker thread
analyses the clones, so the training step waits for the clone only. With
``background="process"`` the step copies them into shared memory and one long-lived worker
process computes the rows (:mod:`alphahat.monitor.worker`): the fit's Python code then runs
outside the training process's GIL. In every mode the rows are computed by
:func:`alphahat.monitor.worker.compute_rows` and each step is finished — journal, alerts,
means, history, TensorBoard — by the same method in the training process;
:meth:`Monitor.close` (or leaving the ``with`` block) waits for the pending analyses.

On a GPU the spectra are computed on the module's device with the torch backend
(:mod:`alphahat.spectrum.backends`: the float64 Gram matrix with its accuracy guard, the SVD
where the guard rejects it; a float32 pass first with ``float32_tolerance``), unless the
options name a backend or device themselves — on the tensors where they are
(:func:`~alphahat.pipeline.walk.spectrum_device`): only the eigenvalues reach the host.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

from alphahat.layers import TensorPlan
from alphahat.metrics import SUMMARY_METRICS, summarize
from alphahat.monitor.alerts import (
    Alert,
    AlertRule,
    AlphaAlertWarning,
    AlphaBelow,
    check_rules,
    needs_randomize,
)
from alphahat.monitor.journal import MonitorJournal, MonitorRecords, open_monitor_journal
from alphahat.monitor.worker import ProcessWorker, compute_rows, planned_tensors
from alphahat.pipeline.options import ANALYSIS_DEFAULTS, AnalysisOptions, Integer
from alphahat.pipeline.walk import plan_layers
from alphahat.sources import TensorRef, WeightSource
from alphahat.sources.arrays import TorchTensorLoader, torch_device_name

logger = logging.getLogger("alphahat.monitor")

T = TypeVar("T")

BackgroundMode = Literal["thread", "process"]


@dataclass(frozen=True)
class StepSummary:
    """One analysis of the model during training.

    Attributes:
        step: the training step.
        epoch: the epoch, when the caller gave it.
        means: the model means of :data:`alphahat.metrics.SUMMARY_METRICS` over the fitted
            layers (α, α̂, log₁₀ norms, …).
        rows: one row per analysed layer (the columns of :func:`alphahat.analyze`).
        alerts: the alerts of this analysis.
        seconds: wall time of the analysis (0 for a step read back from the journal).
        resumed: the step was read back from the journal, not analysed again.
    """

    step: int
    epoch: float | None
    means: Mapping[str, float]
    rows: tuple[Mapping[str, Any], ...] = field(repr=False)
    alerts: tuple[Alert, ...] = ()
    seconds: float = 0.0
    resumed: bool = False

    @property
    def num_layers(self) -> int:
        """Layers analysed."""
        return len(self.rows)


def _options_of(
    options: AnalysisOptions | Mapping[str, Any] | None, layers: Any, device: str | None
) -> AnalysisOptions:
    """The monitor's options; on a GPU (``device``) the torch backend there by default.

    A mapping gets the device before it is checked, so that options of the torch backend
    (``float32_tolerance``) are accepted for a GPU model without naming its device.
    """
    if options is None:
        options = ANALYSIS_DEFAULTS
    if not isinstance(options, AnalysisOptions):
        given = dict(options)
        if device is not None and given.get("backend", "auto") == "auto":
            given.setdefault("device", device)
        options = AnalysisOptions(**given)
    if device is not None and options.device is None and options.backend == "auto":
        options = replace(options, device=device)  # the torch backend on the model's device
    if layers is not None:
        options = replace(options, layers=layers)
    return options


def _background_mode(background: bool | str | None) -> BackgroundMode | None:
    """The background mode ``background`` names (None: analyse in the training thread)."""
    if background is None or background is False:
        return None
    if background is True or background == "thread":
        return "thread"
    if background == "process":
        return "process"
    raise ValueError(f"background must be False, True, 'thread' or 'process'; got {background!r}")


def _device_of(model: Any) -> str | None:
    """The device of the module's first parameter (None for the CPU or no parameter)."""
    for param in model.parameters():
        return None if param.device.type == "cpu" else torch_device_name(param)
    return None


class Monitor:
    """Analyse a training model's weights on a schedule (see the module docstring).

    Args:
        model: the live ``torch.nn.Module`` (never modified).
        journal: path of the journal (None: keep the results in memory only): JSON lines, or
            a Parquet folder when it ends in ``.parquet`` (:mod:`alphahat.monitor.parquet`).
            An existing journal of the same model class and options is resumed: steps it
            holds are not analysed again.
        every_steps: analyse when ``step % every_steps == 0`` (:meth:`step`).
        every_epochs: analyse when ``epoch % every_epochs == 0`` (:meth:`epoch_end`).
        layers: the layer selection (as ``alphahat.analyze``'s ``layers``).
        options: the analysis options (an :class:`~alphahat.pipeline.options.AnalysisOptions`
            or a mapping of option names to values).
        alerts: the alert rules (default: a layer's α below 2).
        background: analyse a copy of the weights in the background: ``True`` or
            ``"thread"``, a worker thread; ``"process"``, one worker process (started at the
            first scheduled step and reused). False: in the training thread.
        blas_threads: BLAS/OpenMP threads of the worker process (``background="process"``
            only; default 1, so that the worker takes one core from training).
        writer: a TensorBoard ``SummaryWriter`` (or anything with ``add_scalar``).
        resume: continue an existing journal (False: start it over).
        warn: issue each alert as an :class:`AlphaAlertWarning` (it is always logged and
            journaled).
    """

    def __init__(
        self,
        model: Any,
        journal: str | Path | None = None,
        *,
        every_steps: int | None = 500,
        every_epochs: int | None = None,
        layers: Any = None,
        options: AnalysisOptions | Mapping[str, Any] | None = None,
        alerts: Sequence[AlertRule] | None = None,
        background: bool | str = False,
        blas_threads: int | None = None,
        writer: Any = None,
        resume: bool = True,
        warn: bool = True,
    ) -> None:
        if not (hasattr(model, "named_parameters") and hasattr(model, "named_modules")):
            raise TypeError(f"Monitor needs a torch.nn.Module; got {type(model).__name__}")
        for name, value in (("every_steps", every_steps), ("every_epochs", every_epochs)):
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
                raise ValueError(f"{name} must be None or an integer ≥ 1; got {value!r}")
        mode = _background_mode(background)
        if blas_threads is not None and mode != "process":
            raise ValueError(
                "blas_threads sets the threads of the worker process: it needs "
                f"background='process'; got background={background!r}"
            )
        if blas_threads is not None:
            Integer(minimum=1).check("blas_threads", blas_threads)  # the option table's rule
        self.model = model
        self.every_steps = every_steps
        self.every_epochs = every_epochs
        self.rules: tuple[AlertRule, ...] = (AlphaBelow(),) if alerts is None else tuple(alerts)
        self.options = self._check_options(_options_of(options, layers, _device_of(model)))
        self.writer = writer
        self.warn = warn
        self.history: list[StepSummary] = []
        self.should_stop = False
        self._lock = threading.Lock()
        self._journal: MonitorJournal | None = None
        self._done: dict[int, StepSummary] = {}
        self._submitted: set[int] = set()
        if journal is not None:
            key = {"model": type(model).__name__, "options": self.options.rows_key()}
            self._journal, found = open_monitor_journal(journal, key, resume=resume)
            self._restore(found)
        self._worker: _Worker | ProcessWorker | None = None
        if mode == "thread":
            self._worker = _Worker(self._analyse_plans)
        elif mode == "process":
            self._worker = ProcessWorker(self.options, self._finish_step, threads=blas_threads)

    def _check_options(self, options: AnalysisOptions) -> AnalysisOptions:
        if needs_randomize(self.rules) and not options.randomize:
            raise ValueError(
                "the NewTraps alert reads the correlation traps: pass options with randomize=True"
            )
        return options

    # -- the schedule ---------------------------------------------------------------------

    def due(self, step: int) -> bool:
        """Whether ``step`` is on the step schedule."""
        return self.every_steps is not None and step % self.every_steps == 0

    def step(
        self, step: int, *, epoch: float | None = None, force: bool = False
    ) -> StepSummary | None:
        """Analyse the weights at ``step`` if it is on the schedule (or ``force``).

        Returns:
            The step's summary (also for a step the journal already holds, read back), or
            None when the step is not due or, in background mode, is being analysed.
        """
        if not (force or self.due(step)):
            return None
        return self._analyse(step, epoch)

    def epoch_end(self, epoch: int, *, step: int) -> StepSummary | None:
        """Analyse at the end of ``epoch`` (recorded under ``step``) if it is on the schedule."""
        if self.every_epochs is None or epoch % self.every_epochs != 0:
            return None
        return self._analyse(step, epoch)

    def _analyse(self, step: int, epoch: float | None) -> StepSummary | None:
        with self._lock:
            done = self._done.get(step)
        if done is not None:  # analysed already (before a restart too): its stop request holds
            if any(alert.stop for alert in done.alerts):
                self.should_stop = True
            return done
        plans = self._plans()
        if self._worker is not None:
            if step not in self._submitted:
                if isinstance(self._worker, ProcessWorker):
                    self._worker.submit(step, epoch, self.model, plans)
                else:
                    self._worker.submit(step, epoch, _snapshot(self.model, plans, self.options))
                self._submitted.add(step)
            return None
        return self._analyse_plans(step, epoch, plans)

    def _plans(self) -> list[TensorPlan]:
        from alphahat.sources.torch_sources import ModuleSource

        source = ModuleSource(self.model)
        return [p for p in plan_layers(source, self.options) if p.status == "analyse"]

    # -- one analysis -----------------------------------------------------------------------

    def _analyse_plans(
        self, step: int, epoch: float | None, plans: list[TensorPlan]
    ) -> StepSummary:
        started = time.perf_counter()
        rows = compute_rows(plans, self.options)
        return self._finish_step(step, epoch, rows, time.perf_counter() - started)

    def _finish_step(
        self, step: int, epoch: float | None, rows: list[dict[str, Any]], seconds: float
    ) -> StepSummary:
        """Journal the step's rows, check the alerts, take the means, record the step.

        Every mode ends a step here, in the training process (the journal's one writer).
        """
        started = time.perf_counter()
        for row in rows:
            self._append(
                {"type": "layer", "step": step, "epoch": epoch, "layer_id": row["layer_id"],
                 "name": row["name"], "row": row}
            )  # fmt: skip
        previous = self.history[-1].rows if self.history else ()
        alerts = check_rules(self.rules, step, rows, previous)
        for alert in alerts:
            self._append({"type": "alert", "step": step, "epoch": epoch, "row": alert.as_dict()})
        means = dict(summarize(rows, include_embeddings=self.options.include_embeddings).means)
        self._append({"type": "step", "step": step, "epoch": epoch, "row": means})
        seconds += time.perf_counter() - started
        summary = StepSummary(step, epoch, means, tuple(rows), tuple(alerts), seconds)
        self._record(summary)
        return summary

    def _append(self, record: Mapping[str, Any]) -> None:
        if self._journal is not None:
            self._journal.append(record)

    def _record(self, summary: StepSummary) -> None:
        with self._lock:
            self.history.append(summary)
            self._done[summary.step] = summary
        for alert in summary.alerts:
            logger.warning("%s", alert.message)
            if self.warn:
                warnings.warn(alert.message, AlphaAlertWarning, stacklevel=5)
            if alert.stop:
                self.should_stop = True
        if self.writer is not None:
            for metric, value in summary.means.items():
                self.writer.add_scalar(f"alphahat/mean_{metric}", value, summary.step)
            for row in summary.rows:
                for metric in ("alpha", "alpha_weighted", "log_spectral_norm"):
                    self.writer.add_scalar(
                        f"alphahat/{metric}/{row['name']}", row[metric], summary.step
                    )

    def _restore(self, found: MonitorRecords) -> None:
        """The steps a resumed journal holds, as summaries (no analysis is repeated)."""
        layers: dict[int, list[dict[str, Any]]] = {}
        alerts: dict[int, list[Alert]] = {}
        for record in found.records:
            step = int(record["step"])
            if record.get("type") == "layer":
                layers.setdefault(step, []).append(record["row"])
            elif record.get("type") == "alert":
                alerts.setdefault(step, []).append(Alert(**record["row"]))
            elif record.get("type") == "step":
                summary = StepSummary(
                    step,
                    record.get("epoch"),
                    {k: float(v) for k, v in record["row"].items()},
                    tuple(layers.get(step, ())),
                    tuple(alerts.get(step, ())),
                    resumed=True,
                )
                self.history.append(summary)
                self._done[step] = summary

    # -- the end ------------------------------------------------------------------------------

    def wait(self) -> None:
        """Wait for the background analyses submitted so far (re-raising their error).

        In process mode a failed analysis (the worker raised, was killed, or could not start)
        is a :class:`~alphahat.monitor.worker.MonitorWorkerError`.
        """
        if self._worker is not None:
            self._worker.join()

    def close(self) -> None:
        """Finish the pending background analyses and close the journal."""
        try:
            if self._worker is not None:
                self._worker.stop()
                self._worker = None
        finally:
            if self._journal is not None:
                self._journal.close()
                self._journal = None

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def summary_table(self) -> Any:
        """The model means per analysed step as a pandas DataFrame (step, epoch, metrics)."""
        import pandas as pd

        columns = ["step", "epoch", *SUMMARY_METRICS]
        rows = [{"step": s.step, "epoch": s.epoch, **s.means} for s in self.history]
        return pd.DataFrame(rows, columns=columns)


def _snapshot(model: Any, plans: list[TensorPlan], options: AnalysisOptions) -> list[TensorPlan]:
    """The plans again, reading clones of the planned tensors made now (on their device).

    The clones hold the values of this step; the worker reads them (to the host) later.
    """
    from alphahat.sources.torch_sources import ModuleSource

    clones = {name: t.detach().clone() for name, t in planned_tensors(model, plans).items()}
    source = _ClonedSource(ModuleSource(model), clones)
    return [p for p in plan_layers(source, options) if p.status == "analyse"]


class _ClonedSource(WeightSource):
    """A module's tensors as listed by its source, read from clones where there is one."""

    def __init__(self, source: WeightSource, clones: Mapping[str, Any]) -> None:
        self.description = source.description
        self._refs = [
            replace(ref, load=TorchTensorLoader(clones[ref.name])) if ref.name in clones else ref
            for ref in source.tensors()
        ]

    def tensors(self) -> Iterator[TensorRef]:
        """The source's tensors, in its order."""
        return iter(self._refs)


class _Worker:
    """One background thread analysing snapshots in order (at most two waiting)."""

    def __init__(
        self, analyse: Callable[[int, float | None, list[TensorPlan]], StepSummary]
    ) -> None:
        self._analyse = analyse
        self._queue: queue.Queue[tuple[int, float | None, list[TensorPlan]] | None] = queue.Queue(2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="alphahat-monitor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._error is None:
                    self._analyse(*item)
            except BaseException as exc:  # re-raised in the training thread by join/submit
                self._error = exc
            finally:
                self._queue.task_done()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, step: int, epoch: float | None, plans: list[TensorPlan]) -> None:
        self._raise()
        self._queue.put((step, epoch, plans))  # blocks while two snapshots are waiting

    def join(self) -> None:
        self._queue.join()
        self._raise()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._raise()


def monitored_loop(
    monitor: Monitor, batches: Iterable[T], *, start: int = 0, epoch: float | None = None
) -> Iterator[T]:
    """The plain-loop helper: yield each batch; after the loop body, count the step and monitor.

    ``for batch in monitored_loop(monitor, loader): ...`` calls ``monitor.step(step)`` after
    each batch's body with step = ``start`` + batches done, and ends the loop when an alert
    asked to stop (``monitor.should_stop``).
    """
    step = start
    for batch in batches:
        yield batch
        step += 1
        monitor.step(step, epoch=epoch)
        if monitor.should_stop:
            return


__all__ = ["Monitor", "StepSummary", "monitored_loop"]
