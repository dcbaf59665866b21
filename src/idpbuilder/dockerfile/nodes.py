"""The parser's output: instruction ``Node``s with their heredocs, and BuildKit's ``Dump`` format of them."""

from __future__ import annotations

from idpbuilder._records import dataclass, field
from idpbuilder.dockerfile.lexer import go_quote

__all__ = ["Heredoc", "Node", "ParseResult", "dump", "node_dump"]


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
