"""Layers on a real Dask cluster (LocalCluster with worker processes) equal the local run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import alphahat

distributed = pytest.importorskip("distributed")


def write_model(path: Path) -> Path:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(5)
    tensors = {
        f"h.{i}.mlp.weight": rng.standard_t(3, size=(64 + 16 * i, 32)).astype(np.float32)
        for i in range(5)
    }
    tensors["h.3.mlp.weight"][1, 2] = np.inf  # fails on a worker; the failure comes back
    save_file(tensors, str(path))
    return path


@pytest.mark.slow
def test_dask_cluster_gives_the_local_table(tmp_path: Path) -> None:
    path = write_model(tmp_path / "m.safetensors")
    local = alphahat.analyze(path, blas_threads=1)  # Dask workers run with 1 BLAS thread
    with (
        distributed.LocalCluster(
            processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        seen: list[str] = []
        by_client = alphahat.analyze(
            path, scheduler=client, progress=lambda d, t, n: seen.append(n)
        )
        by_address = alphahat.analyze(path, scheduler=cluster.scheduler_address)
        with pytest.raises(ValueError, match="needs the model as a path"):
            alphahat.analyze({"w": np.eye(16)}, scheduler=client)
    assert by_client.to_csv() == local.to_csv()
    assert by_address.to_csv() == local.to_csv()
    assert by_client.run_info["executor"] == "dask client"
    assert sorted(seen[1:]) == sorted(local.details["name"])  # progress per finished layer
    row = by_client.details.set_index("name").loc["h.3.mlp.weight"]
    assert row["status"] == "failed" and "1 Inf" in row["reason"]


def test_a_task_for_a_path_carries_no_weights(tmp_path: Path) -> None:
    """What goes through the scheduler names the file and the layer; workers read the tensor."""
    import pickle

    from alphahat.pipeline import AnalysisOptions, plan_layers
    from alphahat.run import _portable_task, run_layer_task
    from alphahat.sources import SourceSpec, open_source

    path = write_model(tmp_path / "m.safetensors")
    options = AnalysisOptions()
    spec = SourceSpec.of(path)
    plan = plan_layers(open_source(path), options)[4]
    task = _portable_task(plan, options, spec)
    assert task.plan is None and task.loaded is None and task.source == spec
    size = len(pickle.dumps(task))
    assert size < 4000 < plan.ref.numel * 4  # the tensor is 128 × 32 float32 = 16 KiB
    outcome = run_layer_task(pickle.loads(pickle.dumps(task)))  # re-opens the file by itself
    assert outcome.row["status"] == "fitted" and outcome.result is None
