"""The source's layout: modules import each other one way (no circles), so that each layer
can be read, tested and replaced without the ones above it (docs/design.md, "Layout")."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PKG = SRC / "vmemsim"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    p = SRC.joinpath(*name.split("."))
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists()


def type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def imports(path: Path) -> set[str]:
    """The vmemsim modules `path` imports when it runs, at import time or inside a function;
    not those imported for type checking only (`if TYPE_CHECKING:`)."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("vmemsim"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            if base.startswith("vmemsim"):
                for a in node.names:  # `from pkg import module` imports the module
                    sub = f"{base}.{a.name}"
                    out.add(sub if is_module(sub) else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    out.discard(here)
    return out


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in sorted(PKG.rglob("*.py"))}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            strong(v)
    return out


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_imports_are_read_as_python_runs_them(tmp_path: Path) -> None:
    g = graph()
    assert "vmemsim.hypervisor.control" in g["vmemsim.engine"]
    assert "vmemsim.engine" in g["vmemsim.baseline"]
    # A type-only import is not an edge: the recorder names Simulation for type checking.
    assert "vmemsim.engine" not in g["vmemsim.metrics.recorder"]


def test_no_import_circles() -> None:
    assert cycles(graph()) == []


def test_the_engine_is_the_clock_only() -> None:
    """The control plane is in hypervisor/, the guest's side in guest/, the baseline apart:
    engine.py stays a few hundred lines a newcomer reads in minutes."""
    lines = (PKG / "engine.py").read_text().count("\n")
    assert lines < 300, lines
