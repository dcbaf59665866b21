"""Locate and read the BuildKit conformance data (never copied into the repo).

The directory comes from ``IDPBUILDER_CONFORMANCE`` (default ``<repo>/../shared/conformance/buildkit``); tests
that need it are skipped with a clear reason when it is absent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def conformance_root() -> Path:
    """The BuildKit conformance directory (may not exist)."""
    env = os.environ.get("IDPBUILDER_CONFORMANCE")
    return Path(env) if env else REPO.parent / "shared" / "conformance" / "buildkit"


def extras() -> Path:
    """The ``_extras`` directory holding parser and shell fixtures."""
    return conformance_root() / "_extras"


MISSING = f"BuildKit conformance data not found at {extras()} (set IDPBUILDER_CONFORMANCE)"


def params(items: list[Any], ids: list[str] | None = None) -> list[Any]:
    """pytest params, or a single skipped param when the data is missing."""
    if not items:
        return [pytest.param(None, marks=pytest.mark.skip(reason=MISSING), id="missing")]
    return [
        pytest.param(it, id=i)
        for it, i in zip(items, ids or [str(n) for n in range(len(items))], strict=True)
    ]


def parser_cases() -> list[Path]:
    """Directories under parser/testfiles (each with Dockerfile and result)."""
    d = extras() / "parser" / "testfiles"
    return sorted(p for p in d.iterdir() if p.is_dir()) if d.is_dir() else []


def parser_negative_cases() -> list[Path]:
    """Directories under parser/testfiles-negative."""
    d = extras() / "parser" / "testfiles-negative"
    return sorted(p for p in d.iterdir() if p.is_dir()) if d.is_dir() else []


@dataclass(frozen=True)
class EnvVarRow:
    """One envVarTest row."""

    lineno: int
    platform: str
    source: str
    expected: str


def env_var_rows() -> list[EnvVarRow]:
    """The A and U rows of shell/envVarTest, parsed as lex_test.go does."""
    path = extras() / "shell" / "envVarTest"
    if not path.is_file():
        return []
    rows: list[EnvVarRow] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        parts = line.split("|")
        assert len(parts) == 3, f"envVarTest:{n}: malformed row {line!r}"
        platform, source, expected = (p.strip() for p in parts)
        if platform in ("A", "U"):
            rows.append(EnvVarRow(n, platform, source, expected))
    return rows


ENV_VAR_ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}


@dataclass(frozen=True)
class WordsRow:
    """One wordsTest row with the environment accumulated from the ENV lines above it."""

    lineno: int
    source: str
    expected: tuple[str, ...]
    env: tuple[tuple[str, str], ...]


def words_rows() -> list[WordsRow]:
    """The rows of shell/wordsTest, parsed as lex_test.go does."""
    path = extras() / "shell" / "wordsTest"
    if not path.is_file():
        return []
    env: dict[str, str] = {}
    rows: list[WordsRow] = []
    for n, line in enumerate(_lines(path), 1):
        if line.startswith("#"):
            continue
        if line.startswith("ENV "):
            k, _, v = line[3:].lstrip(" ").partition("=")
            env[k] = v
            continue
        parts = line.split("|")
        assert len(parts) == 2, f"wordsTest:{n}: malformed row {line!r}"
        rows.append(WordsRow(n, parts[0].strip(), tuple(parts[1].lstrip(" ").split(",")), tuple(env.items())))
    return rows


def _lines(path: Path) -> Iterator[str]:
    # bufio.Scanner semantics: a final newline does not produce an empty last line
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    yield from lines


def case_dockerfiles() -> list[Path]:
    """Every Dockerfile variant in the BuildKit build cases (``<case>/context/*Dockerfile*``), symlink stubs
    (a file whose whole content names a sibling file) resolved."""
    root = conformance_root()
    if not root.is_dir():
        return []
    out: list[Path] = []
    for case in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        ctx = case / "context"
        if not ctx.is_dir():
            continue
        for df in sorted(ctx.glob("*Dockerfile*")):
            if df.is_file() and not df.name.endswith(".dockerignore"):
                out.append(df)
    return out


def resolve_stub(path: Path) -> Path:
    """Follow a materialised symlink: a file whose only content is the name of a sibling file."""
    data = path.read_bytes()
    name = data.decode("utf-8", "replace").strip()
    if len(data) < 256 and name and "\n" not in name and " " not in name and (path.parent / name).is_file():
        return path.parent / name
    return path
