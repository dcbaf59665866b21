"""Checks that keep the structure described in ARCHITECTURE.md.

1. No import cycles between the modules of ``src/idpbuilder``. The graph comes from the AST of every module:
   ``import x.y`` and ``from x import y`` (absolute and relative, at module level and inside functions; a
   cycle hidden behind a lazy import is still a cycle of the design). ``from pkg import name`` points at
   ``pkg.name`` when that is a module, else at ``pkg``; a parent package's ``__init__`` is not counted as
   imported by importing its submodule (as in grimp/import-linter). Imports guarded by ``if TYPE_CHECKING:``
   are left out of this check: they never run, so they cannot make an import-time cycle, and they are the
   usual way to name a type across a seam.
2. No module over ``MAX_LINES`` lines under ``src/`` and ``tools/``.
3. Every ``tests/**/test_*.py`` file is collected by pytest (a folder or name pytest skips hides tests).
4. Layers point one way: each top-level package of ``idpbuilder`` may import only the packages listed in
   ``ALLOWED``. Here ``TYPE_CHECKING`` imports count: a type from a higher layer is still a dependency on it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
PACKAGE = "idpbuilder"
MAX_LINES = 600

# Allowed dependencies per top-level part of idpbuilder (package or module), bottom layer first:
#   cli -> (cluster, builder) -> (registry, sandbox) -> image -> store -> (oci, reference, digest, owner, errors)
# dockerfile/ is pure and depends only on errors; credentials/ sits beside store (used by registry).
# "idpbuilder" is the root package's __init__ (the version); "__main__" is ``python -m idpbuilder``;
# "_records" is the project's ``@dataclass`` (cheap to define at start-up), usable everywhere.
_BASE = {"errors", "digest", "reference", "oci", "owner", "idpbuilder", "_records"}
ALLOWED: dict[str, set[str]] = {
    "idpbuilder": set(),
    "_records": set(),
    "errors": {"_records"},
    "owner": {"_records"},
    "digest": {"errors", "_records"},
    "reference": {"errors", "digest", "_records"},
    "oci": {"errors", "digest", "reference", "_records"},
    "store": _BASE,
    "credentials": _BASE,
    "image": _BASE | {"store"},
    "dockerfile": {"errors", "_records"},
    "sandbox": _BASE | {"store", "image"},
    "registry": _BASE | {"store", "image", "credentials"},
    "cluster": _BASE | {"store", "image", "credentials", "registry"},
    "builder": _BASE | {"store", "image", "credentials", "registry", "sandbox", "dockerfile"},
    "cli": _BASE
    | {"store", "image", "credentials", "registry", "sandbox", "dockerfile", "cluster", "builder"},
    "__main__": {"cli"},
}


@dataclass(frozen=True)
class Import:
    """One import statement's target module, as seen from ``source``."""

    source: str
    target: str
    line: int
    type_only: bool  # under ``if TYPE_CHECKING:``


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name, for its __init__)."""
    mods: dict[str, Path] = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, type_only: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import below ``node`` with whether it sits under ``if TYPE_CHECKING:`` (its else runs)."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node, type_only
        return
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        for child in node.body:
            yield from _walk(child, True)
        for child in node.orelse:
            yield from _walk(child, type_only)
        return
    for child in ast.iter_child_nodes(node):
        yield from _walk(child, type_only)


def imports(mods: dict[str, Path]) -> list[Import]:
    """The internal imports of every module (targets resolved to modules of ``mods``)."""
    found: list[Import] = []
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node, type_only in _walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                for a in node.names:
                    sub = f"{module}.{a.name}"
                    targets.append(sub if sub in mods else module)
            for t in targets:
                while t and t not in mods:  # ``import idpbuilder.x.y`` of a name that is not a module
                    t = t.rpartition(".")[0]
                if t and t.split(".")[0] == PACKAGE and t != name:
                    found.append(Import(name, t, node.lineno, type_only))
    return found


def _sccs(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp: list[str] = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def _shortest_cycle(graph: dict[str, set[str]], start: str, within: set[str]) -> list[str]:
    """The shortest chain start -> ... -> start inside ``within`` (BFS)."""
    prev: dict[str, str] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(graph.get(v, ())):
            if w not in within:
                continue
            if w == start:
                chain = [v]
                while chain[-1] != start:
                    chain.append(prev[chain[-1]])
                return [start, *reversed(chain[:-1]), start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return [start]


def find_cycles(edges: list[Import]) -> list[list[str]]:
    """Import cycles as module chains (a -> b -> ... -> a): enough chains to cover every module in a cycle."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
    chains: list[list[str]] = []
    for comp in _sccs(graph):
        members = set(comp)
        covered: set[str] = set()
        for m in comp:
            if m not in covered:
                chain = _shortest_cycle(graph, m, members)
                covered.update(chain)
                chains.append(chain)
    return chains


def _part(module: str) -> str:
    """The top-level part of idpbuilder a module belongs to (``idpbuilder`` for the root __init__)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


# ---------------------------------------------------------------------------------------------------- checks


def test_no_import_cycles_between_modules() -> None:
    runtime = [e for e in imports(_modules()) if not e.type_only]
    cycles = find_cycles(runtime)
    assert not cycles, f"{len(cycles)} import cycle(s) in src/{PACKAGE}:\n" + "\n".join(
        "  " + " -> ".join(c) for c in cycles
    )


def test_no_module_over_the_line_limit() -> None:
    too_long = []
    for top in (REPO / "src", REPO / "tools"):
        for path in sorted(top.rglob("*.py")):
            n = len(path.read_text().splitlines())
            if n > MAX_LINES:
                too_long.append(f"  {path.relative_to(REPO)}: {n} lines")
    assert not too_long, f"modules over {MAX_LINES} lines (split them along their concerns):\n" + "\n".join(
        too_long
    )


def test_every_test_file_is_collected() -> None:
    files = {p.relative_to(REPO).as_posix() for p in (REPO / "tests").rglob("test_*.py")}
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-o", "addopts=", "-p", "no:cacheprovider"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    collected = {line.split("::", 1)[0] for line in p.stdout.splitlines() if "::" in line}
    missing = sorted(files - collected)
    assert p.returncode == 0, (
        f"pytest --collect-only failed ({p.returncode}):\n{p.stdout[-3000:]}{p.stderr[-2000:]}"
    )
    assert not missing, "test files pytest does not collect:\n" + "\n".join(f"  {m}" for m in missing)


def test_layers_point_one_way() -> None:
    mods = _modules()
    assert {_part(m) for m in mods} <= set(ALLOWED), "a new top-level package: add it to ALLOWED"
    wrong = sorted(
        {
            f"  {e.source} -> {e.target} ({_part(e.source)} may not depend on {_part(e.target)}"
            f"{', type-only' if e.type_only else ''}; line {e.line})"
            for e in imports(mods)
            if _part(e.source) != _part(e.target) and _part(e.target) not in ALLOWED[_part(e.source)]
        }
    )
    assert not wrong, "imports against the layering (see ALLOWED):\n" + "\n".join(wrong)


def test_the_graph_builder_sees_relative_type_checking_and_lazy_imports(tmp_path: Path) -> None:
    pkg = tmp_path / PACKAGE
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("from . import x\n")
    (pkg / "a" / "x.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..b import y\n"
        "def f():\n    from idpbuilder.a import x\n"
    )
    (pkg / "b.py").write_text("from .a.x import f\nimport idpbuilder.a.x.f\n")
    mods = {"idpbuilder": pkg / "__init__.py", "idpbuilder.a": pkg / "a" / "__init__.py"}
    mods |= {"idpbuilder.a.x": pkg / "a" / "x.py", "idpbuilder.b": pkg / "b.py"}
    got = {(e.source, e.target, e.type_only) for e in imports(mods)}
    assert got == {
        ("idpbuilder.a", "idpbuilder.a.x", False),
        ("idpbuilder.a.x", "idpbuilder.b", True),
        ("idpbuilder.b", "idpbuilder.a.x", False),
    }
    edges = [
        Import(s, t, 1, False) for s, t in [("m.a", "m.b"), ("m.b", "m.c"), ("m.c", "m.a"), ("m.c", "m.d")]
    ]
    assert find_cycles(edges) == [["m.a", "m.b", "m.c", "m.a"]]
