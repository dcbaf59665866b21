"""Dockerfile parser: text -> flat list of instruction ``Node``s, with BuildKit's exact line semantics.

Follows moby/buildkit ``frontend/dockerfile/parser`` (parser.go, line_parsers.go, split_command.go,
directives.go): parser directives (``# escape=``, ``# syntax=``, ``# check=``), comments, line continuations
(also across comment and blank lines), JSON vs shell forms, per-instruction argument splitting, builder flags
and heredocs (``RUN <<EOF``, ``COPY <<A <<B /dst``). ``dump`` reproduces BuildKit's ``Node.Dump`` output.

Modules: ``nodes`` (the output types and ``dump``), ``_lines`` (Go-semantics line scanning, directives,
continuations), ``_line_parsers`` (command splitting, builder flags, per-instruction arguments),
``_heredoc`` (heredoc words); this module reads the lines and assembles the nodes.
"""

from __future__ import annotations

import re

from idpbuilder._records import replace
from idpbuilder.dockerfile._heredoc import can_contain_heredoc, heredocs_from_line, parse_heredoc
from idpbuilder.dockerfile._line_parsers import KNOWN_INSTRUCTIONS, node_from_line
from idpbuilder.dockerfile._lines import (
    Directives,
    ParseSyntaxError,
    is_comment,
    process_line,
    trim_left_space,
    trim_space,
)
from idpbuilder.dockerfile.nodes import Heredoc, Node, ParseResult, dump, node_dump
from idpbuilder.errors import DockerfileParseError

__all__ = [
    "KNOWN_INSTRUCTIONS",
    "Heredoc",
    "Node",
    "ParseResult",
    "dump",
    "node_dump",
    "parse",
    "parse_heredoc",
]

_RE_LEADING_TABS = re.compile(r"^\t+", re.M)


def _split_lines(text: str) -> list[str]:
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def parse(text: str, *, filename: str = "Dockerfile") -> ParseResult:
    """Parse Dockerfile text into instruction nodes; DockerfileParseError (with file and line) on syntax errors."""
    d = Directives()
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
        if is_comment(raw):
            comment = trim_space(trim_left_space(raw.rstrip("\r\n"))[1:])
            if comment:
                comments.append(comment)
            else:
                comments = []
        try:
            token = process_line(d, raw, True)
        except ParseSyntaxError as e:
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
                token = process_line(d, raw, False)
            except ParseSyntaxError as e:
                raise fail(str(e), current + 1) from None
            current += 1
            if is_comment(raw):
                continue
            if trim_left_space(token) == "":
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
            node = node_from_line(line, d, start, current, tuple(comments))
            heredocs: list[Heredoc] = []
            if can_contain_heredoc(node) and "<<" in line:
                for h in heredocs_from_line(line):
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
                        raise ParseSyntaxError(f"unterminated heredoc {h.name}")
                    content = "".join(body)
                    if h.chomp:
                        content = _RE_LEADING_TABS.sub("", content)
                    heredocs.append(replace(h, content=content))
        except ParseSyntaxError as e:
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
