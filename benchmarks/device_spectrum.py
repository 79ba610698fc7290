"""One layer's spectrum with the torch backend: through host memory, or left on its device.

The baseline is what the monitor and ``analyze(module, device=...)`` did before the layers
stayed on their device: each weight read to a host NumPy array (``torch_to_numpy``), then sent
back to the device for the Gram matrix. Against it, per weight shape (random Gaussian weights
in ``--dtype``, on ``--device``), the median of ``--repeat`` runs of:

* ``host trip``: the baseline (float64 Gram on the device, the weight through the host);
* ``on device``: the same float64 Gram path on the tensor where it is
  (``layers.device.DeviceMatrices``): only the M eigenvalues come to the host;
* ``float32``: the guarded float32 Gram pass first (``float32_tolerance``, default 1e-3),
  with the method the layer's analysis ended on (float32 kept, or float64 after the guard);
* ``analyse``: the whole layer analysis on the device (spectrum, fit, metrics).

It prints milliseconds, the ratio to the baseline, and the bytes each moves to the host.

    python benchmarks/device_spectrum.py [--device cuda] [--shapes minilm|llm|all]
                                         [--dtype float32|bfloat16] [--repeat 5]

On the CPU (``--device cpu``, the default without a GPU) it checks that the script runs;
the numbers that matter are a GPU's.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from alphahat.layers.device import DeviceMatrices
from alphahat.pipeline import AnalysisOptions, analyse_layer
from alphahat.sources.arrays import TorchTensorLoader, torch_to_numpy
from alphahat.spectrum import layer_spectrum

SHAPES = {
    "minilm": [(384, 384), (1536, 384), (30522, 384)],
    "llm": [(4096, 4096), (11008, 4096), (32000, 4096)],
}


def _timed(device: str, work: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median milliseconds of ``work`` (synchronising a GPU), and its last result."""
    times, result = [], None
    for _ in range(repeat):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = work()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times), result


def _device_matrices(weight: Any, device: str) -> DeviceMatrices:
    matrix = weight.T if weight.shape[0] < weight.shape[1] else weight
    return DeviceMatrices(weight, (matrix,), device, TorchTensorLoader(weight), lambda a: [a])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default_device)
    parser.add_argument("--shapes", choices=("minilm", "llm", "all"), default=None)
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--tolerance", type=float, default=1e-3)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    device = args.device
    chosen = args.shapes or ("all" if device.startswith("cuda") else "minilm")
    shapes = SHAPES["minilm"] + SHAPES["llm"] if chosen == "all" else SHAPES[chosen]
    dtype = getattr(torch, args.dtype)
    where = torch.cuda.get_device_name(0) if device.startswith("cuda") else "CPU"
    print(f"torch {torch.__version__} on {device} ({where}), weights {args.dtype}")
    print(
        f"{'shape':>13}  {'host trip':>10}  {'on device':>10}  {'float32':>10}  "
        f"{'analyse':>9}  {'to host':>17}  float32 kept?"
    )
    generator = torch.Generator(device="cpu").manual_seed(0)
    float64 = AnalysisOptions(backend="torch", device=device)
    float32 = AnalysisOptions(backend="torch", device=device, float32_tolerance=args.tolerance)
    for shape in shapes:
        weight = (torch.randn(*shape, generator=generator) / shape[1] ** 0.5).to(dtype)
        weight = weight.to(device)
        on_device = _device_matrices(weight, device)

        def host_trip(w: Any = weight) -> Any:
            host = torch_to_numpy(w)
            matrix = host.T if host.shape[0] < host.shape[1] else host
            return layer_spectrum([matrix], backend="torch", device=device)

        def resident(m: DeviceMatrices = on_device) -> Any:
            return layer_spectrum(m, backend="torch", device=device)

        def first_float32(m: DeviceMatrices = on_device) -> Any:
            return layer_spectrum(
                m, backend="torch", device=device, float32_tolerance=args.tolerance
            )

        baseline, _ = _timed(device, host_trip, args.repeat)
        kept, _ = _timed(device, resident, args.repeat)
        single, _ = _timed(device, first_float32, args.repeat)

        def analysis(m: DeviceMatrices = on_device) -> Any:
            return analyse_layer(m, float64)

        whole, result = _timed(device, analysis, args.repeat)
        chosen_method = analyse_layer(on_device, float32).spectrum.method
        M = min(shape)
        moved = (
            f"{weight.numel() * weight.element_size() / 2**20:.1f} MiB → {8 * M / 2**10:.1f} KiB"
        )
        print(
            f"{shape[0]:>6}×{shape[1]:<6}  {baseline:>8.1f}ms  {kept:>8.1f}ms  {single:>8.1f}ms  "
            f"{whole:>7.1f}ms  {moved:>17}  {chosen_method}"
        )
        print(
            f"{'':>13}  {'1.00×':>10}  {kept / baseline:>9.2f}×  {single / baseline:>9.2f}×  "
            f"{whole / baseline:>8.2f}×  (α = {result.row['alpha']:.3f})"
        )


if __name__ == "__main__":
    main()
