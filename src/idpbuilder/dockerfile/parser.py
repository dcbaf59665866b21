"""Dockerfile parser: text -> flat list of instruction ``Node``s, with BuildKit's exact line semantics.

Follows moby/buildkit ``frontend/dockerfile/parser`` (parser.go, line_parsers.go, split_command.go,
directives.go): parser directives (``# escape=``, ``# syntax=``, ``# check=``), comments, line continuations
(also across comment and blank lines), JSON vs shell forms, per-instruction argument splitting, builder flags
and heredocs (``RUN <<EOF``, ``COPY <<A <<B /dst``). ``dump`` reproduces BuildKit's ``Node.Dump`` output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from idpbuilder.dockerfile.lexer import ShellLex, go_is_space, go_quote
from idpbuilder.errors import BuildError, DockerfileParseError

__all__ = ["Heredoc", "Node", "ParseResult", "dump", "node_dump", "parse", "parse_heredoc"]


@dataclass(frozen=True)
class Heredoc:
    """One heredoc attached to an instruction."""

    name: str  # delimiter word
    content: str  # body, each line with its newline (tabs already stripped when chomp)
    expand: bool  # False when the delimiter was quoted
    chomp: bool  # <<- : leading tabs stripped
    fd: int = 0  # RUN 3<<EOF : file descriptor (0 when not given)


@dataclass(frozen=True)
class Node:
    """One instruction as the parser sees it, before typing and validation."""

    keyword: str
    args: tuple[str, ...]
    json: bool
    flags: tuple[str, ...]
    original: str
    start_line: int
    end_line: int
    heredocs: tuple[Heredoc, ...] = ()
    sub: Node | None = None
    # ENV/LABEL only: the separator of each key/value pair, "=" (k=v form) or "" (legacy "k v" form)
    separators: tuple[str, ...] = ()
    # comment lines directly above the instruction (without the "#")
    comments: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class ParseResult:
    """All instructions of a Dockerfile plus the escape token in force and parser warnings."""

    nodes: tuple[Node, ...]
    escape: str
    warnings: tuple[str, ...]
    directives: tuple[tuple[str, str], ...] = ()


# ---------------------------------------------------------------------------------------------------------------
# small helpers with Go semantics

_RE_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_RE_DIRECTIVE = re.compile(
    r"^#[\t\n\f\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z", re.S
)
_RE_HEREDOC = re.compile(r"^([0-9]*)<<(-?)([^<]*)\Z", re.S)
_RE_LEADING_TABS = re.compile(r"^\t+", re.M)
_VALID_DIRECTIVES = frozenset({"syntax", "escape", "check"})
_HEREDOC_KEYWORDS = frozenset({"add", "copy", "run"})


class _SyntaxError(Exception):
    """Internal: a parse failure, turned into DockerfileParseError with file and line by ``parse``."""


def _trim_space(s: str) -> str:
    i, j = 0, len(s)
    while i < j and go_is_space(s[i]):
        i += 1
    while j > i and go_is_space(s[j - 1]):
        j -= 1
    return s[i:j]


def _trim_left_space(s: str) -> str:
    i = 0
    while i < len(s) and go_is_space(s[i]):
        i += 1
    return s[i:]


def _is_comment(line: str) -> bool:
    return _trim_left_space(line.rstrip("\r\n")).startswith("#")


class _Directives:
    def __init__(self) -> None:
        self.escape = "\\"
        self.done = False
        self.seen: dict[str, str] = {}
        self._cont = re.compile("")
        self.set_escape("\\")

    def set_escape(self, token: str) -> None:
        if token not in ("`", "\\"):
            raise _SyntaxError(f"invalid escape token '{token}' does not match ` or \\")
        self.escape = token
        e = re.escape(token)
        # the token is a continuation when last on the line, unless itself escaped
        self._cont = re.compile(rf"([^{e}]){e}[ \t]*\Z|^{e}[ \t]*\Z", re.S)

    def possible_directive(self, line: str) -> None:
        if self.done:
            return
        m = _RE_DIRECTIVE.match(line)
        if m is None:
            self.done = True
            return
        key = m.group(1).lower()
        if key not in _VALID_DIRECTIVES:
            self.done = True
            return
        if key in self.seen:
            raise _SyntaxError(f"only one {key} parser directive can be used")
        self.seen[key] = m.group(2)
        if key == "escape":
            self.set_escape(m.group(2))

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        """Strip a trailing continuation token; second item is True when the logical line ends here."""
        if self._cont.search(line):
            return self._cont.sub(r"\1", line), False
        return line, True


def _process_line(d: _Directives, raw: str, strip_left: bool) -> str:
    token = raw.rstrip("\r\n")
    if strip_left:
        token = _trim_left_space(token)
    d.possible_directive(token)
    return "" if token.startswith("#") else token


# ---------------------------------------------------------------------------------------------------------------
# command splitting and flags


def _extract_builder_flags(line: str) -> tuple[str, list[str]]:
    """Leading ``--flag[=value]`` words of ``line``; returns (rest of line, flags). ``--`` ends the flags."""
    in_spaces, in_word, in_quote = 0, 1, 2
    words: list[str] = []
    phase = in_spaces
    word: list[str] = []
    quote = ""
    blank_ok = False
    n = len(line)
    pos = 0
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if phase == in_spaces:
            if pos == n:
                break
            if go_is_space(ch):
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            phase = in_word
        if phase in (in_word, in_quote) and pos == n:
            w = "".join(word)
            if w != "--" and (blank_ok or w):
                words.append(w)
            break
        if phase == in_word:
            if go_is_space(ch):
                phase = in_spaces
                w = "".join(word)
                if w == "--":
                    return line[pos:], words
                if blank_ok or w:
                    words.append(w)
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = in_quote
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word.append(ch)
            pos += 1
            continue
        # in_quote
        if ch == quote:
            phase = in_word
            pos += 1
            continue
        if ch == "\\":
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        word.append(ch)
        pos += 1
    return "", words


def _split_command(line: str) -> tuple[str, list[str], str]:
    parts = _RE_WHITESPACE.split(_trim_space(line), maxsplit=1)
    cmd = parts[0].lower()
    flags: list[str] = []
    args = ""
    if len(parts) == 2:
        args, flags = _extract_builder_flags(parts[1])
    return cmd, flags, _trim_space(args)


# ---------------------------------------------------------------------------------------------------------------
# per-instruction argument parsers; each returns (args, json, separators, sub)

_Parsed = tuple[tuple[str, ...], bool, tuple[str, ...], Node | None]


def _parse_words(rest: str, escape: str) -> list[str]:
    """Split on white space keeping quotes and escapes in the words (they are removed at expansion time)."""
    words: list[str] = []
    in_spaces, in_word, in_quote = 0, 1, 2
    phase = in_spaces
    word = ""
    quote = ""
    blank_ok = False
    n = len(rest)
    pos = 0
    while pos <= n:
        ch = rest[pos] if pos < n else ""
        if phase == in_spaces:
            if pos == n:
                break
            if go_is_space(ch):
                pos += 1
                continue
            phase = in_word
        if phase in (in_word, in_quote) and pos == n:
            if blank_ok or word:
                words.append(word)
            break
        if phase == in_word:
            if go_is_space(ch):
                phase = in_spaces
                if blank_ok or word:
                    words.append(word)
                word = ""
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = in_quote
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue  # an escape token at the very end is dropped
                # unquoted escape: keep it and the next character, even a quote
                word += ch
                pos += 1
                ch = rest[pos]
            word += ch
            pos += 1
            continue
        # in_quote
        if ch == quote:
            phase = in_word
        if ch == escape and quote != "'":
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            word += ch
            ch = rest[pos]
        word += ch
        pos += 1
    return words


def _parse_ignore(rest: str, d: _Directives) -> _Parsed:
    return ("",), False, (), None


def _parse_string(rest: str, d: _Directives) -> _Parsed:
    if rest == "":
        return (), False, (), None
    return (rest,), False, (), None


def _parse_strings_whitespace_delimited(rest: str, d: _Directives) -> _Parsed:
    if rest == "":
        return (), False, (), None
    return tuple(_RE_WHITESPACE.split(rest)), False, (), None


def _parse_name_val(rest: str, key: str, d: _Directives) -> _Parsed:
    words = _parse_words(rest, d.escape)
    if not words:
        return (), False, (), None
    if "=" not in words[0]:
        # legacy form: KEY name value...
        parts = _RE_WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise _SyntaxError(f"{key} must have two arguments")
        return (parts[0], parts[1]), False, ("",), None
    args: list[str] = []
    seps: list[str] = []
    for word in words:
        if "=" not in word:
            raise _SyntaxError(
                f"Syntax error - can't find = in {go_quote(word)}. Must be of the form: name=value"
            )
        k, v = word.split("=", 1)
        args += [k, v]
        seps.append("=")
    return tuple(args), False, tuple(seps), None


def _parse_env(rest: str, d: _Directives) -> _Parsed:
    return _parse_name_val(rest, "ENV", d)


def _parse_label(rest: str, d: _Directives) -> _Parsed:
    return _parse_name_val(rest, "LABEL", d)


def _parse_name_or_name_val(rest: str, d: _Directives) -> _Parsed:
    return tuple(_parse_words(rest, d.escape)), False, (), None


class _NotStringArray(_SyntaxError):
    pass


def _no_constants(name: str) -> object:
    raise ValueError(name)


_JSON = json.JSONDecoder(parse_constant=_no_constants)


def _parse_json(rest: str) -> tuple[str, ...] | None:
    """Decode a JSON array of strings; None when ``rest`` is not exactly JSON (BuildKit uses json.Unmarshal, so
    trailing text such as ``["echo"]oops`` makes it shell form)."""
    rest = _trim_left_space(rest)
    if not rest.startswith("["):
        return None
    try:
        value, end = _JSON.raw_decode(rest)
    except ValueError:
        return None
    if rest[end:].strip():
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise _NotStringArray("when using JSON array syntax, arrays must be comprised of strings only")
    return tuple(value)


def _parse_maybe_json(rest: str, d: _Directives) -> _Parsed:
    if rest == "":
        return (), False, (), None
    parsed = _parse_json(rest)
    if parsed is not None:
        return parsed, True, (), None
    return (rest,), False, (), None


def _parse_maybe_json_to_list(rest: str, d: _Directives) -> _Parsed:
    parsed = _parse_json(rest)
    if parsed is not None:
        return parsed, True, (), None
    return _parse_strings_whitespace_delimited(rest, d)


def _parse_health_config(rest: str, d: _Directives) -> _Parsed:
    sep = 0
    while sep < len(rest) and not go_is_space(rest[sep]):
        sep += 1
    nxt = sep
    while nxt < len(rest) and go_is_space(rest[nxt]):
        nxt += 1
    if sep == 0:
        return (), False, (), None
    args, is_json, _, _ = _parse_maybe_json(rest[nxt:], d)
    return (rest[:sep], *args), is_json, (), None


def _parse_sub_command(rest: str, d: _Directives) -> _Parsed:
    if rest == "":
        return (), False, (), None
    return (), False, (), _node_from_line(rest, d, 0, 0, ())


_DISPATCH: dict[str, Callable[[str, _Directives], _Parsed]] = {
    "add": _parse_maybe_json_to_list,
    "arg": _parse_name_or_name_val,
    "cmd": _parse_maybe_json,
    "copy": _parse_maybe_json_to_list,
    "entrypoint": _parse_maybe_json,
    "env": _parse_env,
    "expose": _parse_strings_whitespace_delimited,
    "from": _parse_strings_whitespace_delimited,
    "healthcheck": _parse_health_config,
    "label": _parse_label,
    "maintainer": _parse_string,
    "onbuild": _parse_sub_command,
    "run": _parse_maybe_json,
    "shell": _parse_maybe_json,
    "stopsignal": _parse_string,
    "user": _parse_string,
    "volume": _parse_maybe_json_to_list,
    "workdir": _parse_string,
}

KNOWN_INSTRUCTIONS = frozenset(_DISPATCH)


def _node_from_line(line: str, d: _Directives, start: int, end: int, comments: tuple[str, ...]) -> Node:
    cmd, flags, args = _split_command(line)
    fn = _DISPATCH.get(cmd, _parse_ignore)
    parsed_args, is_json, seps, sub = fn(args, d)
    if sub is not None:
        sub = replace(sub, start_line=start, end_line=end)
    return Node(
        keyword=cmd,
        args=parsed_args,
        json=is_json,
        flags=tuple(flags),
        original=line,
        start_line=start,
        end_line=end,
        sub=sub,
        separators=seps,
        comments=comments,
    )


# ---------------------------------------------------------------------------------------------------------------
# heredocs


def _heredoc_lexer(*, raw_quotes: bool, raw_escapes: bool = False) -> ShellLex:
    lex = ShellLex("\\")
    lex.skip_unset_env = True
    lex.raw_quotes = raw_quotes
    lex.raw_escapes = raw_escapes
    return lex


def parse_heredoc(word: str) -> Heredoc | None:
    """The heredoc a word like ``<<EOF``, ``<<-'EOF'`` or ``3<<EOF`` starts (content empty), else None."""
    m = _RE_HEREDOC.match(word)
    if m is None:
        return None
    fd = int(m.group(1)) if m.group(1) else 0
    chomp = m.group(2) == "-"
    rest = m.group(3)
    if rest == "":
        return None
    try:
        words = _heredoc_lexer(raw_quotes=False).process_words(rest, {})
        if len(words) != 1:
            return None
        raw_words = _heredoc_lexer(raw_quotes=True).process_words(rest, {})
    except BuildError as e:
        raise _SyntaxError(f"invalid heredoc {word}: {e.message}") from None
    if len(raw_words) != len(words):
        raise _SyntaxError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    name = words[0]
    # a quoted delimiter (any part of it) disables expansion of the body
    quotes = name.count("'") + name.count('"')
    raw_quotes = raw_words[0].count("'") + raw_words[0].count('"')
    return Heredoc(name=name, content="", expand=quotes == raw_quotes, chomp=chomp, fd=fd)


def _heredocs_from_line(line: str) -> list[Heredoc]:
    try:
        words = _heredoc_lexer(raw_quotes=True, raw_escapes=True).process_words(line, {})
    except BuildError:
        words = []
    docs: list[Heredoc] = []
    for word in words:
        h = parse_heredoc(word)
        if h is not None:
            docs.append(h)
    return docs


def _can_contain_heredoc(node: Node) -> bool:
    target = node.sub if node.keyword == "onbuild" and node.sub is not None else node
    return target.keyword in _HEREDOC_KEYWORDS and not target.json


# ---------------------------------------------------------------------------------------------------------------
# the parser proper


def _split_lines(text: str) -> list[str]:
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def parse(text: str, *, filename: str = "Dockerfile") -> ParseResult:
    """Parse Dockerfile text into instruction nodes; DockerfileParseError (with file and line) on syntax errors."""
    d = _Directives()
    lines = _split_lines(text)
    nodes: list[Node] = []
    warnings: list[str] = []
    comments: list[str] = []
    current = 0
    i = 0
    n = len(lines)

    def fail(msg: str, line: int) -> DockerfileParseError:
        return DockerfileParseError(msg, file=filename, line=line if line > 0 else None)

    while i < n:
        raw = lines[i]
        i += 1
        if current == 0 and raw.startswith("\ufeff"):
            raw = raw[1:]
        if _is_comment(raw):
            comment = _trim_space(_trim_left_space(raw.rstrip("\r\n"))[1:])
            if comment:
                comments.append(comment)
            else:
                comments = []
        try:
            token = _process_line(d, raw, True)
        except _SyntaxError as e:
            raise fail(str(e), current + 1) from None
        current += 1
        start = current
        line, eol = d.trim_continuation(token)
        if eol and line == "":
            continue

        has_empty_continuation = False
        while not eol and i < n:
            raw = lines[i]
            i += 1
            try:
                token = _process_line(d, raw, False)
            except _SyntaxError as e:
                raise fail(str(e), current + 1) from None
            current += 1
            if _is_comment(raw):
                continue
            if _trim_left_space(token) == "":
                has_empty_continuation = True
                continue
            cont, eol = d.trim_continuation(token)
            line += cont

        if has_empty_continuation:
            warnings.append(
                f"{filename}:{start}: empty continuation line found in: {line.strip()} "
                "(empty continuation lines will become errors in a future release)"
            )

        try:
            node = _node_from_line(line, d, start, current, tuple(comments))
            heredocs: list[Heredoc] = []
            if _can_contain_heredoc(node) and "<<" in line:
                for h in _heredocs_from_line(line):
                    body: list[str] = []
                    terminated = False
                    while i < n:
                        raw = lines[i]
                        i += 1
                        current += 1
                        candidate = raw.rstrip("\r\n")
                        if h.chomp:
                            candidate = candidate.lstrip("\t")
                        if candidate == h.name:
                            terminated = True
                            break
                        body.append(raw)
                    if not terminated:
                        raise _SyntaxError(f"unterminated heredoc {h.name}")
                    content = "".join(body)
                    if h.chomp:
                        content = _RE_LEADING_TABS.sub("", content)
                    heredocs.append(replace(h, content=content))
        except _SyntaxError as e:
            raise fail(str(e), start) from None
        if heredocs or current != node.end_line:
            sub = node.sub
            if sub is not None:
                sub = replace(sub, end_line=current, heredocs=tuple(heredocs))
            node = replace(node, end_line=current, heredocs=tuple(heredocs), sub=sub)
        nodes.append(node)
        comments = []

    if not nodes:
        raise DockerfileParseError(
            "file with no instructions", file=filename, hint="a Dockerfile needs at least a FROM instruction"
        )
    return ParseResult(
        nodes=tuple(nodes),
        escape=d.escape,
        warnings=tuple(warnings),
        directives=tuple(d.seen.items()),
    )


def node_dump(node: Node) -> str:
    """One node in BuildKit's ``Node.Dump`` s-expression syntax (without the surrounding parentheses)."""
    out = node.keyword.lower()
    if node.flags:
        out += " [" + " ".join(go_quote(f) for f in node.flags) + "]"
    if node.sub is not None:
        out += " (" + node_dump(node.sub) + ")"
    elif node.separators:
        for j, sep in enumerate(node.separators):
            out += f" {go_quote(node.args[2 * j])} {go_quote(node.args[2 * j + 1])} {go_quote(sep)}"
    else:
        for a in node.args:
            out += " " + go_quote(a)
    return out.strip()


def dump(result: ParseResult) -> str:
    """The whole AST in BuildKit's ``AST.Dump()`` format: one ``(keyword args...)`` line per instruction."""
    return "\n".join("(" + node_dump(n) + ")" for n in result.nodes)
