"""``idpbuilder cert export``: write the idpbuilder cluster CA where docker, podman or the user wants it."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from idpbuilder.cli.main import AppContext
from idpbuilder.cli.options import kube_options

__all__ = ["command", "export"]


@click.group("cert")
def command() -> None:
    """The idpbuilder cluster's certificate authority."""


@command.command("export")
@click.option("--docker", is_flag=True, help="Write ~/.docker/certs.d/<registry>/ca.crt.")
@click.option(
    "--podman", is_flag=True, help="Write /etc/containers/certs.d/<registry>/ca.crt (rootless: ~/.config/…)."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the CA to FILE ('-' = stdout, the default when no destination is given).",
)
@click.option(
    "--registry", metavar="URL", default=None, help="The idpbuilder registry [default: discovered]."
)
@kube_options
@click.pass_obj
def export(
    app: AppContext,
    docker: bool,
    podman: bool,
    output: Path | None,
    registry: str | None,
    kubeconfig: Path | None,
    kube_context: str | None,
) -> None:
    """Export the CA from secret default/idpbuilder-cert so docker/podman trust the idpbuilder registry."""
    from idpbuilder.cluster.certs import export_ca

    to_stdout = output is not None and str(output) == "-"
    _, pem, written = export_ca(
        app.home,
        docker=docker,
        podman=podman,
        files=(output,) if output is not None and not to_stdout else (),
        kubeconfig=kubeconfig,
        kube_context=kube_context,
        registry=registry,
    )
    for path in written:
        click.echo(str(path))
    if to_stdout or not written:
        sys.stdout.write(pem.decode())
        sys.stdout.flush()
