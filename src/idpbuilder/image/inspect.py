"""``idpbuilder inspect``: an image's manifest, config and layers as one JSON-able object."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from idpbuilder.errors import DigestMismatchError, StoreError
from idpbuilder.image.model import Image
from idpbuilder.oci import INDEX_TYPES, Descriptor
from idpbuilder.store.layout import Store

__all__ = ["inspect_image"]


def inspect_image(store: Store, text: str) -> dict[str, Any]:
    """Manifest, config and layers of an image as one JSON-able object (docker inspect's spirit)."""
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
