"""One registry flag set for every command that talks to a registry: push, pull, build and ``images --remote``
get the same flags with the same names, except where a command's own flags claim a name."""

from __future__ import annotations

import copy

import click
import pytest

from idpbuilder.cli.options import parse_size, registry_options
from idpbuilder.cluster.session import RegistryOptions
from idpbuilder.errors import UsageError

SHARED = {
    "--registry",
    "-u",
    "--username",
    "-p",
    "--password",
    "--token",
    "--insecure",
    "--ca-file",
    "--retries",
    "--kubeconfig",
}


def _command(name: str) -> click.Command:
    from idpbuilder.cli.main import COMMANDS, cli

    cmd = cli.get_command(click.Context(cli), name)
    assert cmd is not None, COMMANDS
    if name == "images":  # the remote options join on demand (keeps `images` fast); load them into a copy
        cmd = copy.copy(cmd)
        cmd.params = list(cmd.params)
        cmd._load_remote()  # type: ignore[attr-defined]
    return cmd


def _flags(cmd: click.Command) -> set[str]:
    return {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}


@pytest.mark.parametrize("name", ["push", "pull", "build", "images"])
def test_every_registry_command_has_the_shared_flags(name: str) -> None:
    flags = _flags(_command(name))
    assert flags >= SHARED, SHARED - flags
    # -t is build's --tag; --context is build's context, so its cluster context is --kube-context
    assert ("-t" in flags) and (("--kube-context" if name == "build" else "--context") in flags)


def test_transfer_flags_where_something_is_transferred() -> None:
    for name in ("push", "pull", "build"):
        assert "--jobs" in _flags(_command(name)), name
    assert "--chunk-size" in _flags(_command("push")) and "--chunk-size" in _flags(_command("build"))
    assert not {"--jobs", "--chunk-size"} & _flags(_command("images"))


def test_registry_options_parse_the_chunk_size_and_drop_other_flags() -> None:
    opts = registry_options({"username": "u", "chunk_size": "64M", "tags": ("x:1",), "retries": None})
    assert opts == RegistryOptions(username="u", chunk_size=64 << 20)
    with pytest.raises(UsageError):
        registry_options({"chunk_size": "lots"})
    assert parse_size("1G") == 1 << 30
