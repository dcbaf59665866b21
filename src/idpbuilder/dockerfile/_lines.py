"""Line scanning with Go semantics for the parser: white space, comments, parser directives and the
escape token, line continuations, and the parser's internal syntax error."""

from __future__ import annotations

import re

from idpbuilder.dockerfile.lexer import go_is_space

__all__ = [
    "RE_WHITESPACE",
    "Directives",
    "ParseSyntaxError",
    "is_comment",
    "process_line",
    "trim_left_space",
    "trim_space",
]

RE_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
# no lazy (.+?) before trailing white space: that backtracks quadratically on long runs of spaces
_RE_DIRECTIVE = re.compile(r"^#[\t\n\f\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=(.*)\Z", re.S)
_DIRECTIVE_SPACE = "\t\n\f\r "
_VALID_DIRECTIVES = frozenset({"syntax", "escape", "check"})


class ParseSyntaxError(Exception):
    """Internal: a parse failure, turned into DockerfileParseError with file and line by ``parse``."""


def trim_space(s: str) -> str:
    """``s`` without leading and trailing white space as Go's ``strings.TrimSpace`` sees it."""
    i, j = 0, len(s)
    while i < j and go_is_space(s[i]):
        i += 1
    while j > i and go_is_space(s[j - 1]):
        j -= 1
    return s[i:j]


def trim_left_space(s: str) -> str:
    """``s`` without leading white space (Go semantics)."""
    i = 0
    while i < len(s) and go_is_space(s[i]):
        i += 1
    return s[i:]


def is_comment(line: str) -> bool:
    """Whether the raw line is a comment line (``#`` after optional white space)."""
    return trim_left_space(line.rstrip("\r\n")).startswith("#")


class Directives:
    """The parser directives seen so far (``# escape=``, ``# syntax=``, ``# check=``) and the escape token."""

    def __init__(self) -> None:
        self.escape = "\\"
        self.done = False
        self.seen: dict[str, str] = {}
        self._cont = re.compile("")
        self.set_escape("\\")

    def set_escape(self, token: str) -> None:
        if token not in ("`", "\\"):
            raise ParseSyntaxError(f"invalid escape token '{token}' does not match ` or \\")
        self.escape = token
        e = re.escape(token)
        # the token is a continuation when last on the line, unless itself escaped
        self._cont = re.compile(rf"([^{e}]){e}[ \t]*\Z|^{e}[ \t]*\Z", re.S)

    def possible_directive(self, line: str) -> None:
        if self.done:
            return
        m = _RE_DIRECTIVE.match(line)
        value = _directive_value(m.group(2)) if m is not None else ""
        if m is None or not value:
            self.done = True
            return
        key = m.group(1).lower()
        if key not in _VALID_DIRECTIVES:
            self.done = True
            return
        if key in self.seen:
            raise ParseSyntaxError(f"only one {key} parser directive can be used")
        self.seen[key] = value
        if key == "escape":
            self.set_escape(value)

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        """Strip a trailing continuation token; second item is True when the logical line ends here."""
        if self._cont.search(line):
            return self._cont.sub(r"\1", line), False
        return line, True


def _directive_value(rest: str) -> str:
    """What ``=[ws]*(.+?)[ws]*$`` captures of the text after ``=``."""
    v = rest.lstrip(_DIRECTIVE_SPACE)
    if v:
        return v.rstrip(_DIRECTIVE_SPACE)
    return rest[-1:]  # only white space: the lazy group took the last character


def process_line(d: Directives, raw: str, strip_left: bool) -> str:
    """One raw line for the parser: directives noted, comments blanked, EOL removed."""
    token = raw.rstrip("\r\n")
    if strip_left:
        token = trim_left_space(token)
    d.possible_directive(token)
    return "" if token.startswith("#") else token
