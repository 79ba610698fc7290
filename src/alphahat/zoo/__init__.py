"""A model zoo anyone can rebuild on a CPU: MLPs trained on scikit-learn's bundled digits.

Like the "predicting generalization" contest corpus that the Simpson's-paradox paper analyses,
it has groups of fixed depth in which hyperparameters vary. Each group (``depth2`` … ``depth5``:
2 to 5 hidden layers) holds the same 12 models, each differing from a base model (width 256,
no weight decay, no dropout, batch size 32, 1200 training examples) in one hyperparameter:
width 128 / 512, weight decay 3·10⁻⁴ / 10⁻³, dropout 0.2 / 0.4, batch size 16 / 128 / 512,
training-set size 300 / 600. All are trained for 40 epochs with
:func:`~alphahat.zoo.training.train_mlp` (pure NumPy, one BLAS thread, seeded).

Data: the 1797 8×8 images of :func:`sklearn.datasets.load_digits` (shipped with scikit-learn,
no download), shuffled with seed 0; the last 597 are the test set, the first 1200 the training
pool (a model with training-set size n uses its first n); pixels are standardised with the
training pool's mean and standard deviation (+0.01).

:func:`build_zoo` writes ``<group>/<name>.safetensors`` (weights as ``layers.K.weight``
(out × in) and ``layers.K.bias``, float32) and ``manifest.csv`` (``model``, ``group``,
``accuracy`` = test accuracy in percent, ``train_accuracy`` in percent, then the
hyperparameters), ready for ``alphahat compare``. Building twice on the same machine gives
byte-identical files.
"""

from __future__ import annotations

import csv
import io
import json
import platform
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from alphahat._imports import require
from alphahat._version import __version__
from alphahat.errors import AlphahatError
from alphahat.report.io import write_atomic
from alphahat.zoo.training import FloatArray, IntArray, TrainedMLP, TrainingSpec, train_mlp

ZooSize = Literal["tiny", "full"]
ZOO_SIZES: tuple[ZooSize, ...] = ("tiny", "full")
NUM_CLASSES = 10
TEST_SIZE = 597
DATA_SEED = 0
MANIFEST_NAME = "manifest.csv"
INFO_NAME = "zoo.json"
MANIFEST_COLUMNS = (
    "model", "group", "accuracy", "train_accuracy", "depth", "width", "weight_decay",
    "dropout", "batch_size", "train_size", "epochs", "learning_rate", "seed",
)  # fmt: skip
#: ZooProgress(done, total, model, trained) is called after each model is trained and saved.
ZooProgress = Callable[[int, int, "ZooModel", TrainedMLP], None]


@dataclass(frozen=True)
class ZooModel:
    """One model of the zoo: its group, file name (without suffix) and training spec."""

    group: str
    name: str
    spec: TrainingSpec

    @property
    def relative_path(self) -> str:
        """Path of its weights inside the zoo folder."""
        return f"{self.group}/{self.name}.safetensors"


def _name(spec: TrainingSpec) -> str:
    return (
        f"w{spec.hidden[0]}-wd{spec.weight_decay:g}-do{spec.dropout:g}"
        f"-bs{spec.batch_size}-n{spec.train_size}"
    )


def zoo_models(size: ZooSize = "full") -> list[ZooModel]:
    """The models of a zoo of this size, in build order (see the module docstring)."""
    if size not in ZOO_SIZES:
        raise ValueError(f"size must be one of {', '.join(map(repr, ZOO_SIZES))}; got {size!r}")
    if size == "tiny":  # for tests: 2 groups x 4 models, trained in well under a second
        depths: tuple[int, ...] = (1, 2)
        base = TrainingSpec(
            hidden=(48,), weight_decay=0.0, dropout=0.0, batch_size=64, train_size=300, epochs=3
        )
        variants: list[dict[str, float]] = [
            {},
            {"width": 32},
            {"weight_decay": 1e-3},
            {"batch_size": 16},
        ]
    else:
        depths = (2, 3, 4, 5)
        base = TrainingSpec(
            hidden=(256,), weight_decay=0.0, dropout=0.0, batch_size=32, train_size=1200, epochs=40
        )
        variants = [
            {}, {"width": 128}, {"width": 512}, {"weight_decay": 3e-4}, {"weight_decay": 1e-3},
            {"dropout": 0.2}, {"dropout": 0.4}, {"batch_size": 16}, {"batch_size": 128},
            {"batch_size": 512}, {"train_size": 300}, {"train_size": 600},
        ]  # fmt: skip
    models = []
    for depth in depths:
        for index, change in enumerate(variants):
            width = int(change.get("width", base.hidden[0]))
            spec = replace(
                base,
                hidden=(width,) * depth,
                weight_decay=float(change.get("weight_decay", base.weight_decay)),
                dropout=float(change.get("dropout", base.dropout)),
                batch_size=int(change.get("batch_size", base.batch_size)),
                train_size=int(change.get("train_size", base.train_size)),
                seed=1000 * depth + index,
            )
            models.append(ZooModel(f"depth{depth}", _name(spec), spec))
    return models


@dataclass(frozen=True)
class DigitsSplit:
    """The standardised digits data, split as in the module docstring."""

    x_train: FloatArray
    y_train: IntArray
    x_test: FloatArray
    y_test: IntArray


def digits_split() -> DigitsSplit:
    """scikit-learn's digits, shuffled with seed 0, split 1200 (training pool) / 597 (test)."""
    require("sklearn", "the model zoo (scikit-learn's bundled digits data)")
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]

    data = load_digits()
    x = np.asarray(data.data, dtype=np.float32)
    y = np.asarray(data.target, dtype=np.int64)
    order = np.random.default_rng(DATA_SEED).permutation(len(y))
    x, y = x[order], y[order]
    n_train = len(y) - TEST_SIZE
    mean = x[:n_train].mean(axis=0)
    std = x[:n_train].std(axis=0) + np.float32(0.01)
    x = ((x - mean) / std).astype(np.float32)
    return DigitsSplit(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def _train_one(model: ZooModel, split: DigitsSplit) -> TrainedMLP:
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    with threadpool_limits(limits=1):  # one BLAS thread: same bits whatever the machine load
        return train_mlp(
            model.spec, split.x_train, split.y_train, split.x_test, split.y_test, NUM_CLASSES
        )


def _train_in_worker(model: ZooModel) -> TrainedMLP:
    return _train_one(model, digits_split())


def _save_weights(path: Path, model: ZooModel, trained: TrainedMLP) -> None:
    from safetensors.numpy import save

    tensors: dict[str, np.ndarray] = {}
    for k, (w, b) in enumerate(zip(trained.weights, trained.biases, strict=True)):
        tensors[f"layers.{k}.weight"] = np.ascontiguousarray(w, dtype=np.float32)
        tensors[f"layers.{k}.bias"] = np.ascontiguousarray(b, dtype=np.float32)
    # one key: safetensors writes several metadata keys in a varying order
    document = {"name": model.name, "group": model.group, "spec": model.spec.__dict__}
    metadata = {"alphahat_zoo": json.dumps(document, sort_keys=True)}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, save(tensors, metadata=metadata))


def _percent(fraction: float) -> str:
    return f"{100.0 * fraction:.4f}"


def build_zoo(
    directory: str | Path,
    *,
    size: ZooSize = "full",
    jobs: int = 1,
    overwrite: bool = False,
    progress: ZooProgress | None = None,
) -> Path:
    """Train the zoo's models and write their weights and ``manifest.csv`` into ``directory``.

    Args:
        directory: output folder (created).
        size: ``full`` (4 groups × 12 models; a few minutes on 2 cores) or ``tiny`` (tests).
        jobs: models trained at once, in separate processes (each uses one BLAS thread).
        overwrite: replace an existing zoo in ``directory``.
        progress: callback(done, total, model, trained) after each model.

    Returns:
        The manifest's path. It is written last, so a folder with a manifest is complete.
    """
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs must be an integer ≥ 1; got {jobs!r}")
    models = zoo_models(size)
    root = Path(directory)
    manifest = root / MANIFEST_NAME
    if manifest.exists() and not overwrite:
        raise AlphahatError(f"{manifest}: a zoo is already there (overwrite it with --force)")
    root.mkdir(parents=True, exist_ok=True)
    split = digits_split()
    rows = []
    total = len(models)

    def record(done: int, model: ZooModel, trained: TrainedMLP) -> None:
        _save_weights(root / model.relative_path, model, trained)
        spec = model.spec
        rows.append(
            [
                model.relative_path,
                model.group,
                _percent(trained.test_accuracy),
                _percent(trained.train_accuracy),
                len(spec.hidden),
                spec.hidden[0],
                f"{spec.weight_decay:g}",
                f"{spec.dropout:g}",
                spec.batch_size,
                spec.train_size,
                spec.epochs,
                f"{spec.learning_rate:g}",
                spec.seed,
            ]  # fmt: skip
        )
        if progress is not None:
            progress(done + 1, total, model, trained)

    if jobs == 1:
        for done, model in enumerate(models):
            record(done, model, _train_one(model, split))
    else:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            for done, (model, trained) in enumerate(
                zip(models, pool.map(_train_in_worker, models), strict=True)
            ):
                record(done, model, trained)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    writer.writerows(rows)
    info = {
        "alphahat_version": __version__,
        "size": size,
        "data": "sklearn.datasets.load_digits (1797 8x8 images, 10 classes)",
        "split": {
            "shuffle_seed": DATA_SEED,
            "train_pool": len(split.y_train),
            "test": len(split.y_test),
            "standardise": "(x - mean) / (std + 0.01) over the training pool",
        },
        "models": len(models),
        "groups": sorted({m.group for m in models}),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
    }
    write_atomic(root / INFO_NAME, json.dumps(info, indent=2) + "\n")
    write_atomic(manifest, text.getvalue())
    return manifest


__all__ = [
    "MANIFEST_COLUMNS",
    "ZOO_SIZES",
    "DigitsSplit",
    "TrainedMLP",
    "TrainingSpec",
    "ZooModel",
    "ZooSize",
    "build_zoo",
    "digits_split",
    "train_mlp",
    "zoo_models",
]
