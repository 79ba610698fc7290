"""A small, deterministic training run on scikit-learn's digits, for the monitor's tests.

Also a script (the kill-and-resume test runs it in a subprocess)::

    python tests/monitor_training.py JOURNAL CHECKPOINT STEPS EVERY [DELAY [DATA.npz [BACKGROUND]]]

trains the MLP for STEPS optimizer steps with a :class:`~alphahat.monitor.Monitor` every EVERY
steps, saving a checkpoint (model, optimizer, step) every ``2 * EVERY`` steps and resuming from
it when it exists (BACKGROUND: the monitor's ``background``, ``thread`` or ``process``; the
checkpoint waits for the analyses in flight). The batches are a fixed function of the step, so
a resumed run sees the same data as an uninterrupted one.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BATCH = 32


def digits(saved: str | None = None) -> tuple[Any, Any]:
    """The digits images (float32, scaled to [0, 1]) and labels as torch tensors.

    ``saved``: an ``.npz`` with ``data`` and ``target`` written by :func:`save_digits` (a
    subprocess then need not import scikit-learn).
    """
    import torch

    if saved is not None:
        data, target = (np.load(saved)[k] for k in ("data", "target"))
    else:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        data, target = bunch.data, bunch.target
    x = torch.tensor(data / 16.0, dtype=torch.float32)
    y = torch.tensor(target, dtype=torch.int64)
    return x, y


def save_digits(path: Path) -> None:
    """Save scikit-learn's digits for :func:`digits`."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    np.savez(path, data=bunch.data, target=bunch.target)


def mlp(seed: int = 0) -> Any:
    """64 → 48 → 10 ReLU MLP with seeded initial weights."""
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 48), torch.nn.ReLU(), torch.nn.Linear(48, 10))


def batch_indices(step: int, n: int) -> Any:
    """The rows of batch ``step`` (0-based): a fixed permutation, walked in order."""
    order = np.random.default_rng(7).permutation(n)
    start = (step * BATCH) % (n - BATCH)
    return order[start : start + BATCH]


def main(
    journal: str,
    checkpoint: str,
    steps: int,
    every: int,
    delay: float = 0.0,
    data: str | None = None,
    background: bool | str = False,
) -> None:
    """The training run of the module docstring."""
    import torch

    from alphahat.monitor import Monitor

    torch.set_num_threads(1)
    x, y = digits(data)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    start = 0
    path = Path(checkpoint)
    if path.exists():
        state = torch.load(path, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
    with Monitor(model, journal, every_steps=every, alerts=(), background=background) as monitor:
        for step in range(start, steps):
            rows = torch.from_numpy(batch_indices(step, len(x)))
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[rows]), y[rows])
            loss.backward()
            optimizer.step()
            monitor.step(step + 1)
            if (step + 1) % (2 * every) == 0:
                monitor.wait()  # the journal holds every step the checkpoint has passed
                tmp = path.with_suffix(".tmp")
                torch.save(
                    {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "step": step + 1},
                    tmp,
                )  # fmt: skip
                os.replace(tmp, path)
            if delay:
                time.sleep(delay)


if __name__ == "__main__":
    args = sys.argv[1:]
    delay = float(args[4]) if len(args) > 4 else 0.0
    data = args[5] if len(args) > 5 else None
    background = args[6] if len(args) > 6 else False
    main(args[0], args[1], int(args[2]), int(args[3]), delay, data, background)
