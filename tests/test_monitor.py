"""The α monitor: rows equal alphahat.analyze of saved weights, resumable journal, alerts.

A 64 → 48 → 10 MLP trains on scikit-learn's digits for a few hundred steps (about a second on
one core) with the plain-loop helper, in the background modes (a worker thread, a worker
process), with the Hugging Face Trainer callback and with the Lightning callback; at every
monitored step a copy of the state dict is saved, and the journal's rows must equal
``alphahat.analyze`` of those copies.
"""

from __future__ import annotations

import importlib.util
import math
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

import alphahat  # noqa: E402
from alphahat.engine.journal import JournalError  # noqa: E402
from alphahat.monitor import (  # noqa: E402
    AlphaAlertWarning,
    AlphaBelow,
    AlphaHatJump,
    AlphaOutside,
    Monitor,
    MonitorWorkerError,
    NewTraps,
    monitored_loop,
    read_monitor_journal,
)
from alphahat.monitor.alerts import check_rules  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import monitor_training as training  # noqa: E402

STEPS = 200
EVERY = 50
#: the frameworks' own loops cost more per step: fewer steps there
FRAMEWORK_STEPS = 120
FRAMEWORK_EVERY = 40
#: the background modes, tested alike
BACKGROUNDS = ["thread", "process"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


#: the columns compared between the journal and analyze (every number of the row)
COLUMNS = [
    "layer_id", "name", "N", "M", "alpha", "alpha_weighted", "D", "sigma", "xmin", "xmax",
    "num_pl_spikes", "lambda_max", "log_spectral_norm", "norm", "log_norm", "log_alpha_norm",
    "stable_rank", "entropy", "matrix_rank", "status",
]  # fmt: skip


#: the journal formats, by suffix (Parquet needs pyarrow)
FORMATS = [
    ".jsonl",
    pytest.param(
        ".parquet",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("pyarrow") is None, reason="needs pyarrow"
        ),
    ),
]


def _train_plain(monitor: Monitor, snapshots: dict[int, dict[str, Any]], model: Any) -> int:
    """Train with monitored_loop; keep a copy of the weights at each monitored step."""
    x, y = training.digits()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    batches = (torch.from_numpy(training.batch_indices(s, len(x))) for s in range(STEPS))
    done = 0
    for rows in monitored_loop(monitor, batches):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x[rows]), y[rows]).backward()
        optimizer.step()
        done += 1
        if done % EVERY == 0:
            snapshots[done] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return done


def _assert_rows_equal_analyze(journal: Path, snapshots: dict[int, dict[str, Any]]) -> None:
    records = read_monitor_journal(journal)
    assert records.steps() == sorted(snapshots)
    rows = records.layer_rows()
    for step, weights in snapshots.items():
        expected = alphahat.analyze(weights).details
        expected = expected[expected.status != "skipped"]
        got = [r for r in rows if r["step"] == step]
        assert len(got) == len(expected) == 2
        for column in COLUMNS:
            assert [r[column] for r in got] == expected[column].tolist(), (step, column)


@pytest.mark.parametrize("suffix", FORMATS)
def test_plain_loop_rows_equal_analyze_of_saved_weights(tmp_path: Path, suffix: str) -> None:
    model = training.mlp()
    snapshots: dict[int, dict[str, Any]] = {}
    journal = tmp_path / f"j{suffix}"
    with Monitor(model, journal, every_steps=EVERY, alerts=()) as monitor:
        assert _train_plain(monitor, snapshots, model) == STEPS
        means = monitor.summary_table()
    _assert_rows_equal_analyze(journal, snapshots)
    # the step's summary is the mean over the layers (independently: numpy over the rows)
    rows = read_monitor_journal(journal).layer_rows()
    for step, alpha in zip(means["step"], means["alpha"], strict=True):
        assert alpha == pytest.approx(np.mean([r["alpha"] for r in rows if r["step"] == step]))
    # α falls as the MLP trains (HT-SR: training makes the ESD heavier tailed)
    assert means["alpha"].iloc[-1] < means["alpha"].iloc[0]


@pytest.mark.parametrize("background", BACKGROUNDS)
def test_background_mode_analyses_the_weights_of_its_step(tmp_path: Path, background: str) -> None:
    model = training.mlp()
    snapshots: dict[int, dict[str, Any]] = {}
    path = tmp_path / "j.jsonl"
    monitor = Monitor(model, path, every_steps=EVERY, alerts=(), background=background)
    with monitor:
        _train_plain(monitor, snapshots, model)
    # leaving the with block waited for every pending step
    assert [s.step for s in monitor.history] == sorted(snapshots)
    _assert_rows_equal_analyze(path, snapshots)
    # the journal's step records are the summaries' means, in step order
    journaled = read_monitor_journal(path).step_rows()
    assert [r["step"] for r in journaled] == sorted(snapshots)
    for record, summary in zip(journaled, monitor.history, strict=True):
        assert {k: record[k] for k in summary.means} == dict(summary.means)


@pytest.mark.parametrize("background", BACKGROUNDS)
def test_background_mode_reads_the_snapshot_not_the_live_weights(
    tmp_path: Path, background: str
) -> None:
    import threading

    model = training.mlp()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    changed = threading.Event()
    path = tmp_path / "j.jsonl"
    with Monitor(model, path, every_steps=1, alerts=(), background=background) as monitor:
        if background == "thread":
            analyse = monitor._worker._analyse  # type: ignore[union-attr]

            def after_the_change(*args: Any) -> Any:  # the worker starts once the weights changed
                changed.wait(timeout=30)
                return analyse(*args)

            monitor._worker._analyse = after_the_change  # type: ignore[union-attr]
        # process: the call copies the tensors into shared memory before it returns
        assert monitor.step(1) is None
        with torch.no_grad():
            model[0].weight.mul_(3.0).add_(torch.randn(48, 64))
        changed.set()
    _assert_rows_equal_analyze(path, {1: before})


@pytest.mark.parametrize("background", BACKGROUNDS)
def test_background_alerts_warn_journal_and_stop_the_loop(tmp_path: Path, background: str) -> None:
    model = training.mlp()
    rule = AlphaBelow(threshold=100.0, stop=True)  # every layer fires
    path = tmp_path / "j.jsonl"
    monitor = Monitor(model, path, every_steps=3, alerts=(rule,), background=background)
    with pytest.warns(AlphaAlertWarning) as caught:  # issued by the receiving thread
        done = sum(1 for _ in monitored_loop(monitor, range(60)))
        monitor.close()
    messages = [str(w.message) for w in caught]
    assert messages[0].startswith("step 3: layer 0.weight: alpha = ") and "< 100" in messages[0]
    # steps 3, 6 and 9 may be submitted before step 3's stop request comes back; step 12 waits
    # for a free place, so the loop ends there at the latest
    assert monitor.should_stop and 3 <= done <= 12
    alerts = read_monitor_journal(path).alert_rows()
    assert [(a["step"], a["layer"]) for a in alerts[:2]] == [(3, "0.weight"), (3, "2.weight")]
    assert {a["step"] for a in alerts} == {s.step for s in monitor.history}


class _BrokenWriter:
    def add_scalar(self, *args: Any) -> None:
        raise OSError("disk full")


@pytest.mark.parametrize("background", BACKGROUNDS)
def test_background_error_is_raised_at_the_next_call(background: str) -> None:
    """A step that fails after its analysis (here the writer) raises in the training thread."""
    monitor = Monitor(
        training.mlp(), every_steps=1, alerts=(), writer=_BrokenWriter(), background=background
    )
    assert monitor.step(1) is None
    with pytest.raises(OSError, match="disk full"):
        monitor.wait()
    monitor.writer = None
    monitor.step(2)
    monitor.close()  # no error left: it was raised once
    assert [s.step for s in monitor.history] == [1, 2]


def _monitor_workers() -> list[Any]:
    import multiprocessing

    return [p for p in multiprocessing.active_children() if p.name == "alphahat-worker"]


def test_process_mode_killed_worker_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    model = training.mlp()
    monitor = Monitor(model, path, every_steps=1, alerts=(), background="process", blas_threads=1)
    monitor.step(1)
    monitor.wait()
    (worker,) = _monitor_workers()
    os.kill(worker.pid, signal.SIGSTOP)  # the next step is sent to a worker that cannot run it
    monitor.step(2)
    deadline = time.monotonic() + 30
    while not monitor._worker._sent and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.01)  # until the receiving thread took the job (and sent it right after)
    time.sleep(0.2)
    os.kill(worker.pid, signal.SIGKILL)
    with pytest.raises(MonitorWorkerError, match=r"step 2 .*worker process.*SIGKILL"):
        monitor.wait()
    # a worker killed between steps: the next step says so (the one sent to it is not analysed)
    monitor.step(3)
    monitor.wait()
    (worker,) = _monitor_workers()  # a new worker took over
    os.kill(worker.pid, signal.SIGKILL)
    worker.join(timeout=10)
    monitor.step(4)
    with pytest.raises(MonitorWorkerError, match=r"worker process .*step\(s\) 4"):
        monitor.wait()
    monitor.step(5)
    monitor.close()
    assert read_monitor_journal(path).steps() == [1, 3, 5]
    assert not _monitor_workers()  # close ended the worker


def test_process_mode_blocks_beyond_two_waiting_snapshots(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "j.jsonl"
    monitor = Monitor(training.mlp(), path, every_steps=1, alerts=(), background="process")
    monitor.step(1)
    monitor.wait()
    (worker,) = _monitor_workers()
    os.kill(worker.pid, signal.SIGSTOP)
    try:
        for step in (2, 3, 4):  # one sent to the stopped worker, two waiting
            monitor.step(step)
        fifth = threading.Thread(target=monitor.step, args=(5,))
        fifth.start()
        fifth.join(timeout=0.5)
        assert fifth.is_alive()  # blocked: no room for a fourth snapshot
    finally:
        os.kill(worker.pid, signal.SIGCONT)
    fifth.join(timeout=60)
    assert not fifth.is_alive()
    blocks = monitor._worker._blocks  # type: ignore[union-attr]
    assert len(blocks) == 3  # reused from step to step
    monitor.close()
    assert read_monitor_journal(path).steps() == [1, 2, 3, 4, 5]
    assert blocks == []  # close removed them


def test_process_mode_shared_memory_is_checked_and_grows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alphahat.monitor import worker

    path = tmp_path / "j.jsonl"
    model = training.mlp()
    monitor = Monitor(model, path, every_steps=1, alerts=(), background="process")
    with monkeypatch.context() as patch:  # a container's small /dev/shm: refused, not a SIGBUS
        patch.setattr(
            worker.os, "statvfs", lambda _: os.statvfs_result((4096, 4096, 0, 0, 2) + (0,) * 5)
        )
        with pytest.raises(
            MonitorWorkerError,
            match=r"needs [\d.]+ KiB of shared memory .* /dev/shm has 8\.0 KiB free",
        ):
            monitor.step(1)
    monitor.step(2)
    monitor.wait()
    (small,) = monitor._worker._blocks  # type: ignore[union-attr]
    with torch.no_grad():
        model[2] = torch.nn.Linear(48, 300)  # a larger model: the free block is too small
    monitor.step(3)
    monitor.close()
    (step_2, step_3) = [s.rows for s in monitor.history]
    assert [r["N"] for r in step_3] == [64, 300] and [r["N"] for r in step_2] == [64, 48]
    expected = alphahat.analyze({k: v.clone() for k, v in model.state_dict().items()}).details
    assert [r["alpha"] for r in step_3] == expected[expected.status != "skipped"].alpha.tolist()
    assert small.size < 300 * 48 * 4


def test_process_mode_bfloat16_rows_equal_analyze(tmp_path: Path) -> None:
    model = training.mlp().to(torch.bfloat16)
    path = tmp_path / "j.jsonl"
    with Monitor(model, path, every_steps=1, alerts=(), background="process") as monitor:
        monitor.step(1)
    _assert_rows_equal_analyze(path, {1: {k: v.clone() for k, v in model.state_dict().items()}})
    assert {r["dtype"] for r in read_monitor_journal(path).layer_rows()} == {"bfloat16"}


@pytest.mark.parametrize("background", BACKGROUNDS)
def test_background_resume_loses_and_repeats_nothing(tmp_path: Path, background: str) -> None:
    path = tmp_path / "j.jsonl"
    model = training.mlp()
    with Monitor(model, path, every_steps=1, alerts=(), background=background) as monitor:
        for step in (1, 2, 3):
            monitor.step(step)
    first = read_monitor_journal(path)
    with Monitor(model, path, every_steps=1, alerts=(), background=background) as monitor:
        for step in (2, 3, 4, 5):  # resumed from a checkpoint of step 1
            summary = monitor.step(step)
            assert (summary is not None and summary.resumed) == (step <= 3)
    records = read_monitor_journal(path)
    assert records.steps() == [1, 2, 3, 4, 5]
    keys = [(r["step"], r["name"]) for r in records.layer_rows()]
    assert len(keys) == len(set(keys)) == 2 * 5
    assert records.layer_rows()[:6] == first.layer_rows()


def test_background_argument_is_checked() -> None:
    model = training.mlp()
    with pytest.raises(ValueError, match="background must be False, True, 'thread' or 'process'"):
        Monitor(model, background="proces")
    with pytest.raises(ValueError, match="blas_threads .* needs background='process'"):
        Monitor(model, background="thread", blas_threads=2)
    with pytest.raises(ValueError, match="blas_threads must be an integer ≥ 1; got 0"):
        Monitor(model, background="process", blas_threads=0)


@pytest.mark.slow
def test_hugging_face_trainer_callback(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    from alphahat.monitor.integrations import trainer_callback

    x, y = training.digits()

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = training.mlp()

        def forward(self, inputs: Any, labels: Any = None) -> dict[str, Any]:
            logits = self.net(inputs)
            return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}

    snapshots: dict[int, dict[str, Any]] = {}

    class Snapshot(transformers.TrainerCallback):  # type: ignore[misc]
        def on_step_end(
            self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any
        ) -> None:
            if state.global_step % FRAMEWORK_EVERY == 0:
                snapshots[state.global_step] = {
                    k: v.detach().clone() for k, v in model.state_dict().items()
                }

    model = Net()
    data = [{"inputs": x[i], "labels": y[i]} for i in range(len(x))]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=training.BATCH,
        max_steps=FRAMEWORK_STEPS, learning_rate=0.05, logging_steps=10_000, save_strategy="no",
        report_to=[], use_cpu=True, disable_tqdm=True, seed=0, dataloader_num_workers=0,
    )  # fmt: skip
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data)
    monitor = Monitor(model, tmp_path / "j.jsonl", every_steps=FRAMEWORK_EVERY, alerts=())
    trainer.add_callback(Snapshot())
    trainer.add_callback(trainer_callback(monitor, trainer))
    trainer.train()
    monitor.close()
    _assert_rows_equal_analyze(tmp_path / "j.jsonl", snapshots)
    # the means went through Trainer.log into the trainer's log history
    logged = [e for e in trainer.state.log_history if "alphahat/mean_alpha" in e]
    assert [e["step"] for e in logged] == sorted(snapshots)
    summaries = {s.step: s.means["alpha"] for s in monitor.history}
    assert [e["alphahat/mean_alpha"] for e in logged] == [summaries[s] for s in sorted(snapshots)]


def test_hugging_face_stop_request_stops_training(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    from alphahat.monitor.integrations import trainer_callback

    model = training.mlp()
    monitor = Monitor(model, every_steps=5, alerts=(AlphaBelow(threshold=100.0, stop=True),))
    callback = trainer_callback(monitor)
    state, control = transformers.TrainerState(), transformers.TrainerControl()
    state.global_step = 4
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        callback.on_step_end(None, state, control)
        assert not control.should_training_stop and not caught
        state.global_step = 5
        callback.on_step_end(None, state, control)
    assert control.should_training_stop and control.should_log
    assert all(issubclass(w.category, AlphaAlertWarning) for w in caught) and len(caught) == 2
    logs: dict[str, float] = {"loss": 1.0}
    callback.on_log(None, state, control, logs=logs)
    assert logs["alphahat/mean_alpha"] == monitor.history[-1].means["alpha"]
    # the epoch schedule
    by_epoch = Monitor(model, every_steps=None, every_epochs=2, alerts=())
    callback, control = trainer_callback(by_epoch), transformers.TrainerControl()
    state.global_step, state.epoch = 30, 1.0
    callback.on_epoch_end(None, state, control)
    assert not by_epoch.history and not control.should_log
    state.global_step, state.epoch = 60, 2.0
    callback.on_epoch_end(None, state, control)
    assert [(s.step, s.epoch) for s in by_epoch.history] == [(60, 2)] and control.should_log


def test_lightning_callback(tmp_path: Path) -> None:
    pl = pytest.importorskip("lightning.pytorch")
    from alphahat.monitor.integrations import lightning_callback

    x, y = training.digits()

    class Module(pl.LightningModule):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.net = training.mlp()

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            inputs, labels = batch
            return torch.nn.functional.cross_entropy(self.net(inputs), labels)

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)

    snapshots: dict[int, dict[str, Any]] = {}

    class Snapshot(pl.Callback):  # type: ignore[misc]
        def on_train_batch_end(self, trainer: Any, module: Any, *args: Any) -> None:
            if trainer.global_step % FRAMEWORK_EVERY == 0:
                snapshots[trainer.global_step] = {
                    k: v.detach().clone() for k, v in module.state_dict().items()
                }

    module = Module()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=training.BATCH, shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    monitor = Monitor(module, tmp_path / "j.jsonl", every_steps=FRAMEWORK_EVERY, alerts=())
    trainer = pl.Trainer(
        max_steps=FRAMEWORK_STEPS, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
        callbacks=[Snapshot(), lightning_callback(monitor)],
    )  # fmt: skip
    trainer.fit(module, loader)
    monitor.close()
    _assert_rows_equal_analyze(tmp_path / "j.jsonl", snapshots)
    assert trainer.callback_metrics["alphahat/mean_alpha"].item() == pytest.approx(
        monitor.history[-1].means["alpha"]
    )


def test_lightning_stop_request_sets_should_stop() -> None:
    pytest.importorskip("lightning.pytorch")
    from alphahat.monitor.integrations import lightning_callback

    model = training.mlp()
    monitor = Monitor(model, every_steps=1, alerts=(AlphaOutside(6.0, 7.0, stop=True),), warn=False)

    class FakeTrainer:
        global_step = 1
        current_epoch = 0
        should_stop = False

    class FakeModule:
        logged: dict[str, float] = {}

        def log_dict(self, values: dict[str, float], **kwargs: Any) -> None:
            self.logged.update(values)

    trainer, module = FakeTrainer(), FakeModule()
    lightning_callback(monitor).on_train_batch_end(trainer, module, None, None, 0)
    assert trainer.should_stop
    assert module.logged["alphahat/mean_alpha"] == monitor.history[-1].means["alpha"]


def test_callbacks_wait_for_background_analyses_before_a_checkpoint() -> None:
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("lightning.pytorch")
    from alphahat.monitor.integrations import lightning_callback, trainer_callback

    monitor = Monitor(training.mlp(), every_steps=1, alerts=(), background="thread")
    waits: list[int] = []
    monitor.wait = lambda: waits.append(len(monitor._submitted))  # type: ignore[method-assign]
    callback = trainer_callback(monitor)
    state, control = transformers.TrainerState(), transformers.TrainerControl()
    state.global_step = 1
    callback.on_step_end(None, state, control)
    assert waits == []  # no checkpoint after this step
    state.global_step, control.should_save = 2, True  # as the trainer's DefaultFlowCallback sets
    callback.on_step_end(None, state, control)
    assert waits == [2]  # after step 2 was submitted, before the checkpoint
    lightning_callback(monitor).on_save_checkpoint(None, None, {})
    assert waits == [2, 2]
    monitor.close()


def _steps_in(path: Path) -> int:
    try:
        if path.is_dir():  # a Parquet journal: one part per complete step
            return sum(1 for p in path.iterdir() if p.name.startswith("part-"))
        return path.read_text().count('"type": "step"')
    except OSError:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("suffix", "background"),
    [(FORMATS[0], ""), (FORMATS[1], ""), (FORMATS[0], "process")],
    ids=["jsonl", "parquet", "jsonl-process"],
)
def test_killed_run_resumes_without_losing_or_duplicating_rows(
    tmp_path: Path, suffix: str, background: str
) -> None:
    script = Path(training.__file__)
    env = {**os.environ, "PYTHONPATH": str(Path(alphahat.__file__).parents[1])}
    steps, every = "120", "10"
    data = tmp_path / "digits.npz"
    training.save_digits(data)

    def run(journal: Path, checkpoint: Path, delay: str = "0") -> subprocess.Popen[bytes]:
        command = [sys.executable, str(script), str(journal), str(checkpoint), steps, every, delay]
        command += [str(data), background] if background else [str(data)]
        return subprocess.Popen(command, env=env, stderr=subprocess.PIPE)

    journal, checkpoint = tmp_path / f"killed{suffix}", tmp_path / "killed.pt"
    process = run(journal, checkpoint, delay="0.01")
    deadline = time.monotonic() + 120
    while _steps_in(journal) < 5 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = _steps_in(journal)
    assert 5 <= killed_at < 12, "the run was not killed mid-way"
    assert checkpoint.exists()
    assert run(journal, checkpoint).wait() == 0

    clean = tmp_path / "clean.jsonl"  # the same run, uninterrupted (here, in this process)
    training.main(str(clean), str(tmp_path / "clean.pt"), int(steps), int(every), data=str(data))
    resumed, expected = read_monitor_journal(journal), read_monitor_journal(clean)
    assert resumed.steps() == expected.steps() == list(range(10, 121, 10))
    keys = [(r["step"], r["name"]) for r in resumed.layer_rows()]
    assert len(keys) == len(set(keys)) == 2 * 12
    assert resumed.layer_rows() == expected.layer_rows()
    assert resumed.step_rows() == expected.step_rows()
    assert repr(resumed.records) == repr(expected.records)  # bit for bit, NaN included


def test_torn_last_record_is_dropped_and_the_step_analysed_again(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    model = training.mlp()
    with Monitor(model, path, every_steps=1, alerts=()) as monitor:
        first = monitor.step(1)
        monitor.step(2)
    lines = path.read_text().splitlines(keepends=True)
    # cut step 2 short: its first layer record whole, the second torn, no step record
    path.write_text("".join(lines[:5]) + lines[5][:20])
    assert read_monitor_journal(path).steps() == [1]
    assert read_monitor_journal(path).dropped == 1
    with Monitor(model, path, every_steps=1, alerts=()) as monitor:
        again = monitor.step(1)
        assert again is not None and again.resumed and again.means == first.means  # type: ignore[union-attr]
        redone = monitor.step(2)
        assert redone is not None and not redone.resumed
    records = read_monitor_journal(path)
    assert records.steps() == [1, 2] and records.dropped == 0
    assert len(records.layer_rows()) == 4


@pytest.mark.parametrize("suffix", FORMATS)
def test_a_journal_of_other_options_is_refused(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"j{suffix}"
    model = training.mlp()
    with Monitor(model, path, every_steps=1, alerts=()) as monitor:
        monitor.step(1)
    with pytest.raises(JournalError, match=r"j\.(jsonl|parquet): written by a different monitor "
                       r"\(option min_evals differ\)"):  # fmt: skip
        Monitor(model, path, options={"min_evals": 3})
    assert read_monitor_journal(path).steps() == [1]  # untouched
    Monitor(model, path, options={"min_evals": 3}, resume=False).close()  # started over
    records = read_monitor_journal(path)
    assert records.key["options"]["min_evals"] == 3 and records.steps() == []


def _row(
    name: str, alpha: float, alpha_hat: float = 1.0, traps: int | None = None
) -> dict[str, Any]:
    row: dict[str, Any] = {"name": name, "status": "fitted", "alpha": alpha}
    row["alpha_weighted"] = alpha_hat
    if traps is not None:
        row["num_traps"] = traps
    return row


def test_alert_rules() -> None:
    now = [_row("a", 1.5, 3.0, 2), _row("b", 3.0, 1.0, 1), _row("c", 7.0, 0.2, 0)]
    before = [_row("a", 2.5, 1.5, 0), _row("b", 3.1, 0.9, 1), _row("c", math.nan, 0.1, 0)]
    below = check_rules([AlphaBelow()], 9, now, before)
    assert [(a.layer, a.value) for a in below] == [("a", 1.5)] and below[0].step == 9
    outside = check_rules([AlphaOutside()], 9, now, before)
    assert [a.layer for a in outside] == ["a", "c"]
    jump = check_rules([AlphaHatJump(1.0)], 9, now, before)
    assert [(a.layer, a.value) for a in jump] == [("a", 1.5)]
    traps = check_rules([NewTraps()], 9, now, before)
    assert [(a.layer, a.value) for a in traps] == [("a", 2.0)]
    assert check_rules([AlphaBelow()], 1, [{**now[0], "status": "failed"}], []) == []
    with pytest.raises(ValueError, match="low < high"):
        AlphaOutside(6.0, 2.0)


def test_alert_warns_logs_journals_and_stops_the_loop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = training.mlp()
    rule = AlphaBelow(threshold=100.0, stop=True)  # every layer fires
    monitor = Monitor(model, tmp_path / "j.jsonl", every_steps=3, alerts=(rule,))
    with pytest.warns(AlphaAlertWarning, match=r"step 3: layer [02]\.weight: alpha = .* < 100"):
        done = sum(1 for _ in monitored_loop(monitor, range(50)))
    monitor.close()
    assert done == 3 and monitor.should_stop
    assert "alpha = " in caplog.text
    alerts = read_monitor_journal(tmp_path / "j.jsonl").alert_rows()
    assert [(a["step"], a["layer"], a["rule"]) for a in alerts] == [
        (3, "0.weight", "alpha_below"),
        (3, "2.weight", "alpha_below"),
    ]
    # a restarted run that reaches step 3 again (from an older checkpoint) is asked to stop too
    resumed = Monitor(model, tmp_path / "j.jsonl", every_steps=3, alerts=(rule,))
    assert sum(1 for _ in monitored_loop(resumed, range(50))) == 3 and resumed.should_stop
    assert resumed.history[-1].resumed
    resumed.close()


def test_new_traps_needs_randomize() -> None:
    with pytest.raises(ValueError, match="randomize=True"):
        Monitor(training.mlp(), alerts=(NewTraps(),))
    monitor = Monitor(
        training.mlp(), every_steps=1, alerts=(NewTraps(),), options={"randomize": True}
    )
    summary = monitor.step(1)
    assert summary is not None and "num_traps" in summary.rows[0]


def test_tensorboard_writer_gets_the_scalars(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    calls: list[tuple[str, float, int]] = []

    class Recording(SummaryWriter):  # type: ignore[misc]
        def add_scalar(self, tag: str, value: float, step: int, *args: Any, **kw: Any) -> None:
            calls.append((tag, value, step))
            super().add_scalar(tag, value, step, *args, **kw)

    writer = Recording(str(tmp_path / "tb"))
    monitor = Monitor(training.mlp(), every_steps=2, alerts=(), writer=writer)
    summary = monitor.step(2)
    writer.close()
    assert summary is not None
    assert ("alphahat/mean_alpha", summary.means["alpha"], 2) in calls
    assert ("alphahat/alpha/0.weight", summary.rows[0]["alpha"], 2) in calls
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tb").iterdir())


def test_schedule_and_bad_arguments() -> None:
    monitor = Monitor(training.mlp(), every_steps=None, every_epochs=2, alerts=())
    assert monitor.step(10) is None
    assert monitor.epoch_end(1, step=10) is None
    summary = monitor.epoch_end(2, step=20)
    assert summary is not None and summary.epoch == 2 and summary.step == 20
    with pytest.raises(ValueError, match="every_steps must be None or an integer ≥ 1; got 0"):
        Monitor(training.mlp(), every_steps=0)
    with pytest.raises(TypeError, match="Monitor needs a torch.nn.Module; got dict"):
        Monitor({"w": np.ones((4, 4))})


@pytest.mark.parametrize("suffix", FORMATS)
def test_unwritable_journal_is_a_clear_error(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / "no such folder" / f"j{suffix}"
    with pytest.raises(JournalError, match=rf"no such folder/j\{suffix}: cannot write the journal"):
        Monitor(training.mlp(), path)


def test_a_bad_layer_is_a_failed_row_and_the_others_are_analysed(tmp_path: Path) -> None:
    model = training.mlp()
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    with Monitor(model, tmp_path / "j.jsonl", every_steps=1, alerts=(AlphaBelow(),)) as monitor:
        summary = monitor.step(1)
    assert summary is not None
    rows = {r["name"]: r for r in read_monitor_journal(tmp_path / "j.jsonl").layer_rows()}
    assert rows["0.weight"]["status"] == "failed"
    assert rows["0.weight"]["reason"] == "weights contain 1 NaN value(s)"
    assert rows["2.weight"]["status"] == "fitted"
    assert summary.means["alpha"] == rows["2.weight"]["alpha"]  # the mean of the fitted layer


def test_importing_the_monitor_imports_no_framework(tmp_path: Path) -> None:
    code = (
        "import sys, alphahat.monitor, alphahat.monitor.integrations, alphahat.monitor.trend;"
        "print([m for m in ('torch', 'transformers', 'lightning', 'matplotlib', 'tensorboard')"
        " if m in sys.modules])"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(alphahat.__file__).parents[1])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    # without pyarrow (pandas imports it where it is installed): everything imports, and the
    # JSON-lines journal is written and read
    code = (
        "import sys; sys.modules['pyarrow'] = sys.modules['pyarrow.parquet'] = None\n"
        "import alphahat, alphahat.cli, alphahat.monitor.trend, alphahat.monitor.parquet\n"
        "import torch; from alphahat.monitor import Monitor, read_monitor_journal\n"
        "m = Monitor(torch.nn.Linear(20, 30), sys.argv[1], every_steps=1, alerts=()); m.step(1)\n"
        "m.close(); print(read_monitor_journal(sys.argv[1]).steps())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "j.jsonl")],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[1]"


def test_missing_framework_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from alphahat.errors import MissingDependencyError
    from alphahat.monitor.integrations import lightning_callback, trainer_callback

    monkeypatch.setitem(sys.modules, "transformers", None)  # import fails
    monkeypatch.setitem(sys.modules, "lightning.pytorch", None)
    monitor = Monitor(training.mlp(), alerts=())
    with pytest.raises(MissingDependencyError, match=r"pip install 'alphahat\[transformers\]'"):
        trainer_callback(monitor)
    with pytest.raises(MissingDependencyError, match=r"pip install 'alphahat\[lightning\]'"):
        lightning_callback(monitor)
