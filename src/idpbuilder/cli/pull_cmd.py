"""``idpbuilder pull IMAGE``: fetch an image into the local store (Docker Hub names normalised).

Auth and TLS work as for push (SPEC §4): for the idpbuilder registry the Gitea credentials and the CA come
from the cluster (``--kubeconfig`` / ``--context``) when no flag, environment or docker config supplies them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from idpbuilder.cli.push_cmd import (
    PushOptions,
    cluster_session,
    make_settings,
    registry_options,
    with_registry_ca,
)

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
@registry_options
@click.pass_obj
def command(app: AppContext, /, image: str, platform: str | None, **kw: Any) -> None:
    """Pull IMAGE into the local store (alpine → docker.io/library/alpine:latest); prints REF@sha256:<digest>."""
    from idpbuilder.cli.progress import make_reporter
    from idpbuilder.oci import Platform
    from idpbuilder.reference import Reference
    from idpbuilder.registry.client import RegistryClient
    from idpbuilder.registry.pull import pull
    from idpbuilder.store.layout import Store

    opts = PushOptions.from_kwargs(kw)
    ref = Reference.parse(image).for_pull()
    assert ref.registry is not None
    plat = Platform.parse(platform) if platform else None
    with cluster_session(app, opts) as cluster:
        settings = with_registry_ca(make_settings(app, opts, cluster=cluster), cluster, ref.registry)
        credential = settings.keychain.resolve(ref.registry)
    store = Store.open(app.home)
    rep = make_reporter(opts.progress, verb="pulled")
    client = RegistryClient(ref.registry, settings, credential=credential)
    try:
        result = pull(store, ref, settings=settings, platform=plat, reporter=rep, client=client)
    except BaseException:
        rep.stop()
        raise
    finally:
        client.close()
    rep.finish()
    name = result.reference.split("@", 1)[0]
    click.echo(f"{name}@{result.descriptor.digest}")
