"""The builder's module layout: imports point one way (handlers never import the builder or executor),
and no module grows past 600 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import idpbuilder.builder
import idpbuilder.dockerfile

BUILDER = Path(idpbuilder.builder.__file__).parent
DOCKERFILE = Path(idpbuilder.dockerfile.__file__).parent

# each module may import only the builder modules listed before it (and itself never)
ORDER = [
    "fs",
    "modes",
    "rootfs",
    "copy",
    "cache",
    "add",
    "config",
    "stages",
    "options",
    "inputs",
    "outputs",
    "progress",
    "state",
    "context",
    "metadata",
    "copy_add",
    "run",
    "dispatch",
    "executor",
    "builder",
    "remote_cache",
]


def _builder_imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for n in names:
            if n.startswith("idpbuilder.builder.") and n.count(".") == 2:
                out.add(n.rsplit(".", 1)[1])
    return out


def test_every_builder_module_is_placed_in_the_order() -> None:
    modules = {p.stem for p in BUILDER.glob("*.py")} - {"__init__"}
    assert modules == set(ORDER)


def test_builder_modules_import_only_lower_modules() -> None:
    for i, name in enumerate(ORDER):
        allowed = set(ORDER[:i])
        bad = _builder_imports(BUILDER / f"{name}.py") - allowed
        assert not bad, f"builder/{name}.py imports {sorted(bad)}, which are not below it"


def test_no_module_over_600_lines() -> None:
    files = [
        *BUILDER.glob("*.py"),
        *(DOCKERFILE / f"{n}.py" for n in ("instructions", "model", "flags", "mounts")),
    ]
    for f in files:
        n = len(f.read_text().splitlines())
        assert n <= 600, f"{f.name} has {n} lines"
