"""The monitor in the training frameworks, through each one's own extension point.

* :func:`trainer_callback` — a ``transformers.TrainerCallback``: ``on_step_end`` runs
  :meth:`Monitor.step` at ``state.global_step``; the step's model means go to
  ``Trainer.log`` (so to every logger the trainer reports to) when the trainer is given,
  else into the next ``on_log`` record; ``on_evaluate`` adds them to the evaluation metrics;
  a stop request sets ``control.should_training_stop``; ``on_epoch_end`` runs
  :meth:`Monitor.epoch_end`; when the trainer is about to save a checkpoint
  (``control.should_save``) the background analyses are waited for first.
* :func:`lightning_callback` — a ``lightning.pytorch.Callback``: ``on_train_batch_end`` runs
  :meth:`Monitor.step` at ``trainer.global_step``, logs the means with ``pl_module.log_dict``
  and sets ``trainer.should_stop`` on a stop request; ``on_train_epoch_end`` runs
  :meth:`Monitor.epoch_end`; ``on_save_checkpoint`` waits for the background analyses.

Waiting before a checkpoint keeps the journal holding every step the checkpoint has passed: a
run killed later and resumed from it loses no analysis that was still in flight.

Each framework is imported only when its callback is made (the ``monitor`` extra).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alphahat._imports import require
from alphahat.monitor.core import Monitor, StepSummary

#: The prefix of every logged metric.
PREFIX = "alphahat"


def logged_metrics(summary: StepSummary) -> dict[str, float]:
    """The model means of one analysis as ``{"alphahat/mean_alpha": …}`` (finite values only)."""
    return {
        f"{PREFIX}/mean_{metric}": float(value)
        for metric, value in summary.means.items()
        if value == value and abs(value) != float("inf")
    }


def trainer_callback(monitor: Monitor, trainer: Any = None) -> Any:
    """A ``transformers.TrainerCallback`` running ``monitor`` (see the module docstring).

    Pass the ``trainer`` (and add the callback with ``trainer.add_callback``) for the means to
    go through ``Trainer.log``; without it they are added to the trainer's next log record.
    """
    transformers = require("transformers", "the Hugging Face Trainer callback")

    base: Any = transformers.TrainerCallback

    class AlphaTrainerCallback(base):  # type: ignore[misc]
        """Analyse the model every ``monitor.every_steps`` optimizer steps."""

        def __init__(self) -> None:
            self.monitor = monitor
            self.trainer = trainer
            self._pending: dict[str, float] = {}

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            summary = self.monitor.step(int(state.global_step), epoch=state.epoch)
            if getattr(control, "should_save", False):  # a checkpoint follows this step
                self.monitor.wait()
            self._logged(summary, control)
            return control

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            epoch = int(round(state.epoch or 0))
            summary = self.monitor.epoch_end(epoch, step=int(state.global_step))
            self._logged(summary, control)
            return control

        def _logged(self, summary: StepSummary | None, control: Any) -> None:
            if summary is not None and not summary.resumed:
                metrics = logged_metrics(summary)
                if self.trainer is not None:
                    self.trainer.log(dict(metrics))
                else:
                    self._pending.update(metrics)
                    control.should_log = True
            if self.monitor.should_stop:
                control.should_training_stop = True

        def on_log(
            self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None,
            **kwargs: Any,
        ) -> Any:  # fmt: skip
            if self._pending and isinstance(logs, dict):
                logs.update(self._pending)
                self._pending.clear()
            return control

        def on_evaluate(
            self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any
        ) -> Any:
            summary = self.monitor.step(int(state.global_step), epoch=state.epoch, force=True)
            if summary is not None and isinstance(metrics, dict):
                metrics.update({f"eval_{k}": v for k, v in logged_metrics(summary).items()})
            if self.monitor.should_stop:
                control.should_training_stop = True
            return control

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            self.monitor.wait()
            return control

    return AlphaTrainerCallback()


def lightning_callback(monitor: Monitor) -> Any:
    """A ``lightning.pytorch.Callback`` running ``monitor`` (see the module docstring)."""
    pl = require("lightning.pytorch", "the Lightning callback")

    base: Any = pl.Callback

    class AlphaLightningCallback(base):  # type: ignore[misc]
        """Analyse the model every ``monitor.every_steps`` optimizer steps."""

        def __init__(self) -> None:
            self.monitor = monitor

        def _after(
            self, trainer: Any, pl_module: Any, summary: StepSummary | None, on_step: bool
        ) -> None:
            if summary is not None and not summary.resumed:
                pl_module.log_dict(logged_metrics(summary), on_step=on_step, on_epoch=not on_step)
            if self.monitor.should_stop:
                trainer.should_stop = True

        def on_train_batch_end(
            self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
        ) -> None:
            summary = self.monitor.step(int(trainer.global_step), epoch=trainer.current_epoch)
            self._after(trainer, pl_module, summary, True)

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            epoch = int(trainer.current_epoch) + 1
            summary = self.monitor.epoch_end(epoch, step=int(trainer.global_step))
            self._after(trainer, pl_module, summary, False)

        def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: Any) -> None:
            self.monitor.wait()

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            self.monitor.wait()

    return AlphaLightningCallback()


__all__ = ["PREFIX", "lightning_callback", "logged_metrics", "trainer_callback"]
