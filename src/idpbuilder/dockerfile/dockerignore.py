""".dockerignore reading and matching with Docker's exact semantics.

Behaviour follows moby/patternmatcher (``New``, ``MatchesOrParentMatches``, ``MatchesUsingParentResult``) and
``ignorefile.ReadAll``: Go ``filepath.Match`` syntax (``*``, ``?``, ``[a-z]``, ``[^x]``, ``\\`` escapes) plus
``**`` for any number of directories, ``!`` exceptions evaluated in order, later patterns winning, and a path
being excluded when it or any of its parent directories matches. Which excluded directories are walked at
all follows Docker's context walk (tonistiigi/fsutil): see ``IgnoreMatcher.excludes_dir_entirely``.
"""

from __future__ import annotations

import posixpath
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

from idpbuilder._records import dataclass
from idpbuilder.errors import UsageError

__all__ = ["IgnoreMatcher", "IgnorePattern", "clean_path", "read_ignore_file", "read_ignore_text"]

_REGEX_ESCAPE = frozenset(".+()|{}$")


def clean_path(p: str) -> str:
    """Go's ``filepath.Clean`` for slash paths (``""`` becomes ``"."``)."""
    return _go_clean(p)


def _go_clean(p: str) -> str:
    if p == "":
        return "."
    out = posixpath.normpath(p)
    # posixpath keeps a leading "//"; Go collapses it
    if out.startswith("//"):
        out = "/" + out.lstrip("/")
    return out


def read_ignore_text(text: str) -> list[str]:
    """Patterns of a .dockerignore body: comments and blank lines dropped, paths cleaned, leading "/" removed."""
    out: list[str] = []
    for n, line in enumerate(text.split("\n")):
        if n == 0 and line.startswith("\ufeff"):
            line = line[1:]
        line = line.rstrip("\r")
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern[0] == "!"
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = _go_clean(pattern)
            if len(pattern) > 1 and pattern[0] == "/":
                pattern = pattern[1:]
        out.append("!" + pattern if invert else pattern)
    return out


def read_ignore_file(context: Path, dockerfile: Path | None) -> list[str]:
    """Ignore patterns for a build: ``<Dockerfile>.dockerignore`` beside the Dockerfile wins over
    ``<context>/.dockerignore``; no file means no patterns."""
    candidates: list[Path] = []
    if dockerfile is not None:
        candidates.append(dockerfile.parent / (dockerfile.name + ".dockerignore"))
    candidates.append(context / ".dockerignore")
    for c in candidates:
        try:
            data = c.read_bytes()
        except FileNotFoundError:
            continue
        except IsADirectoryError:
            raise UsageError(f"reading {c}: is a directory", hint="remove it or make it a file") from None
        except OSError as e:
            raise UsageError(f"reading {c}: {e.strerror}") from None
        return read_ignore_text(data.decode("utf-8", errors="surrogateescape"))
    return []


def _validate_go_pattern(pattern: str) -> None:
    """Raise ValueError when Go's filepath.Match would report ErrBadPattern for ``pattern``."""

    def get_esc(chunk: str, i: int) -> int:
        # returns index after the (possibly escaped) class character at i
        if i >= len(chunk) or chunk[i] in "-]":
            raise ValueError
        if chunk[i] == "\\":
            i += 1
            if i >= len(chunk):
                raise ValueError
        i += 1
        if i >= len(chunk):
            raise ValueError
        return i

    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            nrange = 0
            while True:
                if i < n and pattern[i] == "]" and nrange > 0:
                    i += 1
                    break
                i = get_esc(pattern, i)
                if pattern[i] == "-":
                    i = get_esc(pattern, i + 1)
                nrange += 1
        elif c == "\\":
            i += 1
            if i >= n:
                raise ValueError
            i += 1
        else:
            i += 1


@dataclass
class IgnorePattern:
    """One compiled pattern (``exclusion`` is True for ``!`` re-inclusions)."""

    cleaned: str
    exclusion: bool
    kind: str  # exact | prefix | suffix | regexp
    regex: re.Pattern[str] | None
    dirs: tuple[str, ...]

    def match(self, path: str) -> bool:
        """Does this pattern match ``path`` itself (no parent logic)?"""
        if self.kind == "exact":
            return path == self.cleaned
        if self.kind == "prefix":
            return path.startswith(self.cleaned[:-2])
        if self.kind == "suffix":
            suffix = self.cleaned[2:]
            if path.endswith(suffix):
                return True
            return suffix[:1] == "/" and path == suffix[1:]
        assert self.regex is not None
        return self.regex.match(path) is not None


def _compile(cleaned: str, exclusion: bool) -> IgnorePattern:
    reg = ["^"]
    kind = "exact"
    i = 0
    n = len(cleaned)
    idx = 0
    while i < n:
        ch = cleaned[i]
        i += 1
        if ch == "*":
            if i < n and cleaned[i] == "*":
                i += 1
                if i < n and cleaned[i] == "/":
                    i += 1
                if i >= n:
                    if kind == "exact":
                        kind = "prefix"
                    else:
                        reg.append(".*")
                        kind = "regexp"
                else:
                    reg.append("(.*/)?")
                    kind = "regexp"
                if idx == 0:
                    kind = "suffix"
            else:
                reg.append("[^/]*")
                kind = "regexp"
        elif ch == "?":
            reg.append("[^/]")
            kind = "regexp"
        elif ch in _REGEX_ESCAPE:
            reg.append("\\" + ch)
        elif ch == "\\":
            if i < n:
                reg.append("\\" + cleaned[i])
                i += 1
                kind = "regexp"
            else:
                reg.append("\\\\")
        elif ch in "[]":
            reg.append(ch)
            kind = "regexp"
        else:
            reg.append(ch)
        idx += 1
    regex: re.Pattern[str] | None = None
    if kind == "regexp":
        reg.append(r"\Z")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            regex = re.compile("".join(reg))
    return IgnorePattern(
        cleaned=cleaned, exclusion=exclusion, kind=kind, regex=regex, dirs=tuple(cleaned.split("/"))
    )


class IgnoreMatcher:
    """Ordered .dockerignore patterns; a path is ignored when the last pattern matching it (or a parent) is not
    a ``!`` exception."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns: list[IgnorePattern] = []
        self.exclusions = False
        for raw in patterns:
            p = raw.strip()
            if not p:
                continue
            p = _go_clean(p)
            exclusion = False
            if p[0] == "!":
                if len(p) == 1:
                    raise UsageError(
                        'illegal exclusion pattern: "!"', hint="write !path to re-include a path"
                    )
                exclusion = True
                p = p[1:]
                self.exclusions = True
            try:
                _validate_go_pattern(p)
                self.patterns.append(_compile(p, exclusion))
            except (ValueError, re.error):
                raise UsageError(
                    f"invalid .dockerignore pattern {raw.strip()!r}: syntax error in pattern",
                    hint="patterns use Go filepath.Match syntax: * ? [a-z] [^x] and \\ escapes, plus **",
                ) from None

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def _match_pattern(self, pat: IgnorePattern, path: str, parents: list[str]) -> bool:
        if pat.match(path):
            return True
        return any(pat.match("/".join(parents[: i + 1])) for i in range(len(parents)))

    def matches(self, relpath: str) -> bool:
        """True if ``relpath`` (slash-separated, relative to the context) is excluded from the context."""
        path = _go_clean(relpath)
        if path == ".":
            return False
        parent = posixpath.dirname(path)
        parents = parent.split("/") if parent not in ("", ".") else []
        matched = False
        for pat in self.patterns:
            if pat.exclusion != matched:
                continue
            if self._match_pattern(pat, path, parents):
                matched = not pat.exclusion
        return matched

    def matches_exact(self, relpath: str) -> bool:
        """True if ``relpath`` itself matches (no parent-directory matching), as patternmatcher.MatchesExact."""
        matched = False
        for pat in self.patterns:
            if pat.exclusion != matched:
                continue
            if pat.match(relpath):
                matched = not pat.exclusion
        return matched

    def matches_with_parents(self, relpath: str, parent_matched: bool) -> bool:
        """Same answer as ``matches``; ``parent_matched`` (the parent directory's result during a walk) lets a
        pattern set without exceptions skip the parent checks."""
        if not self.exclusions:
            if parent_matched:
                return True
            path = _go_clean(relpath)
            return path != "." and any(p.match(path) for p in self.patterns)
        return self.matches(relpath)

    def excludes_dir_entirely(self, relpath: str) -> bool:
        """True if directory ``relpath`` is excluded and its walk is skipped, as in Docker's context walk
        (tonistiigi/fsutil ``Walk``): an excluded directory is kept, and walked, only when the text of some
        ``!`` exception, plus "/", starts with ``relpath/``; an exception starting with a wildcard
        (``!**/keep``, ``!*/keep*``) brings back nothing under an excluded directory."""
        if not self.matches(relpath):
            return False
        if not self.exclusions:
            return True
        dir_slash = _go_clean(relpath) + "/"
        return not any(p.exclusion and (p.cleaned + "/").startswith(dir_slash) for p in self.patterns)
