"""Watch α while the model zoo's base MLP trains on scikit-learn's digits.

    python examples/monitor_zoo_training.py     # writes docs/images/monitor-trend-*.png

The zoo's NumPy trainer (:func:`alphahat.zoo.training.train_mlp`) updates its weight arrays in
place; wrapped as ``torch.from_numpy`` parameters of an ``nn.Sequential`` (shared memory, no
copy), they are the live weights an :class:`alphahat.monitor.Monitor` watches every 25 steps.
The journal goes to a temporary folder (or to the path given as the first argument); the trend
figures (``alphahat trend JOURNAL --figures DIR`` draws the same) are written to docs/images/,
reduced to a 64-colour palette to keep the repository small.

Needs the ``monitor`` and ``zoo`` extras.
"""

from __future__ import annotations

import io
import logging
import sys
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from alphahat.monitor import AlphaAlertWarning, AlphaBelow, AlphaHatJump, Monitor
from alphahat.monitor.trend import trend_figure, trend_table
from alphahat.plot.save import render_figure
from alphahat.zoo import NUM_CLASSES, digits_split, zoo_models
from alphahat.zoo.training import train_mlp

IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
EVERY = 100


def as_module(weights: Sequence[np.ndarray], biases: Sequence[np.ndarray]) -> torch.nn.Module:
    """An MLP whose parameters share memory with the trainer's arrays."""
    layers: list[torch.nn.Module] = []
    for w, b in zip(weights, biases, strict=True):
        linear = torch.nn.Linear(w.shape[1], w.shape[0])
        linear.weight = torch.nn.Parameter(torch.from_numpy(w), requires_grad=False)
        linear.bias = torch.nn.Parameter(torch.from_numpy(b), requires_grad=False)
        layers += [linear, torch.nn.ReLU()]
    return torch.nn.Sequential(*layers[:-1])


def main(journal: Path) -> None:
    """Train the zoo's depth-2 base model with a monitor; write the trend figures."""
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    model = zoo_models("full")[7]  # depth2, width 256, batch 16: 40 epochs of 75 steps
    spec = replace(model.spec, learning_rate=0.1)
    split = digits_split()
    rules = (AlphaBelow(2.0), AlphaHatJump(max_change=1.5))
    state: dict[str, Any] = {}

    def start(weights: Sequence[np.ndarray], biases: Sequence[np.ndarray]) -> None:
        state["monitor"] = monitor = Monitor(
            as_module(weights, biases), journal, every_steps=EVERY, alerts=rules, resume=False
        )
        monitor.step(0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AlphaAlertWarning)  # logged above, once each
        trained = train_mlp(
            spec, split.x_train, split.y_train, split.x_test, split.y_test, NUM_CLASSES,
            on_start=start, on_step=lambda step: state["monitor"].step(step),
        )  # fmt: skip
    state["monitor"].close()
    print(f"test accuracy {trained.test_accuracy:.3f}; journal {journal}")
    print(trend_table(journal).to_string(index=False, max_rows=12))
    for metric in ("alpha", "alpha_weighted"):
        data = render_figure(trend_figure(journal, metric), "png", 90)
        image = Image.open(io.BytesIO(data)).convert("RGB").quantize(colors=64)
        out = IMAGES / f"monitor-trend-{metric}.png"
        image.save(out, optimize=True)
        print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as folder:
            main(Path(folder) / "monitor.jsonl")
