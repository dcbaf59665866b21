"""Image tarballs: docker-archive and OCI archive, written from the store (save) and read into it (load).

``save`` writes a docker-archive the way Docker 25+ does: one tar that is at the same time an OCI image
layout (``oci-layout``, ``index.json``, ``blobs/sha256/…``) and a classic docker-archive (``manifest.json``
and ``repositories`` whose paths point into ``blobs/``). Layers are written as they are stored
(compressed); ``docker load``, ``podman load`` and ``skopeo`` decompress them. An OCI archive is the
layout alone, keeping indexes (multi-platform images) whole.

``load`` reads either kind (and docker-archives with ``<id>/layer.tar`` paths, plain or compressed, or a
tarball compressed as a whole). An OCI index is preferred when present, so a save/load round trip keeps
every digest. Every blob is verified: archive blobs against their digest and size, docker-archive layers
against the config's ``rootfs.diff_ids``. Nothing is tagged until all of an image's blobs are stored.

This module holds what both directions share; ``archive_save`` writes (``save_archive``, ``write_archive``),
``archive_load`` reads (``archive_format``, ``load_archive``).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from idpbuilder._records import dataclass
from idpbuilder.digest import Digest
from idpbuilder.errors import StoreError
from idpbuilder.oci import Descriptor
from idpbuilder.reference import DOCKER_HUB, Reference

__all__ = [
    "ANNOTATION_CONTAINERD_NAME",
    "BLOCK",
    "DOCKER_ARCHIVE",
    "FORMATS",
    "OCI_ARCHIVE",
    "BlobCallback",
    "LoadedImage",
    "SavedImage",
    "blob_name",
    "corrupt",
    "normalized",
]

DOCKER_ARCHIVE = "docker-archive"
OCI_ARCHIVE = "oci-archive"
FORMATS = (DOCKER_ARCHIVE, OCI_ARCHIVE)
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
BLOCK = 1 << 20
MAX_JSON = 64 << 20  # manifests, configs and index files are small; refuse to read huge ones into memory
OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
HEX_JSON_RE = re.compile(r"^(?:.*/)?([a-f0-9]{64})(?:\.json)?$")
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"

BlobCallback = Callable[[Digest, int], None]


@dataclass(frozen=True)
class SavedImage:
    """One image written to an archive: the names it carries and the manifest (or index) written."""

    names: list[str]
    descriptor: Descriptor


@dataclass(frozen=True)
class LoadedImage:
    """One image read from an archive: the store references set and the manifest (or index) stored."""

    names: list[str]
    descriptor: Descriptor
    image_id: Digest


def corrupt(path: object, what: str) -> StoreError:
    """The error for an archive that is not what it claims to be."""
    return StoreError(
        f"{path}: not a valid image archive: {what}",
        hint="check the file, or create it again with `idpbuilder save` / `docker save`",
    )


def normalized(ref: Reference) -> Reference:
    """``ref`` with Docker Hub as its registry when it names none (the form docker and containerd keep)."""
    return ref if ref.registry else ref.with_registry(DOCKER_HUB)


def blob_name(d: Digest) -> str:
    """A blob's path inside an archive (the OCI layout's ``blobs/<alg>/<hex>``)."""
    return f"blobs/{d.algorithm}/{d.hex}"
