"""Entry point: global flags, lazy command loading, and the one place errors become exit codes.

Start-up time matters here (``--help``, ``images`` and a warm ``push`` should feel instant): this module
imports click and little else; command modules, ``logging`` (see ``cli/logs.py``) and ``pathlib`` are loaded
when a command needs them. ``tests/test_startup.py`` checks what the hot commands import.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import click

from idpbuilder import __version__
from idpbuilder._records import dataclass
from idpbuilder.cli.logs import LEVELS as LOG_LEVELS
from idpbuilder.cli.logs import setup as _setup_logging
from idpbuilder.errors import IdpError, Interrupted

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["AppContext", "main"]

# name -> "module:attribute"; modules are imported only when the command runs (keeps --help fast)
COMMANDS: dict[str, tuple[str, str]] = {
    "build": ("idpbuilder.cli.build_cmd:command", "Build an image from a Dockerfile (no daemon needed)."),
    "images": ("idpbuilder.cli.images_cmd:command", "List images in the local store (or --remote registry)."),
    "push": (
        "idpbuilder.cli.push_cmd:command",
        "Push an image to a registry (default: the idpbuilder Gitea).",
    ),
    "pull": ("idpbuilder.cli.pull_cmd:command", "Pull an image into the local store."),
    "tag": ("idpbuilder.cli.store_cmds:tag", "Create a tag DEST that refers to image SRC."),
    "rmi": ("idpbuilder.cli.store_cmds:rmi", "Remove images from the local store."),
    "inspect": (
        "idpbuilder.cli.inspect_cmd:command",
        "Show an image's manifest, config and layers (--format '{{.Config.Env}}').",
    ),
    "history": ("idpbuilder.cli.history_cmd:command", "Show the history of an image, like docker history."),
    "prune": (
        "idpbuilder.cli.store_cmds:prune",
        "Remove untagged images and unreferenced blobs (-a: build cache too).",
    ),
    "save": ("idpbuilder.cli.archive_cmds:save", "Save images to a docker-archive or OCI archive tarball."),
    "load": ("idpbuilder.cli.archive_cmds:load", "Load images from a docker-archive or OCI archive tarball."),
    "cert": ("idpbuilder.cli.cert_cmd:command", "Export the idpbuilder cluster CA for docker/podman."),
    "login": (
        "idpbuilder.cli.login_cmd:login",
        "Log in to a registry (default: the idpbuilder Gitea), saved in the docker config.",
    ),
    "logout": ("idpbuilder.cli.login_cmd:logout", "Remove a registry's credentials from the docker config."),
    "completion": (
        "idpbuilder.cli.completion_cmd:command",
        "Print a shell completion script (bash|zsh|fish).",
    ),
}


@dataclass(frozen=True)
class AppContext:
    """Global settings every command receives (via click's ``ctx.obj``)."""

    home: Path
    log_level: str
    color: bool

    @property
    def store_dir(self) -> Path:
        return self.home / "store"

    @property
    def debug(self) -> bool:
        return self.log_level == "debug"


class _LazyGroup(click.Group):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # the command line as given: a command we do not have is handed to the Go idpbuilder unchanged
        ctx.meta["idpbuilder.argv"] = list(args)
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            # not ours: the Go idpbuilder's (create, get, delete, version…), handed over when it is on PATH
            from idpbuilder.cli.passthrough import passthrough_command

            return passthrough_command(cmd_name, sorted(COMMANDS))
        mod_name, _, attr = entry[0].partition(":")
        try:
            mod = __import__(mod_name, fromlist=[attr])  # (not importlib: one module less to load)
        except ModuleNotFoundError as e:
            if e.name == mod_name:
                return None
            raise
        cmd = getattr(mod, attr)
        assert isinstance(cmd, click.Command)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # short help from the table, so --help imports no command module
        with formatter.section("Commands"):
            formatter.write_dl([(n, COMMANDS[n][1]) for n in sorted(COMMANDS)])
        from idpbuilder.cli.passthrough import go_tool_help

        with formatter.section("Commands of the Go idpbuilder"):
            for line in go_tool_help():
                formatter.write(f"{'':>{formatter.current_indent}}{line}\n")


def _log(level: str, message: str, *, exc_info: bool = False) -> None:
    """Log ``message`` on the ``idpbuilder`` logger (``logging`` is imported on first use)."""
    import logging

    logging.getLogger("idpbuilder").log(LOG_LEVELS[level], message, exc_info=exc_info)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-l",
    "--log-level",
    type=click.Choice(list(LOG_LEVELS)),
    default="info",
    show_default=True,
    help="Log verbosity (logs go to stderr).",
)
@click.option(
    "--color/--no-color", default=None, help="Colour the log output (default: when stderr is a TTY)."
)
@click.option(
    "--store",
    "store",
    type=click.Path(file_okay=False),
    envvar="IDPBUILDER_HOME",
    help="Home directory for the store, caches and certs [env IDPBUILDER_HOME; default ~/.idpbuilder].",
)
@click.version_option(__version__, "--version", "-V", prog_name="idpbuilder")
@click.pass_context
def cli(ctx: click.Context, log_level: str, color: bool | None, store: str | None) -> None:
    """Build container images from Dockerfiles without a Docker daemon, keep them in a local
    OCI store, and push them to the idpbuilder Gitea registry or any OCI registry."""
    from pathlib import Path

    if color is None:
        color = sys.stderr.isatty() and "NO_COLOR" not in os.environ
    home = Path(store) if store is not None else Path.home() / ".idpbuilder"
    _setup_logging(log_level, color)
    ctx.obj = AppContext(home=home.expanduser().absolute(), log_level=log_level, color=color)
    if not os.environ.get("IDPBUILDER_ISOLATED"):  # an isolated build reaped before entering its namespaces
        _reap(ctx.obj.home)


def _reap(home: Path) -> None:
    """Remove what runs of processes that are gone left behind (temp files, run state, secrets)."""
    if not home.is_dir():
        return
    from idpbuilder.owner import owner_alive
    from idpbuilder.store.reaper import has_run_state, reap_temp_files

    seen: dict[str, bool] = {}  # liveness as the host's /proc tells it (a build's namespaces cannot)

    def alive(owner: str) -> bool:
        if owner not in seen:
            seen[owner] = owner_alive(owner)
        return seen[owner]

    def reap_all(alive: Callable[[str], bool]) -> int:
        left = 0
        with contextlib.suppress(OSError):
            left += reap_temp_files(home, alive)
        if has_run_state(home):
            from idpbuilder.sandbox.state import reap

            with contextlib.suppress(OSError):
                left += reap(home, alive)
        return left

    if reap_all(alive) and os.geteuid() != 0 and not os.environ.get("IDPBUILDER_ISOLATED"):
        # files of a killed rootless build belong to our subordinate ids: remove them from inside a user
        # namespace (rare: only after a crash), for the owners found gone out here
        from idpbuilder.sandbox.isolation import isolate

        with contextlib.suppress(Exception):
            isolate(lambda _info: reap_all(lambda o: seen.get(o, True)), warn=lambda m: _log("debug", m))


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _fail(message: str, hint: str | None, code: int, color: bool) -> NoReturn:
    red = "\x1b[31m" if color else ""
    reset = "\x1b[0m" if color else ""
    sys.stderr.write(f"{red}Error:{reset} {message}\n")
    if hint:
        sys.stderr.write(f"Hint: {hint}\n")
    sys.stderr.flush()
    sys.exit(code)


# commands that run in the build's own namespaces (sandbox/isolation.py): build always; prune when rootless,
# since the files it removes belong to ids of the user namespace
_ISOLATED = {"build": True, "prune": False}
_GLOBAL_WITH_VALUE = {"-l", "--log-level", "--store"}


def _subcommand(args: list[str]) -> str | None:
    """The command name in ``args`` (after the global options), if any."""
    i = 0
    while i < len(args):
        a = args[i]
        if a in _GLOBAL_WITH_VALUE:
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        return a
    return None


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; map errors to exit codes 0/1/2/130 (no traceback unless --log-level debug)."""
    args = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, _raise_interrupt)
    cmd = _subcommand(args)
    # the program itself (argv None) isolates; a caller passing argv runs the command in its own process
    wanted = cmd in _ISOLATED and (_ISOLATED[cmd] or os.geteuid() != 0)
    if argv is None and wanted and not {"-h", "--help"} & set(args):
        from idpbuilder.sandbox.isolation import isolate

        color = "--color" in args
        _setup_logging(_log_level(args), color)
        # here, not in the namespaces: whether an owner still runs is read from the host's /proc
        _reap(_home_from_args(args))
        try:
            code = isolate(lambda _info: _main(args), warn=lambda m: _log("warn", m))
        except IdpError as e:
            _fail(e.message, e.hint or _default_hint(e, args), e.exit_code, color)
        except KeyboardInterrupt:  # a signal that reached P after the build had ended
            _fail("interrupted", None, 130, color)
        sys.exit(code)
    _main(args)


def _home_from_args(args: list[str]) -> Path:
    """The home the command will use (--store, $IDPBUILDER_HOME, ~/.idpbuilder), before click parses."""
    from pathlib import Path

    store: str | None = None
    cmd = _subcommand(args)
    for i, a in enumerate(args):
        if a == cmd:
            break
        if a == "--store" and i + 1 < len(args):
            store = args[i + 1]
        elif a.startswith("--store="):
            store = a.split("=", 1)[1]
    home = Path(store or os.environ.get("IDPBUILDER_HOME") or Path.home() / ".idpbuilder")
    return home.expanduser().absolute()


def _main(args: list[str]) -> NoReturn:
    """The CLI proper: run the command and exit (SystemExit) with its code."""
    debug = _wants_debug(args)
    color = "--color" in args
    try:
        cli.main(args=args, prog_name="idpbuilder", standalone_mode=False)
    except click.exceptions.Abort:
        _fail("interrupted", None, 130, color)
    except click.UsageError as e:
        # bad flags or arguments: one line and a hint, exit 2 (click's and POSIX's code for usage errors)
        where = e.ctx.command_path if e.ctx is not None else _command_path(args)
        _fail(_one_line(e.format_message()), f"see '{where} --help'", e.exit_code, color)
    except click.ClickException as e:
        _fail(_one_line(e.format_message()), None, e.exit_code, color)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        if debug:
            _log("debug", "interrupted", exc_info=True)
        _fail("interrupted", None, 130, color)
    except Interrupted as e:
        _fail(e.message, e.hint, 130, color)
    except IdpError as e:
        if debug:
            _log("debug", "error", exc_info=True)
        _fail(e.message, e.hint or _default_hint(e, args), e.exit_code, color)
    except BrokenPipeError:
        sys.exit(1)
    except OSError as e:  # a file the command needed: still one line and a hint, not "internal error"
        if debug:
            _log("debug", "error", exc_info=True)
        _fail(*_os_error(e), 1, color)
    except Exception as e:  # a bug: still no traceback unless debug
        if debug:
            raise
        _fail(
            f"internal error: {type(e).__name__}: {e}",
            "run again with --log-level debug for the traceback and report it",
            1,
            color,
        )
    sys.exit(0)


def _default_hint(e: IdpError, args: list[str]) -> str:
    """A hint for errors raised without one: every failure ends with a ``Hint:`` line."""
    from idpbuilder import errors as E

    if isinstance(e, E.DigestMismatchError):
        return (
            "data did not match its digest; if it came from the local store, `idpbuilder prune --verify` "
            "checks the store and removes damaged blobs, then pull or build the image again"
        )
    if isinstance(e, E.StoreError):
        return "check the store directory (--store, IDPBUILDER_HOME); `idpbuilder prune --verify` checks it"
    if isinstance(e, E.ClusterError):
        return "check --kubeconfig/--context; `kubectl get localbuilds` should list the idpbuilder cluster"
    if isinstance(e, E.TransientError):
        retries = (
            " or raise --retries" if _command_path(args).split()[-1] in ("push", "pull", "build") else ""
        )
        return f"the registry or the network is failing; try again later{retries}"
    if isinstance(e, E.RegistryError):
        return "run again with --log-level debug to see every request and the registry's answers"
    if isinstance(e, E.NotFoundError):
        return "check the name; `idpbuilder images` lists the local store"
    if isinstance(e, E.UsageError):
        return f"see '{_command_path(args)} --help'"
    return "run again with --log-level debug for details"


def _command_path(args: list[str]) -> str:
    """``idpbuilder CMD`` for the first argument naming a command (``idpbuilder`` when none does)."""
    cmd = next((a for a in args if a in COMMANDS), None)
    return f"idpbuilder {cmd}" if cmd else "idpbuilder"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _os_error(e: OSError) -> tuple[str, str]:
    """(message, hint) for an operating-system error that escaped the commands' own handling."""
    import errno

    what = f"{e.strerror or type(e).__name__}" + (f": {e.filename}" if e.filename else "")
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return what, "free some disk space, or point --store (IDPBUILDER_HOME) at a bigger filesystem"
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return what, "check the file's permissions; --store DIR (IDPBUILDER_HOME) moves the tool's files"
    return what, "run again with --log-level debug for details"


def _log_level(args: list[str]) -> str:
    """The --log-level given in ``args`` (default info), before click parses them."""
    for i, a in enumerate(args):
        if a in ("-l", "--log-level") and i + 1 < len(args) and args[i + 1] in LOG_LEVELS:
            return args[i + 1]
        for prefix in ("--log-level=", "-l"):
            if a.startswith(prefix) and a[len(prefix) :] in LOG_LEVELS:
                return a[len(prefix) :]
    return "info"


def _wants_debug(args: list[str]) -> bool:
    for i, a in enumerate(args):
        if a in ("-l", "--log-level") and i + 1 < len(args) and args[i + 1] == "debug":
            return True
        if a in ("--log-level=debug", "-ldebug"):
            return True
    return False
