"""The architecture, checked: one direction of data flow, no import cycle, small orchestration.

The chain (docs/architecture.md): sources → layers → spectrum → fit → metrics → pipeline →
report; the run and the facades above it; plot; the HTML report; compare and compat; the CLI.
``engine`` (executors, journal, hashing, read-ahead, progress) and the foundation modules know
nothing of the chain. Every import counts — at module level, under ``TYPE_CHECKING`` and
inside functions — since each is a dependency the next reader must follow.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "alphahat"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"

#: Each top-level unit of the package (folder or module) and its place in the chain: a unit may
#: import only units of its own rank or lower. A new folder or module must be placed here.
RANKS = {
    "_version": 0,
    "_imports": 0,
    "errors": 0,
    "engine": 0,
    "sources": 1,
    "layers": 2,
    "spectrum": 3,
    "fit": 4,
    "metrics": 5,
    "pipeline": 6,
    "report": 7,
    "run": 8,
    "analysis": 8,
    "distances": 8,
    "smoothing": 8,
    "traps": 8,
    "weights": 8,
    "zoo": 8,
    "allocation": 8,  # reads reports (α tables) only; the CLI's allocate command calls it
    "monitor": 9,  # the α monitor of a model in training (uses run, pipeline; plots trends)
    "plot": 9,
    "html_report": 10,
    "compare": 11,
    "compat": 11,
    "cli": 12,
    "__main__": 13,
    "__init__": 13,  # the package's lazy facade (alphahat.analyze, …)
}
#: Where the orchestration lives: no function body there over this many lines.
ORCHESTRATION = ("run.py", "analysis.py", "pipeline", "engine", "cli")
MAX_FUNCTION_LINES = 80


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module of ``alphahat.x.y[.attr]``: the longest prefix that is a module."""
    while name and name not in MODULES:
        if "." not in name:
            return None
        name = name.rsplit(".", 1)[0]
    return name or None


def _imports(module: str) -> set[str]:
    """Every alphahat module ``module`` imports, anywhere in its source."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            if name.startswith("alphahat"):
                target = _resolve(name)
                if target is not None and target != module:
                    found.add(target)
    return found


GRAPH = {module: _imports(module) for module in MODULES}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_unit_has_a_place_in_the_chain() -> None:
    units = {_unit(m) for m in MODULES}
    assert units - set(RANKS) == set(), "place the new unit in RANKS and docs/architecture.md"


def test_no_module_imports_one_later_in_the_chain() -> None:
    wrong = sorted(
        f"{a} imports {b}"
        for a, targets in GRAPH.items()
        for b in targets
        if RANKS[_unit(b)] > RANKS[_unit(a)]
    )
    assert wrong == []


def test_engine_and_foundation_know_nothing_of_the_chain() -> None:
    for module, targets in GRAPH.items():
        if RANKS[_unit(module)] == 0:
            assert {_unit(t) for t in targets} <= {"_version", "_imports", "errors", "engine"}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_anywhere() -> None:
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    long = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]  # the docstring
            if not body:
                continue
            lines = (body[-1].end_lineno or body[-1].lineno) - body[0].lineno + 1
            if lines > MAX_FUNCTION_LINES:
                long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({lines} lines)")
    return long


def test_no_long_function_in_the_orchestration() -> None:
    files = [
        p
        for p in PACKAGE.rglob("*.py")
        if any(str(p.relative_to(PACKAGE)).startswith(part) for part in ORCHESTRATION)
    ]
    assert len(files) > 10
    assert [f for p in files for f in _long_functions(p)] == []


@pytest.mark.parametrize("unit", sorted({_unit(m) for m in MODULES} - {"__init__", "__main__"}))
def test_docs_architecture_shows_every_unit(unit: str) -> None:
    text = DOCS.read_text(encoding="utf-8")
    folder = (PACKAGE / unit).is_dir()
    assert (f"`{unit}/`" if folder else f"`{unit}.py`") in text, f"{unit} is not in the picture"


def test_the_graph_sees_imports_inside_functions() -> None:
    # analysis imports the spectrum's randomize module only inside a function
    assert "alphahat.spectrum.randomize" in GRAPH["alphahat.analysis"]
    assert defaultdict(set, GRAPH)["alphahat.cli"] >= {"alphahat.cli.analyze"}
