"""``idpbuilder images --remote``: list the images and tags in the idpbuilder (or any) registry."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from idpbuilder.cli.options import registry_flags, registry_options
from idpbuilder.cli.render import render_table, since

__all__ = ["remote_options", "run_remote"]

F = TypeVar("F", bound=Callable[..., Any])


def remote_options(fn: F) -> F:
    """``--remote`` and the registry flag set (registry, credentials, TLS, retries, cluster)."""
    fn = registry_flags("images")(fn)
    return click.option(
        "--remote", is_flag=True, help="List the images in the registry instead of the local store."
    )(fn)


def run_remote(home: Path, pattern: str | None, *, fmt: str, quiet: bool, **kw: Any) -> None:
    """List the registry and print it (table, ``-q`` references, or ``--format json``)."""
    from idpbuilder.cluster.listing import list_remote
    from idpbuilder.store.catalog import parse_created

    rows = list_remote(home, registry_options(kw), pattern)
    if fmt == "json":
        click.echo(json.dumps([r.to_json() for r in rows], indent=2))
        return
    if quiet:
        for r in rows:
            click.echo(f"{r.name}:{r.tag}")
        return
    now = time.time()
    table = [[r.name, r.tag, since(parse_created(r.created), now)] for r in rows]
    click.echo(render_table(["REPOSITORY", "TAG", "CREATED"], table), nl=False)
