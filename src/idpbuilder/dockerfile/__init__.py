"""Dockerfile front end: parser (AST), shell lexer (expansion), typed instructions and .dockerignore.

Parse -> typed instructions -> (the build engine) dispatch, as BuildKit's frontend does:

    df = parse_dockerfile(text, filename="Dockerfile")        # Dockerfile(meta_args, stages, escape)
    lex = ShellLex(df.escape)
    lex.process_word("${NAME:-x}", env)                       # expansion at dispatch time

All user-facing failures are ``DockerfileParseError`` (file and line) or ``BuildError`` from ``errors``.
"""

from idpbuilder.dockerfile.dockerignore import IgnoreMatcher, read_ignore_file, read_ignore_text
from idpbuilder.dockerfile.instructions import (
    Add,
    Arg,
    Cmd,
    Copy,
    Dockerfile,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Mount,
    Onbuild,
    Run,
    Shell,
    Stage,
    StopSignal,
    User,
    Volume,
    Workdir,
    parse_chmod,
    parse_dockerfile,
    parse_duration,
    parse_instruction,
    parse_mount,
    suggest,
)
from idpbuilder.dockerfile.lexer import ShellLex
from idpbuilder.dockerfile.parser import Heredoc, Node, ParseResult, dump, parse, parse_heredoc

__all__ = [
    "Add",
    "Arg",
    "Cmd",
    "Copy",
    "Dockerfile",
    "Entrypoint",
    "Env",
    "Expose",
    "From",
    "Healthcheck",
    "Heredoc",
    "IgnoreMatcher",
    "Instruction",
    "Label",
    "Maintainer",
    "Mount",
    "Node",
    "Onbuild",
    "ParseResult",
    "Run",
    "Shell",
    "ShellLex",
    "Stage",
    "StopSignal",
    "User",
    "Volume",
    "Workdir",
    "dump",
    "parse",
    "parse_chmod",
    "parse_dockerfile",
    "parse_duration",
    "parse_heredoc",
    "parse_instruction",
    "parse_mount",
    "read_ignore_file",
    "read_ignore_text",
    "suggest",
]
