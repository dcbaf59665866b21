"""``idpbuilder push IMAGE [DEST]``: push from the local store, an OCI layout dir or a docker-archive tar.

Prints ``REF@sha256:<manifest digest>`` on stdout; progress and logs go to stderr.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from idpbuilder.cli.options import registry_flags, registry_options

if TYPE_CHECKING:
    from idpbuilder.cli.main import AppContext

__all__ = ["command"]


@click.command("push")
@click.argument("image")
@click.argument("dest", required=False)
@registry_flags("push")
@click.pass_obj
def command(app: AppContext, /, image: str, dest: str | None, progress: str, **kw: Any) -> None:
    """Push IMAGE (from the local store, an OCI layout dir `oci:DIR[:TAG]`, or a docker-archive tar) to
    DEST or to its own name; a name without a registry goes to --registry / the idpbuilder Gitea.
    Prints REF@sha256:<manifest digest>."""
    from idpbuilder.cli.progress import reporting
    from idpbuilder.cluster.transfer import push_from

    if dest is not None and "://" in dest:
        from idpbuilder.errors import UsageError

        scheme, _, rest = dest.partition("://")
        raise UsageError(
            f"DEST {dest!r} is a URL, not an image reference",
            hint=f"give DEST as {rest or 'HOST/REPO:TAG'}; the scheme goes in --registry {scheme}://HOST "
            "(or use --insecure for plain HTTP)",
        )
    opts = registry_options(kw)
    with reporting(progress, verb="pushed") as rep:
        result = push_from(app.home, image, dest, opts, reporter=rep)
    click.echo(result.pinned)
