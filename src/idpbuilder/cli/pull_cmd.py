"""``idpbuilder pull IMAGE``: fetch an image into the local store (Docker Hub names normalised)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from idpbuilder.cli.options import registry_flags, registry_options

if TYPE_CHECKING:
    from idpbuilder.cli.main import AppContext

__all__ = ["command"]


@click.command("pull")
@click.argument("image")
@click.option(
    "--platform",
    default=None,
    metavar="OS/ARCH[/VARIANT]",
    help="Platform to pull from a multi-arch image [default: this host].",
)
@registry_flags("pull")
@click.pass_obj
def command(app: AppContext, /, image: str, platform: str | None, progress: str, **kw: Any) -> None:
    """Pull IMAGE into the local store (alpine → docker.io/library/alpine:latest); prints REF@sha256:<digest>."""
    from idpbuilder.cli.progress import reporting
    from idpbuilder.cluster.transfer import pull_to_store
    from idpbuilder.oci import Platform

    opts = registry_options(kw)
    plat = Platform.parse(platform) if platform else None
    with reporting(progress, verb="pulled") as rep:
        result = pull_to_store(app.home, image, opts, platform=plat, reporter=rep)
    name = result.reference.split("@", 1)[0]
    click.echo(f"{name}@{result.descriptor.digest}")
