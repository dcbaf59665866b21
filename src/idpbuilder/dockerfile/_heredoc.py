"""Heredocs (``RUN <<EOF``, ``COPY <<A <<B /dst``, ``RUN 3<<-'EOF'``): recognising the words that start
one, and which instructions may carry them."""

from __future__ import annotations

import re

from idpbuilder.dockerfile._lines import ParseSyntaxError
from idpbuilder.dockerfile.lexer import ShellLex
from idpbuilder.dockerfile.nodes import Heredoc, Node
from idpbuilder.errors import BuildError

__all__ = ["can_contain_heredoc", "heredocs_from_line", "parse_heredoc"]

_RE_HEREDOC = re.compile(r"^([0-9]*)<<(-?)([^<]*)\Z", re.S)
_HEREDOC_KEYWORDS = frozenset({"add", "copy", "run"})


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
        raise ParseSyntaxError(f"invalid heredoc {word}: {e.message}") from None
    if len(raw_words) != len(words):
        raise ParseSyntaxError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    name = words[0]
    # a quoted delimiter (any part of it) disables expansion of the body
    quotes = name.count("'") + name.count('"')
    raw_quotes = raw_words[0].count("'") + raw_words[0].count('"')
    return Heredoc(name=name, content="", expand=quotes == raw_quotes, chomp=chomp, fd=fd)


def heredocs_from_line(line: str) -> list[Heredoc]:
    """The heredocs an instruction line starts, in order (contents empty)."""
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


def can_contain_heredoc(node: Node) -> bool:
    """Whether the node (or ONBUILD's sub-node) is a shell-form ADD, COPY or RUN."""
    target = node.sub if node.keyword == "onbuild" and node.sub is not None else node
    return target.keyword in _HEREDOC_KEYWORDS and not target.json
