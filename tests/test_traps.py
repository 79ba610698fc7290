"""Correlation traps in depth: the shuffle as permutations, planted traps, removal, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import alphahat
from alphahat.metrics.traps import (
    inverse_participation_ratio,
    largest_entries,
    support,
    top_mass,
    trap_modes,
)
from alphahat.spectrum.randomize import layer_permutations, layer_seed, randomized_spectrum
from alphahat.traps import analyze_traps, fingerprint, randomize_model, remove_traps

STD = 0.05
#: The planted trap: a rank-1 spike a·x·yᵀ on rows (3, 4) × columns (10, 11).
ROWS, COLS = (3, 4), (10, 11)


def planted(seed: int = 0, amplitude: float = 6.0) -> np.ndarray:
    """Gaussian W (σ = 0.05, 400 × 200) plus a rank-1 spike on 2 × 2 entries."""
    w = np.random.default_rng(seed).normal(scale=STD, size=(400, 200))
    x, y = np.array([1.0, 0.6]), np.array([1.0, 0.7])
    w[np.ix_(ROWS, COLS)] += amplitude * np.outer(x, y)
    return w


def test_concentration_measures_closed_forms() -> None:
    e = np.zeros(50)
    e[7] = -2.0
    assert inverse_participation_ratio(e) == 1.0
    assert inverse_participation_ratio(np.ones(50)) == pytest.approx(1 / 50)
    p = np.array([3.0, -4.0, 0.0, 1.0])
    assert top_mass(p, 1) == pytest.approx(16 / 26)
    assert top_mass(p, 2) == pytest.approx(25 / 26)
    assert largest_entries(p, 2).tolist() == [1, 0]
    assert support(p, 0.9).tolist() == [1, 0]  # 25/26 ≥ 0.9 with two entries


def test_trap_modes_are_the_svd_modes_above_the_edge() -> None:
    rng = np.random.default_rng(1)
    s = rng.normal(size=(80, 40))
    s[5, 6] = 30.0
    u, sv, vt = np.linalg.svd(s * 2.0)
    edge = float((sv[1] + sv[0]) / 2) ** 2  # only the largest mode above it
    (mode,) = trap_modes(s, 2.0, edge)
    assert mode.mode == 0 and mode.eigenvalue == pytest.approx(sv[0] ** 2, rel=1e-12)
    assert mode.singular_value == pytest.approx(sv[0] / 2, rel=1e-12)
    sign = np.sign(u[:, 0] @ mode.u)
    np.testing.assert_allclose(mode.u, sign * u[:, 0], atol=1e-10)
    np.testing.assert_allclose(mode.v, sign * vt[0], atol=1e-10)
    assert trap_modes(s.T, 2.0, edge)[0].eigenvalue == pytest.approx(mode.eigenvalue)


@pytest.mark.parametrize("shape", [(30, 12), (12, 30), (8, 4, 3, 3)])
def test_permutations_are_the_analysis_shuffle(shape: tuple[int, ...]) -> None:
    """The permuted tensor's matrices are the analysis' shuffled matrices (same draw)."""
    values = np.random.default_rng(2).normal(size=shape)
    index = np.arange(values.size).reshape(shape)
    if values.ndim == 2:
        mats, index_mats = [values], [index]
    else:  # conv: the (out, in) matrix of each kernel position, as layers.layer_matrices
        mats = [values.reshape(8, 4, -1)[:, :, k] for k in range(9)]
        index_mats = [index.reshape(8, 4, -1)[:, :, k] for k in range(9)]
    perms = layer_permutations(index_mats, values.size, seed=3, name="w", replicas=2)
    expected = randomized_spectrum(mats, seed=layer_seed(3, "w"), replicas=2, exact=True)
    for r, perm in enumerate(perms):
        shuffled = values.reshape(-1)[perm].reshape(shape)
        ours = (
            [shuffled]
            if values.ndim == 2
            else [m.reshape(8, 4, -1)[:, :, k] for k in range(9) for m in [shuffled]]
        )
        evals = np.sort(np.concatenate([np.linalg.svd(m, compute_uv=False) ** 2 for m in ours]))
        np.testing.assert_allclose(evals, expected.replicas[r], rtol=1e-10)
        assert sorted(shuffled.ravel()) == sorted(values.ravel())


def test_randomize_model_is_reproducible_and_saved(tmp_path: Path) -> None:
    model = {"a.weight": planted(), "b.weight": np.random.default_rng(4).normal(size=(40, 20))}
    first = randomize_model(model, seed=5)
    again = randomize_model(model, seed=5)
    other = randomize_model(model, seed=6)
    assert first.fingerprint == again.fingerprint != other.fingerprint
    assert first.fingerprint == fingerprint(5, [("a.weight", (400, 200)), ("b.weight", (40, 20))])
    for name, w in model.items():
        np.testing.assert_array_equal(first.weights[name], again.weights[name])
        np.testing.assert_array_equal(
            first.weights[name].reshape(-1), w.reshape(-1)[first.permutations[name]]
        )
    # the shuffled weights have the analysis' shuffled ESD
    row = alphahat.analyze(model, randomize=True, seed=5).details.set_index("name")
    evals = np.linalg.svd(first.weights["a.weight"], compute_uv=False) ** 2
    assert evals.max() == pytest.approx(row.loc["a.weight", "max_rand_eval"], rel=1e-10)
    from safetensors import safe_open

    first.save(tmp_path / "r.safetensors")
    with safe_open(str(tmp_path / "r.safetensors"), "np") as f:
        assert f.metadata()["alphahat.fingerprint"] == first.fingerprint
        np.testing.assert_array_equal(f.get_tensor("a.weight"), first.weights["a.weight"])


def test_planted_trap_is_found_at_its_entries_and_matches_num_traps() -> None:
    w = planted()
    result = analyze_traps({"w": w}, seed=0)
    traps = result.traps
    # the spike's 4 entries (6, 4.2, 3.6, 2.52 ≫ the BBP level 0.05·(400·200)^¼ ≈ 0.84) are
    # scattered by the shuffle into 4 one-entry spikes: 4 traps, each on one planted entry
    assert len(traps) == 4 and traps["replica"].eq(0).all()
    tops = [tuple(t["top_entries"][0]["index"]) for t in traps.to_dict("records")]
    assert sorted(tops) == sorted((r, c) for r in ROWS for c in COLS)
    planted_values = sorted((w[r, c] for r in ROWS for c in COLS), reverse=True)
    # λ of a rank-1 spike a·e_i e_jᵀ in N × M noise of variance s² (Benaych-Georges &
    # Nadakuditi 2012, above the BBP threshold): (a² + N s²)(a² + M s²) / a²
    a2 = np.square(planted_values)
    expected = (a2 + 400 * STD**2) * (a2 + 200 * STD**2) / a2
    np.testing.assert_allclose(traps["lambda"], expected, rtol=0.05)  # finite-size spread
    assert (traps["top5_mass"] > 0.7).all() and (traps["above_edge"] > 0).all()
    for t in result.found:  # the un-shuffled piece's largest entry is the planted entry itself
        piece = t.piece()
        r, c = np.unravel_index(np.argmax(np.abs(piece)), piece.shape)
        assert piece[r, c] == pytest.approx(w[r, c], rel=0.1)
    row = alphahat.analyze({"w": w}, randomize=True, seed=0).details.iloc[0]
    assert result.layers.loc[0, "num_traps"] == row["num_traps"] == len(traps)
    assert result.layers.loc[0, "spike_edge"] > row["rand_bulk_max"] - 1e-12


def test_gaussian_weights_have_no_trap_over_seeds() -> None:
    """False-positive rate: 0 of 12 seeded Gaussian 200 × 100 layers (the TW margin √t)."""
    found = sum(
        int(analyze_traps({"w": np.random.default_rng(s).normal(size=(200, 100))}, seed=s)
            .summary.loc[0, "num_traps"])
        for s in range(12)
    )  # fmt: skip
    assert found == 0


@pytest.mark.parametrize("method", ["noise", "mean"])
def test_remove_traps_leaves_the_bulk_and_never_edits_in_place(method: str, tmp_path: Path) -> None:
    w = planted()
    before = w.copy()
    model = {"w": w, "bias": np.ones(3)}
    result = analyze_traps(model, seed=0)
    cleaned = remove_traps(model, result, method=method)  # type: ignore[arg-type]
    np.testing.assert_array_equal(w, before)
    assert cleaned.details.loc[0, "traps_removed"] == 4
    np.testing.assert_array_equal(cleaned.weights["bias"], np.ones(3))
    after = analyze_traps(cleaned.weights, seed=0)
    assert after.summary.loc[0, "num_traps"] == 0
    # the bulk: the MP edge of the closed form N s² (1 + 1/√Q)², and W's own ESD below it
    edge = 400 * STD**2 * (1 + 2**-0.5) ** 2
    assert after.layers.loc[0, "rand_bulk_max"] == pytest.approx(edge, rel=0.05)
    changed = cleaned.weights["w"] != w
    assert cleaned.details.loc[0, "entries_replaced"] == changed.sum() >= 4
    assert all(changed[r, c] for r in ROWS for c in COLS)  # the rest of W as it was
    clean_evals = np.linalg.svd(cleaned.weights["w"], compute_uv=False) ** 2
    pure = np.random.default_rng(0).normal(scale=STD, size=(400, 200))
    pure_evals = np.linalg.svd(pure, compute_uv=False) ** 2
    np.testing.assert_allclose(np.quantile(clean_evals, [0.1, 0.5, 0.9]),
                               np.quantile(pure_evals, [0.1, 0.5, 0.9]), rtol=0.03)  # fmt: skip
    assert clean_evals.max() < 1.1 * edge
    if method == "mean":
        changed = np.abs(cleaned.weights["w"] - w) > 1.0
        assert changed.sum() == 4  # the planted entries, now the mean of the rest
    cleaned.save(tmp_path / "clean.safetensors")
    from safetensors.numpy import load_file

    np.testing.assert_array_equal(
        load_file(tmp_path / "clean.safetensors")["w"], cleaned.weights["w"]
    )


def test_remove_traps_refuses_another_model() -> None:
    result = analyze_traps({"w": planted()}, seed=0)
    with pytest.raises(ValueError, match="shape"):
        remove_traps({"w": np.zeros((200, 400))}, result)


def test_a_failing_layer_keeps_the_others() -> None:
    bad = np.random.default_rng(0).normal(size=(60, 30))
    bad[0, 0] = np.nan
    result = analyze_traps({"bad": bad, "good": planted()}, seed=0)
    layers = result.layers.set_index("name")
    assert layers.loc["bad", "status"] == "failed" and layers.loc["bad", "reason"]
    assert layers.loc["good", "num_traps"] == 4


# --- real weights, from the command line -----------------------------------------------------


def _cli(*args: str) -> str:
    from typer.testing import CliRunner

    from alphahat.cli import app

    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def _check_counts(data: dict, model: str | Path, **options: object) -> None:  # type: ignore[type-arg]
    rows = alphahat.analyze(model, randomize=True, **options).details.set_index("name")  # type: ignore[arg-type]
    per_layer: dict[str, int] = {}
    for trap in data["traps"]:
        per_layer[trap["name"]] = per_layer.get(trap["name"], 0) + 1
    for layer in data["layers"]:
        count = per_layer.get(layer["name"], 0)
        assert count == layer["trap_rows"]
        assert round(count / layer["replicas"]) == rows.loc[layer["name"], "num_traps"]
        if layer["replicas"] == 1:  # one shuffle: num_traps is the number of rows
            assert count == rows.loc[layer["name"], "num_traps"]


def _onet() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or spec.origin is None:
        pytest.skip("facenet-pytorch is not installed")
    return Path(spec.origin).parent / "data" / "onet.pt"


@pytest.mark.slow
def test_cli_traps_on_mtcnn_onet_matches_num_traps(tmp_path: Path) -> None:
    onet = _onet()
    out = tmp_path / "traps.json"
    _cli("traps", str(onet), "-f", "json", "-o", str(out), "--html", str(tmp_path / "t.html"))
    data = json.loads(out.read_text())
    assert data["summary"][0]["num_traps"] > 0
    _check_counts(data, onet)
    page = (tmp_path / "t.html").read_text()
    assert "Correlation traps" in page and page.count("data:image/png") == len(data["traps"])
    csv = _cli("traps", str(onet), "-f", "csv", "--layers", "conv3.weight")
    assert csv.splitlines()[0].startswith("layer_id,name,replica,matrix,mode,lambda")
    assert len(csv.splitlines()) - 1 == sum(t["name"] == "conv3.weight" for t in data["traps"])


@pytest.mark.slow
def test_cli_traps_on_minilm_matches_num_traps(minilm_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "traps.json"
    _cli("traps", str(minilm_path), "-f", "json", "-o", str(out), "--layers", "encoder.layer.0.*")
    data = json.loads(out.read_text())
    assert len(data["layers"]) == 6
    _check_counts(data, minilm_path, layers=["encoder.layer.0.*"])


def test_cli_randomize_and_remove(tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    path = tmp_path / "m.safetensors"
    save_file({"w": planted().astype(np.float32)}, str(path))
    _cli("randomize", str(path), "-o", str(tmp_path / "r.safetensors"), "--seed", "4")
    shuffled = load_file(str(tmp_path / "r.safetensors"))["w"]
    np.testing.assert_array_equal(shuffled, randomize_model(path, seed=4).weights["w"])
    _cli("traps", str(path), "--remove", "mean", "--cleaned", str(tmp_path / "c.safetensors"))
    assert analyze_traps(tmp_path / "c.safetensors").summary.loc[0, "num_traps"] == 0


def test_report_has_the_traps_section(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    path = tmp_path / "m.safetensors"
    save_file({"w": planted().astype(np.float32)}, str(path))
    page = tmp_path / "r.html"
    _cli("report", str(path), "-o", str(page), "--traps", "-d", "none", "-q")
    text = page.read_text()
    assert '<section id="traps">' in text and 'href="#traps"' in text
    assert text.count("trap heat map of w") == 4
    _cli("report", str(path), "-o", str(page), "-d", "none", "-q")
    assert '<section id="traps">' not in page.read_text()
