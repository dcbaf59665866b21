"""Per-instruction argument parsing (BuildKit's line_parsers.go and split_command.go): one logical line ->
a ``Node`` with its keyword, builder flags and arguments (JSON or shell form, name=value pairs, sub-command)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import lru_cache

from idpbuilder._records import replace
from idpbuilder.dockerfile._lines import (
    RE_WHITESPACE,
    Directives,
    ParseSyntaxError,
    trim_left_space,
    trim_space,
)
from idpbuilder.dockerfile.lexer import GO_SPACE_CLASS, go_is_space, go_quote
from idpbuilder.dockerfile.nodes import Node

__all__ = ["KNOWN_INSTRUCTIONS", "node_from_line"]


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
    parts = RE_WHITESPACE.split(trim_space(line), maxsplit=1)
    cmd = parts[0].lower()
    flags: list[str] = []
    args = ""
    if len(parts) == 2:
        args, flags = _extract_builder_flags(parts[1])
    return cmd, flags, trim_space(args)


# ---------------------------------------------------------------------------------------------------------------
# per-instruction argument parsers; each returns (args, json, separators, sub)

_Parsed = tuple[tuple[str, ...], bool, tuple[str, ...], Node | None]


@lru_cache(maxsize=4)
def _word_runs(escape: str) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    sp = re.escape(GO_SPACE_CLASS)
    e = re.escape(escape)
    return (
        re.compile(f"[{sp}]+"),  # spaces between words
        re.compile(f"[^{sp}'\"{e}]+"),  # plain characters of a word
        re.compile("[^']+"),  # inside '...': no escapes
        re.compile(f'[^"{e}]+'),  # inside "..."
    )


def _parse_words(rest: str, escape: str) -> list[str]:
    """Split on white space keeping quotes and escapes in the words (they are removed at expansion time).

    Runs of ordinary characters are taken whole, so a multi-megabyte value costs linear time."""
    spaces, plain, single, double = _word_runs(escape)
    words: list[str] = []
    in_spaces, in_word, in_quote = 0, 1, 2
    phase = in_spaces
    buf: list[str] = []
    quote = ""
    blank_ok = False
    n = len(rest)
    pos = 0
    while True:
        if phase == in_spaces:
            m = spaces.match(rest, pos)
            if m is not None:
                pos = m.end()
            if pos == n:
                break
            phase = in_word
        if pos == n:
            if blank_ok or buf:
                words.append("".join(buf))
            break
        if phase == in_word:
            m = plain.match(rest, pos)
            if m is not None:
                buf.append(m.group())
                pos = m.end()
                continue
            ch = rest[pos]
            if go_is_space(ch):
                phase = in_spaces
                if blank_ok or buf:
                    words.append("".join(buf))
                buf = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = in_quote
                buf.append(ch)
                pos += 1
                continue
            # the escape token: kept with the next character (even a quote); dropped at the very end
            if pos + 1 < n:
                buf.append(rest[pos : pos + 2])
            pos += 2 if pos + 1 < n else 1
            continue
        # in_quote
        m = (single if quote == "'" else double).match(rest, pos)
        if m is not None:
            buf.append(m.group())
            pos = m.end()
            continue
        ch = rest[pos]
        if ch == quote:
            phase = in_word
            buf.append(ch)
            pos += 1
            continue
        # an escape inside "...": kept with the next character; at the very end it is dropped
        if pos + 1 == n:
            phase = in_word
            pos += 1
            continue
        buf.append(rest[pos : pos + 2])
        pos += 2
    return words


def _parse_ignore(rest: str, d: Directives) -> _Parsed:
    return ("",), False, (), None


def _parse_string(rest: str, d: Directives) -> _Parsed:
    if rest == "":
        return (), False, (), None
    return (rest,), False, (), None


def _parse_strings_whitespace_delimited(rest: str, d: Directives) -> _Parsed:
    if rest == "":
        return (), False, (), None
    return tuple(RE_WHITESPACE.split(rest)), False, (), None


def _parse_name_val(rest: str, key: str, d: Directives) -> _Parsed:
    words = _parse_words(rest, d.escape)
    if not words:
        return (), False, (), None
    if "=" not in words[0]:
        # legacy form: KEY name value...
        parts = RE_WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise ParseSyntaxError(f"{key} must have two arguments")
        return (parts[0], parts[1]), False, ("",), None
    args: list[str] = []
    seps: list[str] = []
    for word in words:
        if "=" not in word:
            raise ParseSyntaxError(
                f"Syntax error - can't find = in {go_quote(word)}. Must be of the form: name=value"
            )
        k, v = word.split("=", 1)
        args += [k, v]
        seps.append("=")
    return tuple(args), False, tuple(seps), None


def _parse_env(rest: str, d: Directives) -> _Parsed:
    return _parse_name_val(rest, "ENV", d)


def _parse_label(rest: str, d: Directives) -> _Parsed:
    return _parse_name_val(rest, "LABEL", d)


def _parse_name_or_name_val(rest: str, d: Directives) -> _Parsed:
    return tuple(_parse_words(rest, d.escape)), False, (), None


class _NotStringArray(ParseSyntaxError):
    pass


def _no_constants(name: str) -> object:
    raise ValueError(name)


_JSON = json.JSONDecoder(parse_constant=_no_constants)
_GO_JSON_MAX_DEPTH = 10000
_MAX_JSON_DEPTH = 500  # deeper nesting is not decoded (the C decoder recurses)
_RE_SURROGATE = re.compile("[\ud800-\udfff]")


def _parse_json(rest: str) -> tuple[str, ...] | None:
    """Decode a JSON array of strings; None when ``rest`` is not exactly JSON (BuildKit uses json.Unmarshal, so
    trailing text such as ``["echo"]oops`` makes it shell form)."""
    rest = trim_left_space(rest)
    if not rest.startswith("["):
        return None
    depth = len(rest) - len(rest.lstrip("[ \t\r\n"))
    if depth > _MAX_JSON_DEPTH:
        # nested arrays are never strings; past Go's 10000 levels json.Unmarshal fails: shell form
        if depth > _GO_JSON_MAX_DEPTH:
            return None
        raise _NotStringArray("when using JSON array syntax, arrays must be comprised of strings only")
    try:
        value, end = _JSON.raw_decode(rest)
    except ValueError:
        return None
    except RecursionError:
        raise _NotStringArray(
            "when using JSON array syntax, arrays must be comprised of strings only"
        ) from None
    if rest[end:].strip():
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise _NotStringArray("when using JSON array syntax, arrays must be comprised of strings only")
    # Go's decoder turns an unpaired surrogate escape ("\ud800") into U+FFFD; Python keeps it, unencodable
    return tuple(_RE_SURROGATE.sub("\ufffd", v) for v in value)


def _parse_maybe_json(rest: str, d: Directives) -> _Parsed:
    if rest == "":
        return (), False, (), None
    parsed = _parse_json(rest)
    if parsed is not None:
        return parsed, True, (), None
    return (rest,), False, (), None


def _parse_maybe_json_to_list(rest: str, d: Directives) -> _Parsed:
    parsed = _parse_json(rest)
    if parsed is not None:
        return parsed, True, (), None
    return _parse_strings_whitespace_delimited(rest, d)


def _parse_health_config(rest: str, d: Directives) -> _Parsed:
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


def _parse_sub_command(rest: str, d: Directives) -> _Parsed:
    if rest == "":
        return (), False, (), None
    return (), False, (), node_from_line(rest, d, 0, 0, ())


_DISPATCH: dict[str, Callable[[str, Directives], _Parsed]] = {
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


def node_from_line(line: str, d: Directives, start: int, end: int, comments: tuple[str, ...]) -> Node:
    """The ``Node`` of one logical instruction line spanning lines ``start``..``end``."""
    if "\x00" in line:
        raise ParseSyntaxError(
            "the instruction contains a NUL character, which no file name or command can hold"
        )
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
