"""Local worker processes: identical results to serial, thread caps, timeouts, dead workers."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

import alphahat
from alphahat.engine.executors import (
    ProcessExecutor,
    SerialExecutor,
    TaskFailure,
    threads_per_worker,
)


def write_model(path: Path, big: int = 0) -> Path:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(11)
    tensors = {
        f"layer.{i}.weight": rng.standard_t(4, size=(30 + 10 * i, 20 + 3 * i)).astype(np.float32)
        for i in range(6)
    }
    tensors["layer.2.weight"][0, 0] = np.nan  # one bad layer: a failed row from the worker
    if big:
        tensors["layer.9.weight"] = rng.standard_normal((big, big)).astype(np.float32)
    save_file(tensors, str(path))
    return path


# task functions for the executors (module level: they pickle by reference)
def square(x: int) -> int:
    return x * x


def sleep_or_square(x: int) -> int:
    if x == 2:
        time.sleep(60)
    return x * x


def die_or_square(x: int) -> int:
    if x == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    if x == 3:
        raise RuntimeError("boom")
    return x * x


def blas_threads(_: object) -> tuple[str, int]:
    from threadpoolctl import threadpool_info

    counts = {info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}
    return os.environ["OPENBLAS_NUM_THREADS"], max(counts)


def test_threads_per_worker_never_oversubscribes() -> None:
    for cores in (1, 2, 7, 64):
        for workers in (1, 2, 3, 8, 100):
            threads = threads_per_worker(workers, cores)
            assert threads >= 1
            assert workers * threads <= max(cores, workers)


@pytest.mark.slow
def test_process_executor_outcomes_timeouts_and_dead_workers() -> None:
    pool = ProcessExecutor(2, threads=1)
    got = dict(pool.map_unordered(square, range(7)))
    assert got == {i: i * i for i in range(7)}
    assert dict(pool.map_unordered(blas_threads, [None])) == {0: ("1", 1)}

    timed = dict(
        ProcessExecutor(2, threads=1, timeout=1.0).map_unordered(sleep_or_square, range(5))
    )
    assert isinstance(timed[2], TaskFailure) and timed[2].transient
    assert "timed out after 1 s" in timed[2].reason
    assert {k: v for k, v in timed.items() if k != 2} == {0: 0, 1: 1, 3: 9, 4: 16}

    died = dict(pool.map_unordered(die_or_square, range(5)))
    assert isinstance(died[1], TaskFailure) and "killed by SIGKILL" in died[1].reason
    assert isinstance(died[3], TaskFailure) and not died[3].transient
    assert "RuntimeError: boom" in died[3].reason
    assert {k: died[k] for k in (0, 2, 4)} == {0: 0, 2: 4, 4: 16}
    assert dict(SerialExecutor().map_unordered(square, range(3))) == {0: 0, 1: 1, 2: 4}

    unpicklable = dict(pool.map_unordered(square, [2, lambda: 0, 3]))
    assert isinstance(unpicklable[1], TaskFailure) and "cannot be sent" in unpicklable[1].reason
    assert (unpicklable[0], unpicklable[2]) == (4, 9)


@pytest.mark.slow
def test_two_workers_give_the_serial_table_byte_for_byte(tmp_path: Path) -> None:
    path = write_model(tmp_path / "m.safetensors")
    serial = alphahat.analyze(path, blas_threads=1)
    parallel = alphahat.analyze(path, workers=2, blas_threads=1)
    assert parallel.run_info["executor"] == "2 processes × 1 BLAS threads"
    assert parallel.to_csv() == serial.to_csv()
    assert parallel.to_json() == serial.to_json()
    row = serial.details.set_index("name").loc["layer.2.weight"]
    assert row["status"] == "failed" and "1 NaN" in row["reason"]
    # an in-memory model: the values travel with each task instead
    from safetensors.numpy import load_file

    in_memory = alphahat.analyze(load_file(str(path)), workers=2, blas_threads=1)
    assert in_memory.details.equals(serial.details)


@pytest.mark.slow
def test_layer_timeout_fails_only_the_slow_layer(tmp_path: Path) -> None:
    path = write_model(tmp_path / "m.safetensors", big=2500)  # its float64 SVD takes seconds
    report = alphahat.analyze(path, layer_timeout=1.0, backend="svd", blas_threads=1)
    rows = report.details.set_index("name")
    assert rows.loc["layer.9.weight", "status"] == "failed"
    assert "timed out after 1 s" in rows.loc["layer.9.weight", "reason"]
    others = rows.drop(index=["layer.9.weight", "layer.2.weight"])
    assert (others["status"] == "fitted").all()


def test_provenance_records_the_blas_threads_each_layer_ran_with(tmp_path):
    import numpy as np

    import alphahat

    rng = np.random.default_rng(0)
    weights = {"a.weight": rng.standard_normal((60, 40)), "b.weight": rng.standard_normal((50, 30))}
    assert alphahat.analyze(weights, blas_threads=1).provenance["blas_threads_per_layer"] == 1
    assert alphahat.analyze(weights).provenance["blas_threads_per_layer"] is None
