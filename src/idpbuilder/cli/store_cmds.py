"""Store management commands: `tag`, `rmi`, `inspect`, `prune` (docker's semantics)."""

from __future__ import annotations

from typing import Any

import click

from idpbuilder.errors import NotFoundError
from idpbuilder.store.layout import Store

__all__ = ["prune", "rmi", "tag"]


@click.command("tag")
@click.argument("source", metavar="SRC")
@click.argument("target", metavar="DEST")
@click.pass_obj
def tag(obj: Any, source: str, target: str) -> None:
    """Create a tag DEST that refers to image SRC."""
    from idpbuilder.store.manage import tag_image

    tag_image(Store.open(obj.home), source, target)


@click.command("rmi")
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
@click.option("-f", "--force", is_flag=True, help="Remove every tag of an image given by id.")
@click.pass_obj
def rmi(obj: Any, images: tuple[str, ...], force: bool) -> None:
    """Remove images from the local store (untag, then delete what nothing references)."""
    from idpbuilder.cli.render import human_size
    from idpbuilder.store.manage import remove_images

    store = Store.open(obj.home)
    result = remove_images(store, images, force=force)
    for name in result.untagged:
        click.echo(f"Untagged: {name}")
    for digest in result.deleted:
        click.echo(f"Deleted: {digest}")
    if result.blobs_removed:
        click.echo(f"Freed {result.blobs_removed} blobs, {human_size(result.bytes_freed)}", err=True)
    if result.missing:
        what = ", ".join(repr(m) for m in result.missing)
        raise NotFoundError(
            f"no such image in the local store: {what}",
            hint="list local images with `idpbuilder images`",
        )


@click.command("prune")
@click.option("-a", "--all", "cache", is_flag=True, help="Also drop every build-cache record.")
@click.option(
    "--verify",
    is_flag=True,
    help="First hash every blob and check every image's blobs are there; damaged blobs are removed "
    "(a pull or build puts them back) and the images they belong to are listed.",
)
@click.pass_obj
def prune(obj: Any, cache: bool, verify: bool) -> None:
    """Remove untagged (<none>) images and unreferenced blobs (with --all also the build cache)."""
    from idpbuilder.cli.render import human_size
    from idpbuilder.errors import StoreError
    from idpbuilder.store.manage import prune_store
    from idpbuilder.store.verify import check_store

    store = Store.open(obj.home)
    check = check_store(store, repair=True) if verify else None
    if check is not None:
        for d, problem in sorted(check.damaged.items()):
            click.echo(f"Damaged blob removed: {d} ({problem})")
        for d in sorted(check.missing - set(check.damaged)):
            click.echo(f"Missing blob: {d}")
        click.echo(f"Verified blobs: {check.blobs} ({human_size(check.bytes)})")
    records, blobs, freed = prune_store(store, cache=cache)
    if cache:
        click.echo(f"Deleted build cache records: {records}")
    click.echo(f"Deleted blobs: {blobs}")
    click.echo(f"Total reclaimed space: {human_size(freed)}")
    if check is not None and not check.ok:
        names = ", ".join(check.affected) or "no image"
        bad = len(check.damaged) + len(check.missing - set(check.damaged))
        raise StoreError(
            f"the store had {bad} damaged or missing blob{'s' if bad != 1 else ''}; affected: {names}",
            hint="pull or build the affected images again (a pull fetches the removed blobs)",
        )
