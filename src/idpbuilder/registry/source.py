"""Where a push reads an image from: the local store, an OCI layout directory or a docker-archive tar."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Protocol

from idpbuilder.digest import Digest, sha256_bytes
from idpbuilder.errors import DigestMismatchError, NotFoundError, StoreError, UsageError
from idpbuilder.oci import ANNOTATION_REF_NAME, Descriptor
from idpbuilder.owner import stamped
from idpbuilder.reference import Reference
from idpbuilder.store.private_dirs import private_mkdir

__all__ = ["ImageSource", "LayoutSource", "StoreSource", "open_source"]


class ImageSource(Protocol):
    """A content-addressed image to push: a root manifest/index and its blobs as files."""

    description: str
    root: Descriptor
    name: str | None  # the reference it carries (store ref / layout ref.name), if any

    def read_blob(self, d: Digest) -> bytes:
        """A (small) blob, verified."""
        ...

    def blob_path(self, d: Digest) -> Path:
        """The file holding blob ``d``; NotFoundError when absent."""
        ...

    def close(self) -> None:
        """Release resources (temp dirs)."""
        ...


class StoreSource:
    """An image in the local store (its blobs were verified when they were written)."""

    def __init__(self, store: Any, ref: str, *, desc: Descriptor | None = None) -> None:
        self.store = store
        if desc is None:
            desc = _tagged(store.root / "index.json", ref) or store.resolve(ref)
        self.root: Descriptor = desc
        self.description = f"{ref} (local store)"
        self.name: str | None = ref
        self.cleanup: Path | None = None

    def read_blob(self, d: Digest) -> bytes:
        """Read a blob from the store (verified)."""
        data: bytes = self.store.read_blob(d)
        return data

    def blob_path(self, d: Digest) -> Path:
        """The store file of blob ``d``."""
        p: Path = self.store.blob_path(d)
        if not p.is_file():
            raise NotFoundError(
                f"blob {d} of {self.description} is missing from the store",
                hint="build or pull the image again",
            )
        return p

    def close(self) -> None:
        """Remove the temporary store of an archive source."""
        if self.cleanup is not None:
            import shutil

            with contextlib.suppress(Exception):
                self.store.close()
            shutil.rmtree(self.cleanup, ignore_errors=True)
            self.cleanup = None


class LayoutSource:
    """An image in an OCI image layout directory (``oci:DIR[:tag]``)."""

    def __init__(self, root_dir: Path, tag: str | None, *, description: str | None = None) -> None:
        self.dir = root_dir
        self.description = description or f"oci:{root_dir}" + (f":{tag}" if tag else "")
        index_path = root_dir / "index.json"
        try:
            index = json.loads(index_path.read_bytes())
        except FileNotFoundError:
            raise NotFoundError(f"{root_dir} is not an OCI image layout (no index.json)") from None
        except json.JSONDecodeError as e:
            raise StoreError(f"{index_path} is not valid JSON: {e}") from None
        entries = [m for m in (index.get("manifests") or []) if isinstance(m, dict)]
        chosen = _pick(entries, tag)
        if chosen is None:
            names = sorted(
                {(m.get("annotations") or {}).get(ANNOTATION_REF_NAME, "") for m in entries} - {""}
            )
            if tag is None and len(entries) > 1:
                raise UsageError(
                    f"{root_dir} holds {len(entries)} images; say which one",
                    hint="use oci:DIR:TAG with one of: " + (", ".join(names) or "(no tags)"),
                )
            raise NotFoundError(
                f"no image {tag!r} in the OCI layout {root_dir}",
                hint="tags in it: " + (", ".join(names) or "(none)"),
            )
        self.root = Descriptor.from_json(chosen)
        self.name = (chosen.get("annotations") or {}).get(ANNOTATION_REF_NAME)

    def blob_path(self, d: Digest) -> Path:
        """The layout file of blob ``d``."""
        p = self.dir / "blobs" / d.algorithm / d.hex
        if not p.is_file():
            raise NotFoundError(f"blob {d} is missing from {self.description}")
        return p

    def read_blob(self, d: Digest) -> bytes:
        """Read and verify a blob."""
        data = self.blob_path(d).read_bytes()
        if d.algorithm == "sha256" and sha256_bytes(data) != d:
            raise DigestMismatchError(f"blob {d} in {self.description} is corrupt")
        return data

    def close(self) -> None:
        """Nothing to release."""


def _tagged(index_path: Path, ref: str) -> Descriptor | None:
    """The store entry tagged exactly ``ref`` (as typed, or with ``:latest``), parsing only that entry.

    A push names one image: this skips building a descriptor for every image in a big store. index.json is
    replaced atomically, so reading it without the store's lock is safe. None (let ``Store.resolve`` decide:
    Docker Hub short forms, id prefixes, errors) when there is no exact match.
    """
    names = [ref]
    with contextlib.suppress(UsageError):
        names.append(Reference.parse(ref).store_key)
    try:
        index = json.loads(index_path.read_bytes())
    except (OSError, ValueError):
        return None
    manifests = index.get("manifests") if isinstance(index, dict) else None
    found: dict[str, dict[str, Any]] = {}
    for m in manifests if isinstance(manifests, list) else []:
        name = (m.get("annotations") or {}).get(ANNOTATION_REF_NAME) if isinstance(m, dict) else None
        if name in names:
            found[name] = m  # the last entry wins, as in Store.lookup
    entry = next((found[n] for n in names if n in found), None)
    if entry is None:
        return None
    try:
        return Descriptor.from_json(entry)
    except (UsageError, KeyError, TypeError, ValueError):
        return None


def _pick(entries: list[dict[str, Any]], tag: str | None) -> dict[str, Any] | None:
    if tag is None:
        return entries[0] if len(entries) == 1 else None
    for m in entries:
        name = (m.get("annotations") or {}).get(ANNOTATION_REF_NAME)
        if name == tag:
            return m
    for m in entries:
        name = (m.get("annotations") or {}).get(ANNOTATION_REF_NAME) or ""
        try:
            r = Reference.parse(name)
        except UsageError:
            continue
        if r.tag == tag or name.endswith(f":{tag}"):
            return m
    if tag.startswith("sha256:"):
        for m in entries:
            if m.get("digest") == tag:
                return m
    return None


def _split_layout_spec(spec: str) -> tuple[Path, str | None]:
    """``oci:DIR[:ref]`` → (DIR, ref); like skopeo, DIR ends at the first ':' that leaves a layout directory."""
    body = spec[4:]
    if (Path(body) / "index.json").is_file():
        return Path(body), None
    for i, ch in enumerate(body):
        if ch == ":" and (Path(body[:i]) / "index.json").is_file():
            return Path(body[:i]), body[i + 1 :] or None
    head, sep, tail = body.partition(":")
    return Path(head), (tail or None) if sep else None


def open_source(image: str, store_factory: Any, *, tmp_dir: Path | None = None) -> ImageSource:
    """The push source named by IMAGE: ``oci:DIR[:tag]``, a layout dir, a docker-archive tar, else a store ref."""
    if image.startswith("oci:"):
        d, tag = _split_layout_spec(image)
        if not (d / "index.json").is_file():
            raise NotFoundError(f"{d} is not an OCI image layout (no index.json)")
        return LayoutSource(d, tag)
    p = Path(image)
    if ("/" in image or image.startswith(".")) and p.is_dir() and (p / "index.json").is_file():
        return LayoutSource(p, None)
    if p.is_file() and (image.endswith((".tar", ".tar.gz", ".tgz")) or "/" in image or image.startswith(".")):
        return _archive_source(p, tmp_dir)
    return StoreSource(store_factory(), image)


def _archive_source(path: Path, tmp_dir: Path | None) -> ImageSource:
    """Load a docker-archive (or OCI archive) tarball into a temporary store and push from there."""
    import shutil
    import tempfile

    from idpbuilder.image.archive_load import load_archive
    from idpbuilder.store.layout import Store

    if tmp_dir is not None:
        private_mkdir(tmp_dir)
    tmp = Path(tempfile.mkdtemp(prefix=stamped("push-archive-"), dir=tmp_dir))
    try:
        store = Store(tmp / "store", home=tmp)
        loaded = load_archive(store, path)
        if not loaded:
            raise NotFoundError(f"the archive {path} holds no image")
        first = loaded[0]
        src = StoreSource(
            store, first.names[0] if first.names else str(first.descriptor.digest), desc=first.descriptor
        )
        src.description = str(path)
        src.name = first.names[0] if first.names else None
        src.cleanup = tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return src
