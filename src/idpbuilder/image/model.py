"""Images in the store: load a manifest (choosing a platform from an index), and commit new ones."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from idpbuilder._records import dataclass
from idpbuilder.digest import Digest
from idpbuilder.errors import NotFoundError, StoreError
from idpbuilder.image.layer import Layer
from idpbuilder.oci import INDEX_TYPES, MT_OCI_CONFIG, MT_OCI_MANIFEST, Descriptor, Platform

if TYPE_CHECKING:
    from idpbuilder.store.layout import Store

__all__ = ["Image", "commit_image", "select_platform"]


def select_platform(index: dict[str, Any], platform: Platform | None) -> Descriptor:
    """The manifest descriptor in ``index`` for ``platform`` (default: this host)."""
    want = platform or Platform.host()
    candidates = [Descriptor.from_json(m) for m in index.get("manifests", [])]
    for d in candidates:
        if d.platform is not None and want.matches(d.platform):
            return d
    if platform is None:
        plain = [d for d in candidates if d.platform is None]
        if len(plain) == 1:
            return plain[0]
    avail = ", ".join(str(d.platform) for d in candidates if d.platform) or "none"
    raise NotFoundError(
        f"no image for platform {want} (available: {avail})", hint="choose one with --platform"
    )


@dataclass(frozen=True)
class Image:
    """An image manifest loaded from the store."""

    manifest_descriptor: Descriptor
    manifest: dict[str, Any]
    config_descriptor: Descriptor
    config: dict[str, Any]
    layers: list[Layer]

    @classmethod
    def load(cls, store: Store, desc: Descriptor, *, platform: Platform | None = None) -> Image:
        """Load an image; an index is resolved to the manifest for ``platform`` (default host)."""
        doc = store.read_json(desc.digest)
        mt = doc.get("mediaType") or desc.media_type
        if mt in INDEX_TYPES or ("manifests" in doc and "layers" not in doc):
            child = select_platform(doc, platform)
            return cls.load(store, child, platform=platform)
        if "config" not in doc:
            raise StoreError(f"manifest {desc.digest} has no config")
        cdesc = Descriptor.from_json(doc["config"])
        config = store.read_json(cdesc.digest)
        diff_ids = [Digest.parse(d) for d in (config.get("rootfs") or {}).get("diff_ids", [])]
        ldescs = [Descriptor.from_json(layer) for layer in doc.get("layers", [])]
        if len(diff_ids) != len(ldescs):
            raise StoreError(
                f"image {desc.digest}: {len(ldescs)} layers but {len(diff_ids)} diff_ids in its config"
            )
        layers = [Layer(ld, di) for ld, di in zip(ldescs, diff_ids, strict=True)]
        return cls(desc, doc, cdesc, config, layers)

    @property
    def id(self) -> Digest:
        """Docker's image id: the config digest."""
        return self.config_descriptor.digest

    @property
    def platform(self) -> Platform:
        return Platform(
            str(self.config.get("os", "linux")),
            str(self.config.get("architecture", "amd64")),
            self.config.get("variant"),
        )


def commit_image(
    store: Store, config: dict[str, Any], layers: list[Layer], *, annotations: dict[str, str] | None = None
) -> Descriptor:
    """Write ``config`` and an OCI manifest for ``layers``; return the manifest descriptor."""
    diff_ids = [str(layer.diff_id) for layer in layers]
    rootfs = config.get("rootfs") or {}
    if rootfs.get("diff_ids", diff_ids) != diff_ids:
        raise StoreError("image config rootfs.diff_ids does not match the layers")
    config = {**config, "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    cdesc = store.put_json(config, MT_OCI_CONFIG)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "config": cdesc.to_json(),
        "layers": [layer.descriptor.to_json() for layer in layers],
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    mdesc = store.put_json(manifest, MT_OCI_MANIFEST)
    plat = Platform(
        str(config.get("os", "linux")), str(config.get("architecture", "amd64")), config.get("variant")
    )
    return Descriptor(mdesc.media_type, mdesc.digest, mdesc.size, platform=plat)
