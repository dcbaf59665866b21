"""``idpbuilder login [REGISTRY]`` / ``idpbuilder logout [REGISTRY]``: credentials in the docker config.

``push``, ``pull`` and ``build`` read the same file (and its credential helpers), so after a login they need
no credential flags.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from idpbuilder.cli.options import kube_options
from idpbuilder.errors import UsageError

if TYPE_CHECKING:
    from idpbuilder.cli.main import AppContext

__all__ = ["login", "logout"]

log = logging.getLogger("idpbuilder.login")

_REGISTRY_HELP = "REGISTRY: host[:port] or URL [default: the idpbuilder Gitea registry]."


def _read_stdin_secret() -> str:
    data = sys.stdin.read()
    # docker trims the one trailing newline (and a CR) that `echo`/here-strings add
    secret = data[:-1] if data.endswith("\n") else data
    secret = secret[:-1] if secret.endswith("\r") else secret
    if not secret:
        raise UsageError(
            "--password-stdin: nothing was read from stdin",
            hint="pipe the password in: `cat pw.txt | idpbuilder login -u USER --password-stdin REGISTRY`",
        )
    return secret


@click.command("login", epilog=_REGISTRY_HELP)
@click.argument("registry", required=False)
@click.option("-u", "--username", default=None, help="User name.")
@click.option("-p", "--password", default=None, help="Password or token (insecure: prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password or token from stdin.")
@click.option("--insecure", is_flag=True, help="Skip TLS verification and allow plain HTTP.")
@click.option(
    "--ca-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Extra CA certificate (PEM) to trust [env IDPBUILDER_CA_FILE].",
)
@click.option(
    "--retries",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Attempts on transient failures.",
)
@kube_options
@click.pass_obj
def login(
    app: AppContext,
    /,
    registry: str | None,
    username: str | None,
    password: str | None,
    password_stdin: bool,
    **kw: Any,
) -> None:
    """Log in to REGISTRY: check the credentials with the registry, then save them in the docker config
    ($REGISTRY_AUTH_FILE, else $DOCKER_CONFIG/config.json, else ~/.docker/config.json), through its credential
    helper when one is configured (credsStore/credHelpers).

    With no REGISTRY the idpbuilder Gitea registry is used; with no credentials, the idpbuilder cluster's
    Gitea account (secret gitea/gitea-credential).
    """
    from idpbuilder.cluster.login import login as do_login
    from idpbuilder.cluster.session import RegistryOptions

    source = "flags"
    if password is not None and password_stdin:
        raise UsageError(
            "--password and --password-stdin are mutually exclusive", hint="use --password-stdin"
        )
    if password is not None:
        log.warning(
            "using --password on the command line is insecure (process list, shell history); "
            "use --password-stdin"
        )
    elif password_stdin:
        if not username:
            raise UsageError(
                "--password-stdin needs --username", hint="idpbuilder login -u USER --password-stdin"
            )
        password = _read_stdin_secret()
        source = "stdin"
    elif username:
        if not sys.stdin.isatty():
            raise UsageError(
                f"no password for {username}", hint="pass it with --password-stdin (or run in a terminal)"
            )
        password = click.prompt("Password", hide_input=True, err=True)
        source = "prompt"
    opts = RegistryOptions.from_kwargs({**kw, "username": username, "password": password})
    result = do_login(app.home, registry, opts, source=source)
    where = f"docker-credential-{result.saved.helper}" if result.saved.helper else str(result.saved.path)
    log.info(
        "logged in to %s as %s (credentials from %s, saved in %s)",
        result.registry,
        result.username,
        result.source,
        where,
    )
    click.echo("Login Succeeded")


@click.command("logout", epilog=_REGISTRY_HELP)
@click.argument("registry", required=False)
@kube_options
@click.pass_obj
def logout(app: AppContext, /, registry: str | None, **kw: Any) -> None:
    """Remove REGISTRY's credentials from the docker config (and its credential helper)."""
    from idpbuilder.cluster.login import logout as do_logout
    from idpbuilder.cluster.session import RegistryOptions

    host, removed = do_logout(app.home, registry, RegistryOptions.from_kwargs(kw))
    if removed:
        click.echo(f"Removing login credentials for {host}")
    else:
        click.echo(f"Not logged in to {host}")
