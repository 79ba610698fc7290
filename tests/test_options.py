"""The option table: declared once, validated with one message shape, the same from Python and CLI.

Checks that every keyword of the public entry points is a row of the table with the table's
default, that the CLI's flags are generated from it, that no other file writes an option's
default, that a wrong value gets ``"<option> must be <requirement>; got <value>"`` from
``alphahat.analyze`` and ``alphahat analyze --<flag>`` alike, and that the reference-tool shim
maps its names through the table.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.main import get_command
from typer.testing import CliRunner

import alphahat
from alphahat.analysis import analyze, describe, randomized_eigenvalues
from alphahat.cli import app
from alphahat.errors import OptionError
from alphahat.layers import LayerFilter
from alphahat.pipeline.options import (
    OPTION_TABLE,
    AnalysisOptions,
    ByteSize,
    Choice,
    Device,
    ExecutionOptions,
    Flag,
    Integer,
    Layers,
    NonZeroInteger,
    Number,
    SourceOptions,
    option_specs,
    reference_options,
)

SRC = Path(__file__).resolve().parents[1] / "src" / "alphahat"
runner = CliRunner()


def test_every_field_of_the_option_classes_is_a_row() -> None:
    for cls in (AnalysisOptions, ExecutionOptions, SourceOptions):
        fields = [f.name for f in cls.__dataclass_fields__.values()]
        assert [s.name for s in option_specs(cls)] == fields
    for spec in OPTION_TABLE.values():
        assert spec.help.strip() and spec.help.strip()[-1] in ".)", spec.name
        assert spec.check(spec.default) == spec.check(spec.default)  # the default is valid


def _keywords(function: Any) -> dict[str, Any]:
    params = inspect.signature(function).parameters.values()
    return {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY}


def test_analyze_takes_every_option_as_a_keyword_with_the_tables_default() -> None:
    keywords = _keywords(analyze)
    assert list(keywords) == list(OPTION_TABLE)  # every option, in table order
    for name, value in keywords.items():
        spec = OPTION_TABLE[name]
        assert spec.check(value) == spec.check(spec.default), name
    assert alphahat.analyze is analyze


@pytest.mark.parametrize("function", [describe, randomized_eigenvalues])
def test_the_other_entry_points_take_rows_with_the_tables_defaults(function: Any) -> None:
    keywords = _keywords(function)
    assert keywords and set(keywords) <= set(OPTION_TABLE)
    for name, value in keywords.items():
        spec = OPTION_TABLE[name]
        assert spec.check(value) == spec.check(spec.default), name


#: Options with a default that one would be tempted to write again elsewhere.
WATCHED = ("min_evals", "evals_threshold", "conv_scale", "fit", "backend", "fft_size")


@pytest.mark.parametrize("name", WATCHED)
def test_no_other_file_writes_the_default(name: str) -> None:
    default = OPTION_TABLE[name].default
    spellings = {repr(default)} | ({"1e-5", "1e-05"} if name == "evals_threshold" else set())
    values = "|".join(re.escape(s) for s in spellings)
    pattern = re.compile(rf"\b{name}\s*(:[^=\n]*)?=\s*({values})(?![\w.])")
    offenders = [
        f"{path.relative_to(SRC)}:{number}"
        for path in SRC.rglob("*.py")
        if path.name != "options.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


def test_the_default_check_would_see_a_copy(tmp_path: Path) -> None:
    pattern = re.compile(r"\bmin_evals\s*(:[^=\n]*)?=\s*(8)(?![\w.])")
    assert pattern.search("    min_evals: int = 8,")
    assert pattern.search("plan_tensors(refs, min_evals=8)")
    assert not pattern.search("min_evals: int = DEFAULTS.min_evals")


def _bad_value(spec: Any) -> tuple[Any, str]:
    """A value the row refuses, as Python would pass it and as the command line writes it."""
    constraint = spec.constraint
    if isinstance(constraint, NonZeroInteger):
        return 0, "0"
    if isinstance(constraint, Integer):
        bad = (constraint.minimum or 0) - 3
        return bad, str(bad)
    if isinstance(constraint, Number):
        return -1.0, "-1.0"
    if isinstance(constraint, Choice):
        return "nonsense", "nonsense"
    if isinstance(constraint, ByteSize):
        return "lots", "lots"
    if isinstance(constraint, Device):
        return "gpu7", "gpu7"
    raise AssertionError(spec.name)


CHECKED = [
    spec
    for spec in OPTION_TABLE.values()
    if spec.flag
    and not isinstance(spec.constraint, Flag | Layers)
    and type(spec.constraint).__name__ not in ("Anything", "TriState", "PathLike")
]


def test_the_checked_rows_cover_every_kind_of_constraint() -> None:
    kinds = {type(spec.constraint).__name__ for spec in CHECKED}
    assert kinds == {"Integer", "NonZeroInteger", "Number", "Choice", "ByteSize", "Device"}


@pytest.mark.parametrize("spec", CHECKED, ids=lambda s: s.name)
def test_one_message_from_python_and_from_the_cli(spec: Any, tmp_path: Path) -> None:
    value, text = _bad_value(spec)
    with pytest.raises(OptionError) as caught:
        analyze({"w": np.eye(20)}, **{spec.name: value})
    requirement = caught.value.requirement
    assert requirement
    either = "None or " if spec.constraint.optional else ""
    assert str(caught.value) == f"{spec.name} must be {either}{requirement}; got {value!r}"
    path = tmp_path / "w.npy"
    np.save(path, np.eye(20))
    result = runner.invoke(app, ["analyze", str(path), "-q", spec.cli_name, text])
    assert result.exit_code == 2, result.output
    parsed = spec.constraint.parse(spec.name, text)
    expected = f"alphahat: error: {spec.cli_name} must be {requirement}; got {parsed!r}"
    assert result.output.strip() == expected
    for third_party in ("Invalid value", "Input should be", "Traceback"):
        assert third_party not in result.output


def test_text_that_is_not_a_number_gets_the_same_shape(tmp_path: Path) -> None:
    path = tmp_path / "w.npy"
    np.save(path, np.eye(20))
    result = runner.invoke(app, ["analyze", str(path), "-q", "--min-evals", "abc"])
    assert result.exit_code == 2
    assert result.output.strip() == "alphahat: error: --min-evals must be an integer ≥ 0; got 'abc'"
    result = runner.invoke(app, ["analyze", str(path), "-q", "--format", "xml"])
    assert result.exit_code == 2
    assert "--format must be one of 'table', 'csv', 'json'; got 'xml'" in result.output


def test_values_are_normalised_at_the_boundary() -> None:
    options = AnalysisOptions(layers="encoder.*", max_memory="1KiB")
    assert options.layers == LayerFilter(globs=("encoder.*",))
    assert options.max_memory == 1024
    assert AnalysisOptions(layers=[3, "linear"]).layers == LayerFilter(ids=(3,), kinds=("linear",))
    assert AnalysisOptions(layers=None) == AnalysisOptions()
    with pytest.raises(OptionError, match="^min_evals must be an integer ≥ 0; got True$"):
        AnalysisOptions(min_evals=True)  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="max_evals must be None or an integer ≥ min_evals=8"):
        AnalysisOptions(max_evals=4)
    with pytest.raises(TypeError, match="unexpected keyword"):
        analyze({"w": np.eye(20)}, min_eval=3)  # type: ignore[call-arg]


def test_recorded_options_are_the_reports_options() -> None:
    recorded = [s.name for s in option_specs(AnalysisOptions) if s.recorded]
    in_use = [s.name for s in option_specs(AnalysisOptions) if s.recorded and not s.recorded_if]
    assert list(AnalysisOptions().as_dict()) == in_use  # the FARMS options only with FARMS
    farms = list(AnalysisOptions(estimator="farms").as_dict())
    intra = list(AnalysisOptions(intra=True).as_dict())
    float32 = list(AnalysisOptions(backend="torch", float32_tolerance=1e-4).as_dict())
    assert set(intra) - set(in_use) == {"intra", "sparsify"}  # recorded only with intra
    assert set(float32) - set(in_use) == {"float32_tolerance"}  # only when it is set
    assert [n for n in recorded if n in farms or n in intra or n in float32] == recorded
    assert farms == [n for n in recorded if n not in ("intra", "sparsify", "float32_tolerance")]
    assert "keep_fits" not in recorded  # it changes what a Report holds, never a number
    key = AnalysisOptions().rows_key()
    assert "include_embeddings" not in key and "keep_eigenvalues" not in key
    assert AnalysisOptions(min_evals=3).rows_key() != AnalysisOptions().rows_key()


def _cli_options(command: str) -> dict[str, Any]:
    click_command = get_command(app).commands[command]  # type: ignore[attr-defined]
    return {param.name: param for param in click_command.params}


def test_the_cli_flags_are_generated_from_the_table() -> None:
    params = _cli_options("analyze")
    for spec in OPTION_TABLE.values():
        if not spec.flag:
            assert spec.name not in params
            continue
        param = params[spec.name]
        declared = [*param.opts, *param.secondary_opts]
        alias = params.get(spec.name + "__alias")  # older spellings: a hidden parameter
        if spec.aliases:
            assert alias is not None and alias.hidden and list(alias.opts) == list(spec.aliases)
            declared += alias.opts
        for flag in spec.flags:
            for name in flag.split("/"):
                assert name in declared, (spec.name, name)
        assert param.help == spec.help
        if spec.default is not None and not isinstance(spec.default, bool | LayerFilter):
            assert param.default == str(spec.default)
    for command in ("describe", "plot", "report", "compare", "allocate", "traps", "randomize",
                    "weights"):  # fmt: skip
        for name, param in _cli_options(command).items():
            if name in OPTION_TABLE:
                assert param.help == OPTION_TABLE[name].help


def test_cli_help_shows_each_options_text_whole() -> None:
    result = runner.invoke(app, ["analyze", "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for spec in OPTION_TABLE.values():
        if spec.flag:
            assert " ".join(spec.help.split()) in text, spec.name
    assert "[slice i,j]" in text  # brackets are text, not markup


def test_the_reference_shim_maps_names_through_the_table() -> None:
    from alphahat.compat import WeightWatcher

    names = {spec.reference: spec for spec in reference_options()}
    assert {"conv2d_norm", "fix_fingers", "xmax", "max_evals", "detX", "fit"} <= set(names)
    signature = inspect.signature(WeightWatcher.analyze).parameters
    for reference, spec in names.items():
        if spec.name != "layers":
            assert signature[reference].default == spec.reference_value
    assert signature["max_evals"].default == 15000  # the reference tool's, not ours
    assert names["conv2d_norm"].from_reference(False) == "none"
    assert names["fit"].from_reference("truncated_power_law") == "TPL"
    assert names["fix_fingers"].from_reference(False) is None


def test_the_docs_table_is_the_option_table() -> None:
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location(
        "options_table", root / "scripts" / "options_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    docs = (root / "docs" / "architecture.md").read_text(encoding="utf-8")
    start = docs.index("<!-- options table: generated by scripts/options_table.py -->\n")
    table = docs[start:].split("\n", 1)[1].split("<!-- end of the options table -->")[0]
    assert table == module.options_markdown(), "run: python scripts/options_table.py"
