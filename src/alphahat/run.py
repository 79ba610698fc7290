"""One analysis run over a model: plan it, analyse each layer as a task, assemble the report.

The science is elsewhere: a layer's analysis is :func:`alphahat.pipeline.analyse_layer`, the
model walk :mod:`alphahat.pipeline.walk`. The running is elsewhere too: executors, the
journal, background hashing and read-ahead, the progress bar are :mod:`alphahat.engine`
pieces that know nothing about layers. This module connects them:

1. plan every tensor (:func:`~alphahat.pipeline.walk.plan_layers`);
2. take the rows a journal of the same run already holds; a plan that failed gets its row
   without a task;
3. run one :class:`LayerTask` per pending layer on the executor the execution options choose
   (in this process with the next tensor read ahead; local worker processes; a Dask
   cluster), each in its own error scope (:func:`run_layer_task`): a layer that cannot be
   read or analysed is a ``failed`` row with the reason, and the others are unaffected;
4. append each finished row to the journal before anything else happens, report progress;
5. assemble the :class:`~alphahat.report.Report` (rows, coverage, options, provenance with
   the file hashes computed meanwhile, kept eigenvalues and fits).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from alphahat._version import __version__
from alphahat.engine.executors import SerialExecutor, TaskFailure, blas_limit, make_executor
from alphahat.engine.hashing import FileHashes
from alphahat.engine.progress import progress_bar
from alphahat.engine.tasks import FailedLoad, LoadedTensor, cached
from alphahat.errors import SourceError
from alphahat.layers import TensorPlan
from alphahat.metrics import NAN
from alphahat.pipeline.core import LAYER_ERRORS, LayerResult, error_reason, failed_row
from alphahat.pipeline.options import AnalysisOptions, ExecutionOptions
from alphahat.pipeline.walk import (
    LoadedLayer,
    analyse_loaded,
    load_layer,
    load_planned,
    plan_layers,
    spectrum_device,
)
from alphahat.report import Report, build_provenance
from alphahat.sources import SourceSpec, WeightSource


@dataclass(frozen=True)
class LayerTask:
    """One layer's work, picklable, for this process, another one or a Dask worker.

    Exactly one of: ``loaded`` (the layer already read, in this process), ``plan`` (with
    the values attached to its loader, for a local worker and an in-memory model) or
    ``source`` (the worker re-opens the model, headers only, plans it with the same
    ``options`` and reads the one tensor of layer (``layer_id``, ``name``): no weights
    travel with the task).
    """

    options: AnalysisOptions
    layer_id: int | None
    name: str
    source: SourceSpec | None = None
    plan: TensorPlan | None = None
    loaded: LoadedLayer | None = None


@dataclass(frozen=True)
class LayerOutcome:
    """What a task sends back: the layer's metric columns and, when kept, its result."""

    row: dict[str, Any]
    result: LayerResult | None = None


def _reopened_plans(spec: SourceSpec, options: AnalysisOptions) -> dict[tuple[Any, str], Any]:
    source = spec.open()  # kept open in the cache: its tensors load lazily
    return {(p.layer_id, p.ref.name): p for p in plan_layers(source, options)}


def _task_layer(task: LayerTask) -> LoadedLayer:
    """The task's layer, loaded (raises when it cannot be)."""
    if task.loaded is not None:
        return task.loaded
    plan = task.plan
    if plan is None:
        if task.source is None:
            raise ValueError("a layer task needs a loaded layer, a plan or a source")
        spec, options = task.source, task.options
        plans = cached(("plans", spec, repr(options)), lambda: _reopened_plans(spec, options))
        plan = plans.get((task.layer_id, task.name))
        if plan is None:
            raise SourceError(
                f"{spec.path}: layer {task.name!r} not found when a worker re-opened the model "
                "(did the file change during the run?)"
            )
    return load_layer(plan)


def run_layer_task(task: LayerTask) -> LayerOutcome:
    """The outcome of one layer: a failed row on any error, never an exception.

    The unit of work of every executor (module level, so that it pickles by reference).
    """
    try:
        result = analyse_loaded(_task_layer(task), task.options)
    except Exception as exc:  # one layer never loses the others' results
        return LayerOutcome(failed_row(error_reason(exc)))
    keep = task.options.keep_fits or task.options.keep_eigenvalues
    return LayerOutcome(dict(result.row), result if keep else None)


def _portable_task(
    plan: TensorPlan, options: AnalysisOptions, spec: SourceSpec | None
) -> LayerTask:
    """A task another process can run: by source spec, or with the tensor's values attached."""
    if spec is not None:
        return LayerTask(options, plan.layer_id, plan.ref.name, source=spec)
    loader: Callable[[], Any]
    try:
        loader = LoadedTensor(plan.ref.load())
    except LAYER_ERRORS as exc:
        loader = FailedLoad(error_reason(exc))
    plan = replace(plan, ref=replace(plan.ref, load=loader))
    return LayerTask(options, plan.layer_id, plan.ref.name, plan=plan)


def plan_row(plan: TensorPlan) -> dict[str, Any]:
    """The plan's columns of a layer's row (what it is, before any number is computed)."""
    row: dict[str, Any] = {
        "layer_id": plan.layer_id,
        "name": plan.ref.name,
        "kind": plan.kind or "",
        "shape": "x".join(map(str, plan.ref.shape)),
        "dtype": plan.ref.dtype,
        "note": plan.ref.note,
        "N": plan.N,
        "M": plan.M,
        "Q": plan.N / plan.M if plan.M else NAN,
        "num_matrices": plan.num_matrices,
        "num_evals": plan.num_evals,
    }
    if plan.slice_id is not None:
        row["slice_id"] = plan.slice_id
    return row


# ---------------------------------------------------------------------------------------------
# the journal of a run


def _journal_key(source: WeightSource, options: AnalysisOptions) -> dict[str, Any]:
    """What the rows of a journal depend on: version, options and input files (size, mtime)."""
    files: list[list[Any]] = []
    for name in source.files:
        try:
            info = os.stat(name)
            files.append([str(Path(name).resolve()), info.st_size, info.st_mtime_ns])
        except OSError:
            files.append([str(name), None, None])
    return {
        "alphahat_version": __version__,
        "source": source.description if not files else "",
        "files": files,
        "options": options.rows_key(),
    }


def _resumed_records(
    path: Path, key: dict[str, Any], resume: bool | None, todo: Sequence[TensorPlan]
) -> tuple[dict[int, dict[str, Any]], str]:
    """The journal's records of ``todo`` (by index), and why it was started over ('' if not)."""
    from alphahat.engine.journal import JournalError, key_differences, read_journal

    if not path.exists() or resume is False:
        return {}, ""
    try:
        contents = read_journal(path)
        differences = key_differences(contents.key, key)
    except JournalError as exc:
        if resume:
            raise
        return {}, str(exc)
    if differences and resume:
        raise JournalError(
            f"{path}: cannot resume: it was written by a run with a different "
            f"{', '.join(differences)} (start over without --resume, or delete it)"
        )
    if differences:
        return {}, f"it was written by a run with a different {', '.join(differences)}"
    index: dict[tuple[Any, Any], int] = {
        (plan.layer_id, plan.ref.name): i for i, plan in enumerate(todo)
    }
    kept: dict[int, dict[str, Any]] = {}
    for record in contents.records:
        i = index.get((record.get("layer_id"), record.get("name")))
        if i is not None and not record.get("transient"):
            kept[i] = record
    return kept, ""


def _open_journal(
    execution: ExecutionOptions,
    source: WeightSource,
    options: AnalysisOptions,
    todo: Sequence[TensorPlan],
    info: dict[str, Any],
) -> tuple[Any, dict[int, dict[str, Any]]]:
    """The journal to append to, and the rows of ``todo`` (by index) it already holds."""
    if execution.journal is None:
        return None, {}
    from alphahat.engine.journal import Journal, JournalError

    path = Path(execution.journal)
    key = _journal_key(source, options)
    info["journal"] = str(path)
    kept, restarted = _resumed_records(path, key, execution.resume, todo)
    if restarted:
        info["journal_restarted"] = restarted
    try:
        journal = Journal.create(path, key, [kept[i] for i in sorted(kept)])
    except OSError as exc:
        raise JournalError(f"{path}: cannot write the journal: {exc.strerror or exc}") from exc
    info["resumed_layers"] = len(kept)
    return journal, {i: record["row"] for i, record in kept.items()}


# ---------------------------------------------------------------------------------------------
# the run


@dataclass
class _Run:
    """The state of one run: its plans, the rows so far, what was kept."""

    source: WeightSource
    options: AnalysisOptions
    execution: ExecutionOptions
    plans: list[TensorPlan]
    todo: list[TensorPlan]
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)
    results: dict[int, LayerResult] = field(default_factory=dict)
    pending: list[int] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    journal: Any = None

    def record(self, k: int, outcome: LayerOutcome | TaskFailure) -> TensorPlan:
        """Store the outcome of pending task ``k`` (journal first); its plan."""
        i = self.pending[k]
        plan = self.todo[i]
        transient = isinstance(outcome, TaskFailure) and outcome.transient
        if isinstance(outcome, TaskFailure):
            outcome = LayerOutcome(failed_row(outcome.reason))
        self.rows[i] = {**plan_row(plan), **outcome.row}
        if outcome.result is not None:
            self.results[i] = outcome.result
        if self.journal is not None:  # durable before anything else happens
            self.journal.append(
                {"layer_id": plan.layer_id, "name": plan.ref.name, "transient": transient,
                 "row": self.rows[i]}
            )  # fmt: skip
        return plan

    def tasks(self, in_process: bool, reopen: SourceSpec | None) -> Iterator[LayerTask]:
        """The pending layers' tasks (in this process: each layer read ahead of its turn)."""
        if in_process:
            layers = load_planned(
                (self.todo[i] for i in self.pending),
                read_ahead=True,
                device=spectrum_device(self.options),
            )
            for layer in layers:
                yield LayerTask(self.options, layer.layer_id, layer.name, loaded=layer)
                del layer  # before the next read: at most two tensors in memory
        else:
            for i in self.pending:
                yield _portable_task(self.todo[i], self.options, reopen)


def _start(source: WeightSource, options: AnalysisOptions, execution: ExecutionOptions) -> _Run:
    """Plan the run; take the journal's rows; give plans that failed their row."""
    plans = plan_layers(source, options)
    todo = [p for p in plans if p.status != "skipped"]
    run = _Run(source, options, execution, plans, todo)
    run.journal, run.rows = _open_journal(execution, source, options, todo, run.info)
    for i, plan in enumerate(todo):
        if i in run.rows:
            continue
        if plan.status == "failed":
            run.rows[i] = {**plan_row(plan), **failed_row(plan.reason)}
        else:
            run.pending.append(i)
    return run


def _execute(run: _Run, reopen: SourceSpec | None) -> None:
    """Run every pending task on the chosen executor, recording each outcome as it comes."""
    execution = run.execution
    if execution.scheduler is not None and reopen is None:
        raise ValueError(
            "a Dask scheduler needs the model as a path that its workers can open (they "
            "read their own tensors); got an in-memory model"
        )
    executor, finish, run.info["executor"] = make_executor(
        workers=execution.workers,
        scheduler=execution.scheduler,
        timeout=execution.layer_timeout,
        threads=execution.blas_threads,
        preload=("alphahat.run",),
    )
    in_process = isinstance(executor, SerialExecutor)
    total = len(run.todo)
    done = total - len(run.pending)
    callback = execution.progress if callable(execution.progress) else None
    limit = blas_limit(execution.blas_threads) if in_process else blas_limit(None)
    try:
        with limit, progress_bar(execution.progress is True, total, done) as bar:
            report = callback or bar
            if report is not None:
                report(done, total, "")
            for k, outcome in executor.map_unordered(run_layer_task, run.tasks(in_process, reopen)):
                plan = run.record(k, outcome)
                done += 1
                if report is not None:
                    report(done, total, plan.ref.name)
    finally:
        finish()


def _report(run: _Run, hashes: dict[str, str]) -> Report:
    """The report of a finished run."""
    options, todo = run.options, run.todo
    kept = sorted(run.results)
    eigenvalues = {}
    if options.keep_eigenvalues or options.keep_fits:
        eigenvalues = {todo[i].ref.name: run.results[i].eigenvalues for i in kept}
    fits = {todo[i].ref.name: run.results[i] for i in kept} if options.keep_fits else {}
    report = Report.from_rows(
        [run.rows[i] for i in range(len(todo))],
        plans=run.plans,
        options=options.as_dict(),
        provenance=build_provenance(run.source, options.as_dict(), hashes=hashes),
        include_embeddings=options.include_embeddings,
        eigenvalues=eigenvalues,
        fits=fits,
    )
    # LAPACK's rounding depends on the BLAS threads each layer ran with (not on the workers);
    # None: the default (all cores serially, cores // workers in workers)
    report.provenance["blas_threads_per_layer"] = run.execution.blas_threads
    report.run_info.update(run.info)
    return report


def run_analysis(
    source: WeightSource,
    options: AnalysisOptions,
    *,
    execution: ExecutionOptions | None = None,
    reopen: SourceSpec | None = None,
    file_hashes: Mapping[str, str] | None = None,
) -> Report:
    """Analyse every planned layer of an open source (see :func:`alphahat.analyze`).

    ``reopen`` says how another process can open the same source (needed by a Dask cluster;
    without it local workers receive each tensor's values with its task). ``file_hashes``:
    SHA-256 of the source's files already computed by the caller (``str(path)`` → hex), so
    they are not read a second time for the provenance; files it lacks are hashed as usual.
    """
    execution = execution or ExecutionOptions()
    started = time.perf_counter()
    run = _start(source, options, execution)
    hashing = FileHashes(source.files, known=file_hashes)  # while the layers compute
    try:
        _execute(run, reopen)
    except BaseException:
        hashing.cancel()  # a failed or interrupted run does not wait for it
        raise
    finally:
        if run.journal is not None:
            run.journal.close()
    run.info["seconds"] = time.perf_counter() - started
    return _report(run, hashing.result())


__all__ = ["LayerOutcome", "LayerTask", "plan_row", "run_analysis", "run_layer_task"]
