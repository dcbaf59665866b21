"""Store management commands: `tag`, `rmi`, `inspect`, `prune` (docker's semantics)."""

from __future__ import annotations

import json
from typing import Any

import click

from idpbuilder.errors import NotFoundError
from idpbuilder.store.layout import Store

__all__ = ["inspect", "prune", "rmi", "tag"]


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


@click.command("inspect")
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json"]),
    default="json",
    show_default=True,
    help="Output format (JSON: manifest, config and layers).",
)
@click.pass_obj
def inspect(obj: Any, images: tuple[str, ...], fmt: str) -> None:
    """Show an image's manifest, config and layers as JSON."""
    from idpbuilder.image.inspect import inspect_image

    store = Store.open(obj.home)
    click.echo(json.dumps([inspect_image(store, i) for i in images], indent=2))


@click.command("prune")
@click.option("-a", "--all", "cache", is_flag=True, help="Also drop every build-cache record.")
@click.pass_obj
def prune(obj: Any, cache: bool) -> None:
    """Remove untagged (<none>) images and unreferenced blobs (with --all also the build cache)."""
    from idpbuilder.cli.render import human_size
    from idpbuilder.store.manage import prune_store

    store = Store.open(obj.home)
    records, blobs, freed = prune_store(store, cache=cache)
    if cache:
        click.echo(f"Deleted build cache records: {records}")
    click.echo(f"Deleted blobs: {blobs}")
    click.echo(f"Total reclaimed space: {human_size(freed)}")
