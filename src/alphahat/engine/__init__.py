"""Execution engine: run independent per-layer tasks in-process, on a process pool, or on Dask.

* :mod:`.executors` — :class:`SerialExecutor`, :class:`ProcessExecutor` (own worker processes
  with BLAS threads limited so workers × threads ≤ cores, per-task timeouts, a dead worker is a
  failed task, not a failed run) and :class:`DaskExecutor` (any ``dask.distributed.Client``).
  Generic: they know nothing about layers.
* :mod:`.tasks` — what travels to a worker: a :class:`~.tasks.SourceSpec` (how to re-open the
  model from its path) and picklable tensor loaders, so a worker reads only its own tensor.

This package imports nothing heavy at import time (worker processes set their thread limits
before NumPy is loaded).
"""

from __future__ import annotations
