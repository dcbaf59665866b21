"""Store management as ``tag``, ``rmi`` and ``prune`` do it (docker's semantics)."""

from __future__ import annotations

from collections.abc import Sequence

from idpbuilder._records import dataclass, field
from idpbuilder.digest import Digest
from idpbuilder.errors import IdpError, UsageError
from idpbuilder.oci import Descriptor
from idpbuilder.reference import Reference
from idpbuilder.store.layout import Store

__all__ = ["RemoveResult", "prune_store", "remove_images", "tag_image"]


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
