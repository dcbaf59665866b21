"""Push and pull as the commands do them: the store (or an archive) on one side, a registry opened with
:func:`~idpbuilder.cluster.session.open_registry` on the other. Nothing here prints."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idpbuilder.cluster.session import RegistryConnection, RegistryOptions, open_registry
from idpbuilder.errors import UsageError

if TYPE_CHECKING:
    from idpbuilder.oci import Descriptor, Platform
    from idpbuilder.registry.progress import Reporter
    from idpbuilder.registry.pull import PullResult
    from idpbuilder.registry.push import PushResult
    from idpbuilder.registry.source import ImageSource
    from idpbuilder.store.layout import Store

__all__ = ["base_image_puller", "pull_to_store", "push_from"]

log = logging.getLogger("idpbuilder.push")


def push_from(
    home: Path, image: str, dest: str | None, opts: RegistryOptions, *, reporter: Reporter | None = None
) -> PushResult:
    """Push IMAGE (store ref, ``oci:DIR[:tag]``, layout dir or archive) to DEST, else to its own name.

    A name without a registry host goes to the idpbuilder registry (``--registry``, else
    ``IDPBUILDER_REGISTRY_URL``, the cluster's, the default), with the Gitea owner inserted.
    """
    from idpbuilder.reference import Reference
    from idpbuilder.registry.locations import BlobLocations
    from idpbuilder.registry.push import push_image
    from idpbuilder.registry.source import open_source

    def store_factory() -> Any:
        from idpbuilder.store.layout import Store

        return Store.open(home)

    source = open_source(image, store_factory, tmp_dir=home / "tmp")
    try:
        name = dest or _own_name(source)
        if not name:
            raise UsageError(
                f"{image} carries no image name; say where to push it",
                hint="idpbuilder push SOURCE REGISTRY/REPO:TAG",
            )
        with open_registry(home, opts, Reference.parse(name), push=True) as conn:
            ref = conn.reference
            assert ref is not None
            if ref.tag and ref.tag != ref.tag.lower():
                log.warning("tag %r has capitals; some registries (Gitea) store tags in lower case", ref.tag)
            locations = BlobLocations(home / "work" / "registry" / "blob-locations.json")
            result = push_image(source, ref, conn.client, reporter=reporter, locations=locations)
        locations.save()
        return result
    finally:
        source.close()


def _own_name(source: ImageSource) -> str | None:
    """The name a source carries: a store reference, or a full reference inside a layout or archive."""
    from idpbuilder.reference import Reference
    from idpbuilder.registry.source import StoreSource

    if source.name is None:
        return None
    if isinstance(source, StoreSource) and source.cleanup is None:  # the store, not a loaded archive
        return source.name
    try:
        return source.name if Reference.parse(source.name).registry is not None else None
    except UsageError:
        return None


def pull_to_store(
    home: Path,
    image: str,
    opts: RegistryOptions,
    *,
    platform: Platform | None = None,
    reporter: Reporter | None = None,
) -> PullResult:
    """Pull IMAGE (``alpine`` → ``docker.io/library/alpine:latest``) into the store under ``home``."""
    from idpbuilder.cluster.mirrors import via_mirrors
    from idpbuilder.reference import Reference
    from idpbuilder.registry.pull import pull
    from idpbuilder.store.layout import Store

    store = Store.open(home)  # a damaged store fails here, before the registry is even contacted

    def fetch(conn: RegistryConnection, ref: Reference) -> PullResult:
        return pull(
            store, ref, settings=conn.settings, platform=platform, reporter=reporter, client=conn.client
        )

    mirrored = via_mirrors(home, opts, Reference.parse(image), fetch)  # Docker Hub names: mirrors first
    if mirrored is not None:
        return mirrored
    with open_registry(home, opts, Reference.parse(image)) as conn:
        assert conn.reference is not None
        return pull(
            store,
            conn.reference,
            settings=conn.settings,
            platform=platform,
            reporter=reporter,
            client=conn.client,
        )


def base_image_puller(
    home: Path, opts: RegistryOptions
) -> Callable[[Store, str, Platform | None], Descriptor]:
    """The builder's FROM puller: pulls with ``opts`` as ``pull`` does (cluster credentials and CA included)."""

    def pull(store: Store, ref: str, platform: Platform | None) -> Descriptor:
        from idpbuilder.cluster.mirrors import via_mirrors
        from idpbuilder.reference import Reference
        from idpbuilder.registry.pull import pull_image

        def fetch(conn: RegistryConnection, r: Reference) -> Descriptor:
            return pull_image(store, r, settings=conn.settings, platform=platform, client=conn.client)

        mirrored = via_mirrors(home, opts, Reference.parse(ref), fetch)
        if mirrored is not None:
            return mirrored
        with open_registry(home, opts, Reference.parse(ref)) as conn:
            return pull_image(store, ref, settings=conn.settings, platform=platform, client=conn.client)

    return pull
