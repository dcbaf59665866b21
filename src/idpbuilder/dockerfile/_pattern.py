"""Shell wildcard patterns of ``${V#p}``, ``${V%p}`` and ``${V/p/r}``, matched in O(len(value) * len(pattern)).

BuildKit turns these patterns into Go regular expressions (RE2: no backtracking); a translation to Python's
backtracking ``re`` took exponential time on ``*a*a*a*a*a*a*a*a*b``. This is a Pike VM over the only tokens
the patterns have (a character, ``?``, ``*`` greedy or lazy), giving the same leftmost-first match RE2 gives.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Pattern", "PatternError", "compile_pattern", "replace_all"]

_ANY = ""  # token: any one character; a one-character string is that character; None is a star


class PatternError(Exception):
    """The pattern has an invalid escape."""


class Pattern:
    """A compiled wildcard pattern; ``search`` returns the (start, end) of the leftmost-first match."""

    def __init__(self, tokens: list[str | None], *, greedy: bool) -> None:
        self.tokens = tokens
        self.greedy = greedy

    def _add(self, out: list[tuple[int, int]], seen: set[int], pc: int, start: int) -> None:
        # epsilon closure, in priority order; consecutive stars were merged, so this recurses at most twice
        if pc in seen:
            return
        seen.add(pc)
        if pc < len(self.tokens) and self.tokens[pc] is None:
            if self.greedy:
                out.append((pc, start))
                self._add(out, seen, pc + 1, start)
            else:
                self._add(out, seen, pc + 1, start)
                out.append((pc, start))
            return
        out.append((pc, start))

    def search(self, text: str, pos: int = 0, *, anchored: bool = False) -> tuple[int, int] | None:
        """The leftmost-first match at or after ``pos`` (exactly at ``pos`` when ``anchored``)."""
        toks = self.tokens
        end_pc = len(toks)
        n = len(text)
        clist: list[tuple[int, int]] = []
        cseen: set[int] = set()
        matched: tuple[int, int] | None = None
        i = pos
        while True:
            if matched is None and (not anchored or i == pos):
                self._add(clist, cseen, 0, i)  # a new attempt, lowest priority
            if not clist:
                return matched
            nlist: list[tuple[int, int]] = []
            nseen: set[int] = set()
            ch = text[i] if i < n else None
            for pc, start in clist:
                if pc == end_pc:
                    matched = (start, i)
                    break  # lower-priority threads cannot win any more
                if ch is None:
                    continue
                tok = toks[pc]
                if tok is None:
                    self._add(nlist, nseen, pc, start)
                elif tok == _ANY or tok == ch:
                    self._add(nlist, nseen, pc + 1, start)
            if ch is None:
                return matched
            clist, cseen = nlist, nseen
            i += 1


def compile_pattern(pattern: str, *, greedy: bool) -> Pattern:
    """``*``, ``?`` and backslash escapes (of ``*``, ``?``, ``\\``; ``\\}`` and ``\\/`` drop the backslash)."""
    tokens: list[str | None] = []
    i, n = 0, len(pattern)
    while i < n:
        tok = pattern[i]
        i += 1
        if tok == "*":
            if not tokens or tokens[-1] is not None:
                tokens.append(None)
            continue
        if tok == "?":
            tokens.append(_ANY)
            continue
        if tok == "\\":
            nxt = pattern[i] if i < n else ""
            if nxt in ("}", "/"):
                continue
            i += 1
            if nxt not in ("*", "?", "\\"):
                shown = nxt if nxt else "EOF"
                raise PatternError(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{shown}'")
            tokens.append(nxt)
            continue
        tokens.append(tok)
    return Pattern(tokens, greedy=greedy)


def replace_all(pattern: Pattern, value: str, expand: Callable[[str], str]) -> str:
    """Replace every match of ``pattern`` in ``value`` the way Go's ``Regexp.ReplaceAllString`` does."""
    out: list[str] = []
    last_end = 0
    search = 0
    n = len(value)
    while search <= n:
        m = pattern.search(value, search)
        if m is None:
            break
        start, end = m
        out.append(value[last_end:start])
        if end > last_end or start == 0:  # not an empty match right after the previous one
            out.append(expand(value[start:end]))
        last_end = end
        search = search + 1 if search + 1 > end else end  # always advance at least one character
    out.append(value[last_end:])
    return "".join(out)
