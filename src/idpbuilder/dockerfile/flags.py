"""Instruction flags and values as BuildKit checks them: ``--name[=value]`` words (its ``BFlags``), Go
durations, ``--chmod`` values, and "did you mean" suggestions; ``InstructionError`` for bad input."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeAlias

from idpbuilder.dockerfile.lexer import go_quote
from idpbuilder.errors import BuildError

__all__ = [
    "Expander",
    "Flags",
    "InstructionError",
    "did_you_mean",
    "parse_chmod",
    "parse_duration",
    "suggest",
]

Expander: TypeAlias = Callable[[str], str]


class InstructionError(BuildError):
    """An instruction-level error; ``parse_instruction`` re-raises it with file, line and keyword."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)


# ---------------------------------------------------------------------------------------------------------------
# helpers


def _levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def suggest(value: str, options: Sequence[str], *, case_sensitive: bool = False) -> str | None:
    """The option closest to a mistyped ``value`` (edit distance at most 2, as BuildKit suggests), else None."""
    if not value:
        return None
    best: str | None = None
    best_dist = 3
    needle = value if case_sensitive else value.lower()
    for opt in options:
        d = _levenshtein(needle, opt if case_sensitive else opt.lower())
        if d < best_dist:
            best, best_dist = opt, d
    return best


def did_you_mean(value: str, options: Sequence[str], *, case_sensitive: bool = False) -> str:
    s = suggest(value, options, case_sensitive=case_sensitive)
    return f" (did you mean {s}?)" if s is not None else ""


_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
# patterns as strings: compiled (and cached by re) on first use, not when a build imports this module
_RE_DURATION_PART = r"([0-9]*(?:\.[0-9]*)?)([^0-9.]+)"


def parse_duration(s: str) -> int:
    """Parse a Go duration string (``1m30s``, ``500ms``, ``0``) into nanoseconds; ValueError when invalid."""
    orig = s
    neg = False
    if s[:1] in ("+", "-"):
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if s == "":
        raise ValueError(f"time: invalid duration {go_quote(orig)}")
    total = 0.0
    pos = 0
    while pos < len(s):
        m = re.compile(_RE_DURATION_PART).match(s, pos)
        if m is None or m.group(1) in ("", "."):
            raise ValueError(f"time: invalid duration {go_quote(orig)}")
        unit = m.group(2)
        if unit not in _DURATION_UNITS:
            raise ValueError(f"time: unknown unit {go_quote(unit)} in duration {go_quote(orig)}")
        total += float(m.group(1)) * _DURATION_UNITS[unit]
        pos = m.end()
    ns = int(round(total))
    return -ns if neg else ns


_RE_SYMBOLIC_CHMOD = r"^[ugoa]*(?:[-+=](?:[rwxXst]*|[ugo]))+(?:,[ugoa]*(?:[-+=](?:[rwxXst]*|[ugo]))+)*$"


def parse_chmod(value: str) -> int | str:
    """Validate an (expanded) ``--chmod`` value: an octal mode up to 07777 as int, or a symbolic mode as str."""
    if re.fullmatch(r"[0-7]+", value) and int(value, 8) <= 0o7777:
        return int(value, 8)
    if not value[:1].isdigit() and re.match(_RE_SYMBOLIC_CHMOD, value):
        return value
    raise BuildError(
        f"invalid chmod parameter: '{value}'. it should be octal string and between 0 and 07777",
        hint="use an octal mode like 0755 or a symbolic one like u=rwx,go=rx",
    )


class Flags:
    """BuildKit's BFlags: ``--name``/``--name=value`` words checked against the flags an instruction declares."""

    def __init__(self, keyword: str, words: Sequence[str]) -> None:
        self.keyword = keyword
        self.words = list(words)
        self.kinds: dict[str, str] = {}
        self.values: dict[str, str | list[str]] = {}
        self.used: set[str] = set()

    def add_bool(self, name: str) -> None:
        self.kinds[name] = "bool"

    def add_string(self, name: str) -> None:
        self.kinds[name] = "string"

    def add_strings(self, name: str) -> None:
        self.kinds[name] = "strings"
        self.values[name] = []

    def parse(self) -> None:
        for word in self.words:
            if not word.startswith("--"):
                raise InstructionError(f"arg should start with -- : {word}")
            if word == "--":
                return
            name, has_value, value = word[2:].partition("=")
            kind = self.kinds.get(name)
            if kind is None:
                valid = ", ".join("--" + k for k in sorted(self.kinds)) or "no flags"
                raise InstructionError(
                    f"unknown flag: --{name}{did_you_mean(name, sorted(self.kinds))}",
                    hint=f"{self.keyword.upper()} accepts {valid}",
                )
            if name in self.used and kind != "strings":
                raise InstructionError(f"duplicate flag specified: --{name}")
            self.used.add(name)
            if kind == "bool":
                v = value.lower() if has_value else "true"
                if v in ("", "true"):
                    self.values[name] = "true"
                elif v == "false":
                    self.values[name] = "false"
                else:
                    raise InstructionError(f"expecting boolean value for flag --{name}, not: {value}")
            elif not has_value:
                raise InstructionError(f"missing a value on flag: --{name}")
            elif kind == "string":
                self.values[name] = value
            else:
                lst = self.values[name]
                assert isinstance(lst, list)
                lst.append(value)

    def string(self, name: str) -> str | None:
        v = self.values.get(name)
        return v if isinstance(v, str) else None

    def strings(self, name: str) -> tuple[str, ...]:
        v = self.values.get(name)
        return tuple(v) if isinstance(v, list) else ()

    def bool(self, name: str) -> bool:
        return self.values.get(name) == "true"
