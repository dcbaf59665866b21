"""Living beside the Go idpbuilder: commands this tool does not have are handed to the Go one, unchanged.

Both tools are called ``idpbuilder``. When another ``idpbuilder`` executable is on ``PATH`` (not this one),
``idpbuilder create …`` (or ``get``, ``delete``, ``version``, any name we do not implement) execs it with the
same arguments, environment, streams and therefore exit code. Without one, such a command fails with a hint.

Recursion is impossible: candidates that resolve to the running program, or that are Python launchers of
this package, are skipped, and the exec sets ``IDPBUILDER_PASSTHROUGH`` so a copy of this tool started by the
hand-over never hands over again.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from idpbuilder.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["GO_COMMANDS", "MARKER_ENV", "find_go_tool", "go_tool_help", "passthrough_command"]

GO_COMMANDS = ("create", "delete", "get", "version")  # the Go idpbuilder's commands (cobra adds "help")
MARKER_ENV = "IDPBUILDER_PASSTHROUGH"
INSTALL_URL = "https://cnoe.io/docs/idpbuilder/installation"


class NoSuchCommand(UsageError):
    """A command neither this tool nor a Go idpbuilder on PATH has (a bad command line: exit 2)."""

    exit_code = 2


def _is_this_tool(path: str) -> bool:
    """True when ``path`` is the running program or a Python launcher of this package (pip/pipx script)."""
    me = {os.path.realpath(sys.argv[0])} if sys.argv and sys.argv[0] else set()
    try:
        if os.path.realpath(path) in me:
            return True
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return True  # unreadable: do not run it
    return head.startswith(b"#!") and b"idpbuilder.cli" in head


def find_go_tool(environ: dict[str, str] | None = None) -> Path | None:
    """The first other ``idpbuilder`` executable on PATH, or None (also None inside a hand-over)."""
    env = os.environ if environ is None else environ
    if env.get(MARKER_ENV):
        return None
    seen: set[str] = set()
    for d in env.get("PATH", "").split(os.pathsep):  # os.path, not pathlib: --help runs this
        cand = os.path.join(d or ".", "idpbuilder")
        if not os.path.isfile(cand) or not os.access(cand, os.X_OK):
            continue
        real = os.path.realpath(cand)
        if real in seen:
            continue
        seen.add(real)
        if not _is_this_tool(cand):
            from pathlib import Path

            return Path(cand)
    return None


def go_tool_help() -> list[str]:
    """What ``idpbuilder --help`` says about the Go tool's commands (lines, not to be re-wrapped)."""
    names = ", ".join(GO_COMMANDS)
    go = find_go_tool()
    if go is not None:
        return [f"{names} and any other command not listed above are run by", f"the Go idpbuilder: {go}"]
    return [
        f"{names}: the Go idpbuilder's, which is not on PATH.",
        f"Install it ({INSTALL_URL})",
        "in a directory after this tool on PATH: commands not listed above are then handed to it.",
    ]


def hand_over(go: Path, args: list[str]) -> NoReturn:
    """Replace this process with the Go idpbuilder running ``args``."""
    sys.stdout.flush()
    sys.stderr.flush()
    env = dict(os.environ)
    env[MARKER_ENV] = os.path.realpath(sys.argv[0]) if sys.argv and sys.argv[0] else "1"
    os.execve(go, [str(go), *args], env)


def _not_found(name: str, known: list[str]) -> NoSuchCommand:
    import difflib

    if name in GO_COMMANDS:
        return NoSuchCommand(
            f"'{name}' is a command of the Go idpbuilder, which is not on PATH",
            hint=f"install the Go idpbuilder ({INSTALL_URL}) in a directory later on PATH than this tool",
        )
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        hint = f"did you mean '{close[0]}'? see 'idpbuilder --help'"
    else:
        hint = "see 'idpbuilder --help' (the Go idpbuilder, which would run it, is not on PATH)"
    return NoSuchCommand(f"No such command '{name}'", hint=hint)


def passthrough_command(name: str, known: list[str]) -> click.Command:
    """A command standing for ``name``: hands the whole command line to the Go idpbuilder, or fails
    (suggesting the closest of our ``known`` commands)."""

    def run(args: tuple[str, ...]) -> None:
        ctx = click.get_current_context()
        root = ctx.find_root()
        argv: list[str] = list(root.meta.get("idpbuilder.argv") or [name, *args])
        go = find_go_tool()
        if go is None:
            raise _not_found(name, known)
        hand_over(go, argv)

    settings: dict[str, Any] = {"ignore_unknown_options": True, "allow_extra_args": True}
    return click.Command(
        name,
        callback=run,
        params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
        context_settings=settings,
        add_help_option=False,
        help="A command of the Go idpbuilder.",
    )
