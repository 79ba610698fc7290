"""A small, deterministic NumPy trainer for multilayer perceptrons (ReLU, softmax cross-entropy).

Pure NumPy so that the model zoo needs no deep-learning framework. Everything random (the
initialisation, the minibatch order, the dropout masks) comes from one seeded
:class:`numpy.random.Generator`; with a fixed number of BLAS threads the same spec gives
bit-identical weights on the same machine.

Model: ``h₀ = x``, ``hₖ = dropout(relu(Wₖ hₖ₋₁ + bₖ))`` for the hidden layers, logits
``z = W_L h_{L−1} + b_L``. Loss: mean cross-entropy of ``softmax(z)``; optimiser: SGD with
heavy-ball momentum μ, ``v ← μ v + (clip(∇L) + λ W)``, ``W ← W − η v`` (weight decay λ on weights,
not biases), learning rate η constant for the first half of training then cosine-annealed to 0.
Weights are stored as PyTorch stores ``nn.Linear`` weights: ``(out_features, in_features)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class TrainingSpec:
    """Hyperparameters of one MLP (see the module docstring for the update rule).

    Attributes:
        hidden: widths of the hidden layers (the depth is ``len(hidden) + 1`` weight matrices).
        weight_decay: L2 coefficient λ on the weight matrices.
        dropout: probability of zeroing a hidden unit during training (inverted dropout).
        batch_size: minibatch size.
        train_size: number of training examples used (the first ones of the training pool).
        epochs: passes over the training examples.
        learning_rate: η; momentum: μ.
        max_grad_norm: the loss gradient (without the decay term) is scaled down to this global
            L2 norm when larger (keeps deep, wide nets with small batches from diverging).
        seed: seed of the generator for initialisation, minibatch order and dropout masks.
    """

    hidden: tuple[int, ...]
    weight_decay: float
    dropout: float
    batch_size: int
    train_size: int
    epochs: int
    learning_rate: float = 0.05
    momentum: float = 0.9
    max_grad_norm: float = 5.0
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {
            "hidden": bool(self.hidden) and all(isinstance(w, int) and w > 0 for w in self.hidden),
            "weight_decay": self.weight_decay >= 0,
            "dropout": 0 <= self.dropout < 1,
            "batch_size": self.batch_size >= 1,
            "train_size": self.train_size >= 1,
            "epochs": self.epochs >= 1,
            "learning_rate": self.learning_rate > 0,
            "momentum": 0 <= self.momentum < 1,
            "max_grad_norm": self.max_grad_norm > 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise ValueError(f"invalid training spec: {values}")


@dataclass(frozen=True)
class TrainedMLP:
    """Weights of a trained MLP and its measured accuracies (fractions in [0, 1])."""

    weights: tuple[FloatArray, ...]
    biases: tuple[FloatArray, ...]
    train_accuracy: float
    test_accuracy: float
    final_loss: float


def _forward(
    weights: tuple[FloatArray, ...], biases: tuple[FloatArray, ...], x: FloatArray
) -> FloatArray:
    h = x
    for k, (w, b) in enumerate(zip(weights, biases, strict=True)):
        h = h @ w.T + b
        if k < len(weights) - 1:
            np.maximum(h, 0.0, out=h)
    return h


def accuracy(
    weights: tuple[FloatArray, ...], biases: tuple[FloatArray, ...], x: FloatArray, y: IntArray
) -> float:
    """Fraction of examples whose largest logit is the true class."""
    logits = _forward(weights, biases, x)
    return float(np.mean(np.argmax(logits, axis=1) == y))


def loss_and_gradients(
    weights: Sequence[FloatArray],
    biases: Sequence[FloatArray],
    x: FloatArray,
    y: IntArray,
    masks: Sequence[FloatArray | None],
) -> tuple[float, list[FloatArray], list[FloatArray]]:
    """Mean cross-entropy of a minibatch and its gradients with respect to weights and biases.

    ``masks[k]`` multiplies hidden layer k's ReLU output (inverted dropout: 0 or 1/keep; None
    for no dropout). No weight decay here (the optimiser adds it).
    """
    acts = [x]
    h = x
    for k in range(len(weights) - 1):
        h = h @ weights[k].T + biases[k]
        np.maximum(h, 0.0, out=h)
        mask = masks[k]
        if mask is not None:
            h = h * mask
        acts.append(h)
    z = h @ weights[-1].T + biases[-1]
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    total = p.sum(axis=1, keepdims=True)
    m = x.shape[0]
    rows = np.arange(m)
    loss = float(np.mean(np.log(total[:, 0]) - z[rows, y]))  # log-sum-exp − z_y, no underflow
    p /= total
    grad = p
    grad[rows, y] -= 1.0
    grad /= np.float32(m)
    grads_w: list[FloatArray] = [weights[0]] * len(weights)
    grads_b: list[FloatArray] = [biases[0]] * len(weights)
    for k in range(len(weights) - 1, -1, -1):
        grads_w[k] = grad.T @ acts[k]
        grads_b[k] = grad.sum(axis=0)
        if k > 0:
            grad = grad @ weights[k]
            mask = masks[k - 1]
            if mask is not None:
                grad *= mask
            grad *= acts[k] > 0
    return loss, grads_w, grads_b


def train_mlp(
    spec: TrainingSpec,
    x_train: FloatArray,
    y_train: IntArray,
    x_test: FloatArray,
    y_test: IntArray,
    num_classes: int,
    *,
    on_start: Callable[[Sequence[FloatArray], Sequence[FloatArray]], None] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> TrainedMLP:
    """Train one MLP on the first ``spec.train_size`` training examples; measure accuracies.

    ``on_start(weights, biases)`` receives the arrays before the first step; they are updated
    in place, so ``on_step(steps_done)``, called after every update, sees the current values
    through them (e.g. as ``torch.from_numpy`` parameters watched by
    :class:`alphahat.monitor.Monitor`). Neither changes the training.
    """
    rng = np.random.default_rng(spec.seed)
    x = np.ascontiguousarray(x_train[: spec.train_size], dtype=np.float32)
    y = np.asarray(y_train[: spec.train_size], dtype=np.int64)
    sizes = (x.shape[1], *spec.hidden, num_classes)
    weights = [
        (rng.standard_normal((n_out, n_in)) * math.sqrt(2.0 / n_in)).astype(np.float32)
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    biases = [np.zeros(n_out, dtype=np.float32) for n_out in sizes[1:]]
    if on_start is not None:
        on_start(weights, biases)
    vel_w = [np.zeros_like(w) for w in weights]
    vel_b = [np.zeros_like(b) for b in biases]
    n = x.shape[0]
    steps_per_epoch = math.ceil(n / spec.batch_size)
    total_steps = spec.epochs * steps_per_epoch
    keep = 1.0 - spec.dropout
    step = 0
    loss = math.nan
    for _epoch in range(spec.epochs):
        order = rng.permutation(n)
        for start in range(0, n, spec.batch_size):
            idx = order[start : start + spec.batch_size]
            xb, yb = x[idx], y[idx]
            masks: list[FloatArray | None] = []
            for width in spec.hidden:
                if spec.dropout > 0:
                    mask = (rng.random((len(idx), width), dtype=np.float32) < keep).astype(
                        np.float32
                    )
                    masks.append(mask / np.float32(keep))
                else:
                    masks.append(None)
            loss, grads_w, grads_b = loss_and_gradients(weights, biases, xb, yb, masks)
            fraction = step / max(total_steps - 1, 1)
            lr = spec.learning_rate * (
                1.0 if fraction < 0.5 else 0.5 * (1.0 + math.cos(math.pi * (2 * fraction - 1)))
            )
            norm = math.sqrt(sum(float(np.sum(g * g)) for g in (*grads_w, *grads_b)))
            clip = np.float32(min(1.0, spec.max_grad_norm / norm) if norm > 0 else 1.0)
            for k in range(len(weights)):
                grad_w = grads_w[k] * clip + np.float32(spec.weight_decay) * weights[k]
                grad_b = grads_b[k] * clip
                vel_w[k] *= np.float32(spec.momentum)
                vel_w[k] += grad_w
                vel_b[k] *= np.float32(spec.momentum)
                vel_b[k] += grad_b
                weights[k] -= np.float32(lr) * vel_w[k]
                biases[k] -= np.float32(lr) * vel_b[k]
            step += 1
            if on_step is not None:
                on_step(step)
    w_out, b_out = tuple(weights), tuple(biases)
    return TrainedMLP(
        weights=w_out,
        biases=b_out,
        train_accuracy=accuracy(w_out, b_out, x, y),
        test_accuracy=accuracy(w_out, b_out, x_test, y_test),
        final_loss=loss,
    )
