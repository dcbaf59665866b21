"""Issue #11 item 5: every ``--flag`` a hint names exists on the command that prints it.

Two checks, because neither alone is enough:

* statically, every hint in the source (``hint=`` arguments, functions that build hints, ``Hint:`` texts) is
  scanned: a flag inside a backticked ``idpbuilder CMD …`` must exist on CMD, flags in other backticked
  commands (skopeo, docker, the Go idpbuilder's ``get secrets``) are theirs, and any other flag must exist on
  at least one command (or be global);
* dynamically, the error paths of the registry and store commands are run through the real CLI and each
  printed hint's flags must exist on that very command (a hint saying ``--registry`` to ``tag`` fails here).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from regkit import make_image, unique

from fixtures.cli import CliRunner
from fixtures.fault_proxy import FaultProxy
from fixtures.registry import RegistryInfo
from idpbuilder.cli.main import COMMANDS, cli

SRC = Path(__file__).resolve().parents[2] / "src" / "idpbuilder"
FLAG = re.compile(r"(?<![\w-])(--?[a-zA-Z][a-zA-Z0-9-]*)")
BACKTICKED = re.compile(r"`([^`]*)`")
# commands of the Go idpbuilder (the cluster tool), which hints may name as such
GO_TOOL_COMMANDS = ("idpbuilder get ", "idpbuilder create", "idpbuilder delete")
# flags that are not ours to have: Dockerfile instruction flags (COPY --chown, RUN --mount …) and
# `docker run --privileged` for running the tool in a container
FOREIGN_FLAGS = {
    "--checksum",
    "--parents",
    "--chown",
    "--chmod",
    "--mount",
    "--from",
    "--link",
    "--exclude",
    "--security",
    "--network",
    "--keep-git-dir",
    "--interval",
    "--start-period",
    "--start-interval",
    "--privileged",
}


def _flags_of(cmd: click.Command) -> set[str]:
    load = getattr(cmd, "_load_remote", None)  # `images` adds its --remote options on demand
    if callable(load):
        load()
    out: set[str] = {"--help", "-h"}
    for p in cmd.params:
        if isinstance(p, click.Option):
            out.update(p.opts)
            out.update(p.secondary_opts)
    return out


GLOBAL_FLAGS = _flags_of(cli) | {"--version"}


def _command(name: str) -> click.Command:
    ctx = click.Context(cli)
    c = cli.get_command(ctx, name)
    assert c is not None, name
    return c


ALL_FLAGS = GLOBAL_FLAGS.union(*(_flags_of(_command(n)) for n in COMMANDS))


def _problems(hint: str, command: str | None) -> list[str]:
    """Flags in ``hint`` that do not exist where they are offered (``command`` None: on any command)."""
    bad: list[str] = []
    for quoted in BACKTICKED.findall(hint):
        words = quoted.split()
        if not words or words[0] != "idpbuilder" or quoted.startswith(GO_TOOL_COMMANDS):
            continue  # another tool's command line: its flags are its own
        sub = next((w for w in words[1:] if not w.startswith("-")), None)
        if sub in COMMANDS:
            cmd = _command(sub)
            if isinstance(cmd, click.Group):  # `idpbuilder cert export -o …`: the subcommand's flags
                nxt = next((w for w in words[words.index(sub) + 1 :] if not w.startswith("-")), "")
                cmd = cmd.commands.get(nxt, cmd)
            have = _flags_of(cmd) | GLOBAL_FLAGS
            bad += [f"{f} (on `idpbuilder {sub}`)" for f in FLAG.findall(quoted) if f not in have]
    rest = BACKTICKED.sub(" ", hint)
    have = ALL_FLAGS if command is None else _flags_of(_command(command)) | GLOBAL_FLAGS
    found = re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest)
    bad += [f for f in found if f not in have and f not in FOREIGN_FLAGS]
    return bad


def _literal_text(node: ast.AST) -> str:
    """The constant text of a string expression (f-string holes as spaces, concatenations joined)."""
    parts: list[str] = []
    for n in ast.walk(node):
        if isinstance(n, ast.Constant) and isinstance(n.value, str):
            parts.append(n.value)
    return " ".join(parts)


def _source_hints() -> Iterator[tuple[str, int, str]]:
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        rel = str(path.relative_to(SRC))
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "hint" and node.value is not None:
                yield rel, node.value.lineno, _literal_text(node.value)
            elif isinstance(node, ast.FunctionDef) and "hint" in node.name:
                for r in ast.walk(node):
                    if isinstance(r, ast.Return) and r.value is not None:
                        yield rel, r.lineno, _literal_text(r.value)
            elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and "hint" in t.id.lower() for t in node.targets
            ):
                yield rel, node.lineno, _literal_text(node.value)


def test_every_flag_in_a_source_hint_exists() -> None:
    hints = list(_source_hints())
    assert len(hints) > 100  # the scan sees the hints
    bad = [f"{f}:{line}: {p}" for f, line, text in hints for p in _problems(text, None)]
    assert not bad, "hints name flags no command has:\n" + "\n".join(bad)


def test_the_checker_catches_wrong_flags() -> None:
    assert _problems("pass --runtime crun", None) == ["--runtime"]
    assert _problems("`idpbuilder cert export -o ca.pem`", None) == []
    assert _problems("use --registry URL", "tag") == ["--registry"]
    assert _problems("`idpbuilder rmi --registry x`", None) == ["--registry (on `idpbuilder rmi`)"]
    assert _problems("`idpbuilder get secrets -p gitea` (the Go tool)", "push") == []
    assert _problems("`skopeo inspect --raw`, or --insecure", "pull") == []


# ---- the error paths, through the real CLI ---------------------------------------------------------------


def _hints(err: str) -> list[str]:
    return [ln[len("Hint: ") :] for ln in err.splitlines() if ln.startswith("Hint: ")]


@pytest.fixture
def stored(idp_home: Path) -> str:
    ref = "example.com/hints/app:v1"
    make_image(idp_home, ref, [5000])
    return ref


def _scenarios(
    stored: str, proxy: FaultProxy, plain: RegistryInfo, basic: RegistryInfo, token: RegistryInfo
) -> list[tuple[list[str], dict[str, str]]]:
    fast = {"IDPBUILDER_RETRY_BASE_DELAY": "0.01"}
    dest = proxy.registry.ref(f"{unique('hints')}/app:v1")
    return [
        (["push", stored, "127.0.0.1:1/x/y:1"], fast),  # refused
        (["pull", "127.0.0.1:1/x/y:1"], fast),
        (["pull", "no-such-host.invalid/x/y:1"], fast),
        (["build", "--timeout", "1", "{ctx}"], fast),  # FROM a refused registry
        (["images", "--remote", "--registry", "http://127.0.0.1:1"], fast),
        (["push", "--timeout", "1", stored, dest], {**fast, "stall": "1"}),  # a silent registry
        (["pull", "--timeout", "1", dest], {**fast, "stall": "1"}),
        (
            [
                "push",
                "-u",
                "nobody",
                "-p",
                "wrong",
                "--ca-file",
                str(basic.ca_file),
                stored,
                basic.ref("x/y:1"),
            ],
            fast,
        ),
        (["pull", "-u", "nobody", "-p", "wrong", token.ref("x/y:1")], fast),
        (["pull", token.ref("x/y:1")], fast),
        (["pull", plain.ref("no/such:image")], fast),
        (["push", "no-such-image:1", plain.ref("x/y:1")], fast),
        (["tag", "no-such-image:1", "x:1"], {}),
        (["tag", stored, "Bad:Name"], {}),
        (["rmi", "no-such-image:1"], {}),
        (["inspect", "no-such-image:1"], {}),
        (["push", stored, "https://host.example/x:1"], {}),
        (["pull", "--platform", "nope", "x:1"], {}),
        (["build", "-t", "Bad_Name", "{ctx}"], {}),
        (["build", "--target", "nope", "{ctx}"], {}),
    ]


def test_hints_on_error_paths_name_only_flags_of_their_command(
    cli: CliRunner,
    stored: str,
    fault_proxy: FaultProxy,
    registry_plain: RegistryInfo,
    registry_tls: RegistryInfo,
    registry_token: RegistryInfo,
    tmp_path: Path,
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM 127.0.0.1:1/base/img:1 AS first\nRUN true\n")
    seen = 0
    bad: list[str] = []
    for args, env in _scenarios(stored, fault_proxy, registry_plain, registry_tls, registry_token):
        env = dict(env)
        if env.pop("stall", None):
            fault_proxy.stall(0, connections=100)
        argv = [a.replace("{ctx}", str(ctx)) for a in args]
        code, _, err = cli.main(*argv, env=env)
        fault_proxy.clear()
        assert code != 0, argv
        assert "Traceback" not in err and "internal error" not in err, (argv, err)
        hints = _hints(err)
        assert len(hints) == 1, (argv, err)
        seen += 1
        bad += [f"{' '.join(args)}: {p}" for p in _problems(hints[0], args[0])]
    assert seen >= 15
    assert not bad, "\n".join(bad)
