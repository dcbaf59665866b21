"""Store management commands: `tag`, `rmi`, `inspect`, `prune` (docker's semantics)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import click

from idpbuilder.digest import Digest
from idpbuilder.errors import DigestMismatchError, IdpError, NotFoundError, StoreError, UsageError
from idpbuilder.oci import INDEX_TYPES, Descriptor
from idpbuilder.reference import Reference
from idpbuilder.store.layout import Store

__all__ = [
    "RemoveResult",
    "inspect",
    "inspect_image",
    "prune",
    "prune_store",
    "remove_images",
    "rmi",
    "tag",
    "tag_image",
]


def tag_image(store: Store, source: str, target: str) -> tuple[str, Descriptor]:
    """Point reference ``target`` at the image ``source`` denotes; returns (stored name, descriptor)."""
    desc = store.resolve(source)
    ref = Reference.parse(target)
    if ref.digest is not None:
        raise UsageError(f"cannot tag with a digest: {target!r}", hint="give a tag instead, e.g. myapp:v1")
    name = ref.store_key
    store.set_ref(name, Descriptor(desc.media_type, desc.digest, desc.size, platform=desc.platform))
    return name, desc


@dataclass
class RemoveResult:
    """What `rmi` did: references removed, images (manifest digests) no longer tagged, blobs freed."""

    untagged: list[str] = field(default_factory=list)
    deleted: list[Digest] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    blobs_removed: int = 0
    bytes_freed: int = 0


def remove_images(store: Store, images: Sequence[str], *, force: bool = False) -> RemoveResult:
    """Untag each image (all its tags for an id when ``force``), then gc blobs nothing references."""
    result = RemoveResult()
    for text in images:
        name = store.match_name(text)
        if name is not None:
            digest = store.remove_ref(name).digest
            result.untagged.append(name)
        else:
            desc = store.lookup(text)
            if desc is None:
                result.missing.append(text)
                continue
            digest = desc.digest
            names = sorted(n for n, d in store.refs() if d.digest == digest)
            if len(names) > 1 and not force:
                raise IdpError(
                    f"unable to delete {text} (must be forced): image is referenced by {len(names)} tags: "
                    + ", ".join(names),
                    hint=f"remove one tag at a time, or all of them with `idpbuilder rmi -f {text}`",
                )
            for n in names:
                store.remove_ref(n)
                result.untagged.append(n)
            store.remove_untagged(digest)
        if all(d.digest != digest for _, d in store.refs()) and digest not in result.deleted:
            result.deleted.append(digest)
    if result.untagged or result.deleted:
        result.blobs_removed, result.bytes_freed = store.gc()
    return result


def inspect_image(store: Store, text: str) -> dict[str, Any]:
    """Manifest, config and layers of an image as one JSON-able object (docker inspect's spirit)."""
    from idpbuilder.image import Image

    desc = store.resolve(text)
    image = Image.load(store, desc)  # manifest and config are read whole and verified
    _check_layer_files(store, text, image.layers)
    tags = sorted(n for n, d in store.refs() if d.digest == desc.digest)
    config = image.config
    out: dict[str, Any] = {
        "Id": str(image.id),
        "Digest": str(desc.digest),
        "RepoTags": tags,
        "MediaType": desc.media_type,
        "Created": config.get("created"),
        "Author": config.get("author"),
        "Os": config.get("os"),
        "Architecture": config.get("architecture"),
        "Variant": config.get("variant"),
        "Size": image.config_descriptor.size + sum(layer.descriptor.size for layer in image.layers),
        "Config": config.get("config") or {},
        "Layers": [
            {
                "Digest": str(layer.descriptor.digest),
                "DiffID": str(layer.diff_id),
                "MediaType": layer.descriptor.media_type,
                "Size": layer.descriptor.size,
            }
            for layer in image.layers
        ],
        "ManifestDescriptor": image.manifest_descriptor.to_json(),
        "Manifest": image.manifest,
        "ImageConfig": config,
    }
    if desc.media_type in INDEX_TYPES or image.manifest_descriptor.digest != desc.digest:
        out["Index"] = store.read_json(desc.digest)
    return out


def _check_layer_files(store: Store, text: str, layers: Sequence[Any]) -> None:
    """Each layer blob is present with the size its descriptor says (a cheap check: no layer is hashed)."""
    for layer in layers:
        d: Descriptor = layer.descriptor
        path = store.blob_path(d.digest)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise StoreError(
                f"image {text}: layer {d.digest} is missing from the store",
                hint="build or pull the image again",
            ) from None
        if size != d.size:
            raise DigestMismatchError(
                f"image {text}: layer {d.digest} in the store is damaged ({size} bytes, the manifest says {d.size})",
                hint=f"delete {path} and build or pull the image again",
            )


def prune_store(store: Store, *, cache: bool = False) -> tuple[int, int, int]:
    """Drop untagged (<none>) images, build-cache records when ``cache``, then unreferenced blobs.

    Returns (records, blobs, bytes).
    """
    for name, desc in store.entries():
        if name is None:
            store.remove_untagged(desc.digest)
    records = store.cache_clear() if cache else 0
    blobs, freed = store.gc()
    return records, blobs, freed


@click.command("tag")
@click.argument("source", metavar="SRC")
@click.argument("target", metavar="DEST")
@click.pass_obj
def tag(obj: Any, source: str, target: str) -> None:
    """Create a tag DEST that refers to image SRC."""
    tag_image(Store.open(obj.home), source, target)


@click.command("rmi")
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
@click.option("-f", "--force", is_flag=True, help="Remove every tag of an image given by id.")
@click.pass_obj
def rmi(obj: Any, images: tuple[str, ...], force: bool) -> None:
    """Remove images from the local store (untag, then delete what nothing references)."""
    from idpbuilder.cli.images_cmd import human_size

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
    store = Store.open(obj.home)
    click.echo(json.dumps([inspect_image(store, i) for i in images], indent=2))


@click.command("prune")
@click.option("-a", "--all", "cache", is_flag=True, help="Also drop every build-cache record.")
@click.pass_obj
def prune(obj: Any, cache: bool) -> None:
    """Remove untagged (<none>) images and unreferenced blobs (with --all also the build cache)."""
    from idpbuilder.cli.images_cmd import human_size

    store = Store.open(obj.home)
    records, blobs, freed = prune_store(store, cache=cache)
    if cache:
        click.echo(f"Deleted build cache records: {records}")
    click.echo(f"Deleted blobs: {blobs}")
    click.echo(f"Total reclaimed space: {human_size(freed)}")
