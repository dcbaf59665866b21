"""Writing image tarballs: docker-archive (also an OCI layout, as Docker 25+ writes it) or OCI archive."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from idpbuilder._records import dataclass, field
from idpbuilder.digest import Digest
from idpbuilder.errors import DigestMismatchError, IdpError, NotFoundError, StoreError, UsageError
from idpbuilder.image.archive import (
    ANNOTATION_CONTAINERD_NAME,
    DOCKER_ARCHIVE,
    FORMATS,
    OCI_LAYOUT,
    BlobCallback,
    SavedImage,
    blob_name,
    normalized,
)
from idpbuilder.image.model import Image
from idpbuilder.oci import (
    ANNOTATION_REF_NAME,
    INDEX_TYPES,
    MANIFEST_TYPES,
    MT_OCI_INDEX,
    Descriptor,
    Platform,
)
from idpbuilder.reference import Reference
from idpbuilder.store.layout import Store

__all__ = ["save_archive", "write_archive"]


@dataclass
class _Entry:
    descriptor: Descriptor
    names: list[str] = field(default_factory=list)
    image: Image | None = None


def _collect(store: Store, images: Sequence[str], *, fmt: str, platform: Platform | None) -> list[_Entry]:
    entries: dict[Digest, _Entry] = {}
    for text in images:
        desc = store.resolve(text)
        name = store.match_name(text)
        if fmt == DOCKER_ARCHIVE:
            image = Image.load(store, desc, platform=platform)
            key = image.manifest_descriptor.digest
            if key not in entries:
                entries[key] = _Entry(image.manifest_descriptor, image=image)
        else:
            key = desc.digest
            if key not in entries:
                entries[key] = _Entry(
                    Descriptor(desc.media_type, desc.digest, desc.size, platform=desc.platform)
                )
        if name is not None and name not in entries[key].names:
            entries[key].names.append(name)
    return list(entries.values())


def _reachable(store: Store, desc: Descriptor, out: dict[Digest, int]) -> None:
    """Every blob ``desc`` needs, in write order; an index's children missing from the store are skipped."""
    if desc.digest in out:
        return
    out[desc.digest] = desc.size
    if desc.media_type not in MANIFEST_TYPES and desc.media_type not in INDEX_TYPES:
        return
    doc = store.read_json(desc.digest)
    if not isinstance(doc, dict):
        raise StoreError(f"stored manifest {desc.digest} is not a JSON object")
    for m in doc.get("manifests", []):
        child = Descriptor.from_json(m)
        if store.has_blob(child.digest):
            _reachable(store, child, out)
    if "config" in doc:
        cfg = Descriptor.from_json(doc["config"])
        out[cfg.digest] = cfg.size
    for layer in doc.get("layers", []):
        ld = Descriptor.from_json(layer)
        out[ld.digest] = ld.size


def _info(name: str, size: int = 0, *, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if directory:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.mode = 0o644
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


def _index_entries(entry: _Entry) -> list[dict[str, Any]]:
    base = entry.descriptor
    if not entry.names:
        return [Descriptor(base.media_type, base.digest, base.size, platform=base.platform).to_json()]
    out = []
    for name in entry.names:
        annotations = {ANNOTATION_REF_NAME: name}
        with contextlib.suppress(UsageError):
            annotations[ANNOTATION_CONTAINERD_NAME] = str(normalized(Reference.parse(name)))
        out.append(
            Descriptor(
                base.media_type, base.digest, base.size, annotations=annotations, platform=base.platform
            ).to_json()
        )
    return out


def _docker_manifest(entries: list[_Entry]) -> tuple[bytes, bytes]:
    """manifest.json and repositories of a docker-archive whose blobs live under blobs/."""
    manifest = []
    repositories: dict[str, dict[str, str]] = {}
    for e in entries:
        assert e.image is not None
        tags: list[str] = []
        for name in e.names:
            try:
                ref = Reference.parse(name)
            except UsageError:
                continue
            if ref.tag is None:
                continue
            # explicit registries stay full (podman reads short names as localhost/…); docker reads both
            tags.append(str(ref) if ref.registry else f"{ref.familiar_name}:{ref.tag}")
            if e.image.layers:
                repo = ref.familiar_name
                repositories.setdefault(repo, {})[ref.tag] = e.image.layers[-1].descriptor.digest.hex
        manifest.append(
            {
                "Config": blob_name(e.image.config_descriptor.digest),
                "RepoTags": tags or None,
                "Layers": [blob_name(layer.descriptor.digest) for layer in e.image.layers],
            }
        )
    return (
        json.dumps(manifest, separators=(",", ":")).encode(),
        json.dumps(repositories, separators=(",", ":")).encode(),
    )


def save_archive(
    store: Store,
    images: Sequence[str],
    out: BinaryIO,
    *,
    fmt: str = DOCKER_ARCHIVE,
    platform: Platform | None = None,
    on_blob: BlobCallback | None = None,
) -> list[SavedImage]:
    """Stream ``images`` (names, ids or digests) from the store as a tar to ``out``."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown archive format {fmt!r}", hint="use docker-archive or oci-archive")
    if not images:
        raise UsageError("no image to save", hint="name at least one image")
    entries = _collect(store, images, fmt=fmt, platform=platform)
    blobs: dict[Digest, int] = {}
    for e in entries:
        _reachable(store, e.descriptor, blobs)
    index = {
        "schemaVersion": 2,
        "mediaType": MT_OCI_INDEX,
        "manifests": [m for e in entries for m in _index_entries(e)],
    }
    # a 64 KiB stream buffer: tarfile's stream mode copies its whole buffer on every 16 KiB write
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=1 << 16) as tar:
        _add_bytes(tar, "oci-layout", OCI_LAYOUT)
        _add_bytes(tar, "index.json", json.dumps(index, separators=(",", ":")).encode())
        if fmt == DOCKER_ARCHIVE:
            manifest_json, repositories = _docker_manifest(entries)
            _add_bytes(tar, "manifest.json", manifest_json)
            _add_bytes(tar, "repositories", repositories)
        algos = sorted({d.algorithm for d in blobs})
        tar.addfile(_info("blobs/", directory=True))
        for algo in algos:
            tar.addfile(_info(f"blobs/{algo}/", directory=True))
        for d, size in blobs.items():
            with store.open_blob(d, size=size) as f:
                tar.addfile(_info(blob_name(d), size), f)
                if f.read(1):  # reading at EOF makes the verifying reader check digest and size
                    raise DigestMismatchError(f"stored blob {d} is larger than its descriptor says")
            if on_blob is not None:
                on_blob(d, size)
    return [SavedImage(list(e.names), e.descriptor) for e in entries]


def write_archive(
    store: Store,
    images: Sequence[str],
    dest: Path | str,
    *,
    fmt: str = DOCKER_ARCHIVE,
    platform: Platform | None = None,
    on_blob: BlobCallback | None = None,
) -> list[SavedImage]:
    """Save to a file atomically (temp file + fsync + rename); ``-`` writes to stdout."""
    if str(dest) == "-":
        return save_archive(store, images, sys.stdout.buffer, fmt=fmt, platform=platform, on_blob=on_blob)
    path = Path(dest)
    if path.is_dir():
        raise UsageError(f"{path} is a directory", hint="give a file name, e.g. -o image.tar")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.")
    except FileNotFoundError:
        raise NotFoundError(f"directory {path.parent} does not exist") from None
    except PermissionError as e:
        raise IdpError(f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            saved = save_archive(store, images, f, fmt=fmt, platform=platform, on_blob=on_blob)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return saved
