"""Watch a model while it trains: α, α̂ and the norms of its layers every N steps.

* :class:`Monitor` — analyse a live ``torch.nn.Module`` on a schedule, journal every row
  (resumable), check alert rules, return each step's :class:`StepSummary`;
  :func:`monitored_loop` — the plain training-loop helper.
* :mod:`~alphahat.monitor.alerts` — the rules (:class:`AlphaBelow`, :class:`AlphaOutside`,
  :class:`AlphaHatJump`, :class:`NewTraps`) and :class:`AlphaAlertWarning`.
* :mod:`~alphahat.monitor.journal` — the journal read back (:func:`read_monitor_journal`):
  JSON lines, or Parquet (:mod:`~alphahat.monitor.parquet`, for a path ending in ``.parquet``).
* :mod:`~alphahat.monitor.worker` — the rows of one step, and the worker process of
  ``background="process"`` (:class:`MonitorWorkerError` when an analysis fails there).
* :mod:`~alphahat.monitor.integrations` — the Hugging Face ``TrainerCallback`` and the
  Lightning ``Callback`` (each imported only when asked for).

Importing this package imports no framework; torch is needed by :class:`Monitor` itself only
through the module it is given.
"""

from __future__ import annotations

from alphahat.monitor.alerts import (
    Alert,
    AlertRule,
    AlphaAlertWarning,
    AlphaBelow,
    AlphaHatJump,
    AlphaOutside,
    NewTraps,
)
from alphahat.monitor.core import Monitor, StepSummary, monitored_loop
from alphahat.monitor.journal import MonitorRecords, read_monitor_journal
from alphahat.monitor.worker import MonitorWorkerError

__all__ = [
    "Alert",
    "AlertRule",
    "AlphaAlertWarning",
    "AlphaBelow",
    "AlphaHatJump",
    "AlphaOutside",
    "Monitor",
    "MonitorRecords",
    "MonitorWorkerError",
    "NewTraps",
    "StepSummary",
    "monitored_loop",
    "read_monitor_journal",
]
