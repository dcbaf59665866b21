"""Reading image tarballs (docker-archive, OCI archive, compressed or not) into the store, every blob verified."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from idpbuilder.digest import Digest
from idpbuilder.errors import DigestMismatchError, IdpError, NotFoundError, UsageError
from idpbuilder.image.archive import (
    ANNOTATION_CONTAINERD_NAME,
    BLOCK,
    BZIP2_MAGIC,
    DOCKER_ARCHIVE,
    GZIP_MAGIC,
    HEX_JSON_RE,
    MAX_JSON,
    OCI_ARCHIVE,
    XZ_MAGIC,
    ZSTD_MAGIC,
    BlobCallback,
    LoadedImage,
    blob_name,
    corrupt,
)
from idpbuilder.oci import (
    ANNOTATION_REF_NAME,
    INDEX_TYPES,
    MANIFEST_TYPES,
    MT_OCI_CONFIG,
    MT_OCI_LAYER_GZIP,
    MT_OCI_LAYER_ZSTD,
    MT_OCI_MANIFEST,
    Descriptor,
    Platform,
    canonical_json,
)
from idpbuilder.owner import stamped
from idpbuilder.reference import Reference
from idpbuilder.store.layout import Store

try:
    from isal import isal_zlib as _gzlib
except ImportError:  # pragma: no cover - isal has wheels for every platform we run on
    _gzlib = zlib  # type: ignore[no-redef,misc]

__all__ = ["archive_format", "load_archive"]


class _Decompressor(Protocol):
    def decompress(self, data: bytes, /) -> bytes: ...


class _GzipStream:
    """Incremental gzip decoder that also accepts concatenated members."""

    def __init__(self) -> None:
        self._d = _gzlib.decompressobj(31)

    def decompress(self, data: bytes) -> bytes:
        out = []
        while data:
            out.append(self._d.decompress(data))
            if not self._d.eof:
                break
            data = self._d.unused_data
            self._d = _gzlib.decompressobj(31)
        return b"".join(out)


def _zstd_stream() -> _Decompressor:
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj(read_across_frames=True)  # type: ignore[no-any-return]


class _Archive:
    """Random access to the members of a (possibly whole-file compressed) tarball."""

    def __init__(self, path: Path, tmp_dir: Path) -> None:
        self.path = path
        self._tmp: Path | None = None
        with open(path, "rb") as f:
            magic = f.read(6)
        if (
            magic[:2] == GZIP_MAGIC
            or magic[:4] == ZSTD_MAGIC
            or magic[:3] == BZIP2_MAGIC
            or magic == XZ_MAGIC
        ):
            self._tmp = self._decompress(path, magic, tmp_dir)
        try:
            self.tar = tarfile.open(self._tmp or path, mode="r:")
            members = self.tar.getmembers()
        except (tarfile.TarError, EOFError, OSError) as e:
            self.close()
            raise corrupt(path, f"cannot read the tar ({e})") from None
        self.members: dict[str, tarfile.TarInfo] = {}
        for m in members:
            name = os.path.normpath(m.name.lstrip("/"))
            self.members[name] = m

    @staticmethod
    def _decompress(path: Path, magic: bytes, tmp_dir: Path) -> Path:
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix=stamped("archive-"))
        try:
            with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
                reader: BinaryIO
                if magic[:2] == GZIP_MAGIC:
                    from isal import igzip

                    reader = igzip.IGzipFile(fileobj=src, mode="rb")  # type: ignore[no-untyped-call,assignment]
                elif magic[:4] == ZSTD_MAGIC:
                    import zstandard

                    reader = zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True)  # type: ignore[assignment]
                elif magic[:3] == BZIP2_MAGIC:
                    import bz2

                    reader = bz2.BZ2File(src)  # type: ignore[assignment]
                else:
                    import lzma

                    reader = lzma.LZMAFile(src)  # type: ignore[assignment]
                shutil.copyfileobj(reader, dst, BLOCK)
        except (OSError, EOFError, ValueError) as e:
            with contextlib.suppress(OSError):
                os.unlink(name)
            if isinstance(e, OSError) and e.errno is not None:
                raise
            raise corrupt(path, f"cannot decompress it ({e})") from None
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(name)
            raise
        return Path(name)

    def has(self, name: str) -> bool:
        return os.path.normpath(name.lstrip("/")) in self.members

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        """Open a regular member (following links inside the archive)."""
        member = self.members.get(os.path.normpath(name.lstrip("/")))
        if member is None:
            raise corrupt(self.path, f"it has no {name}")
        try:
            f = self.tar.extractfile(member)
        except (tarfile.TarError, KeyError) as e:
            raise corrupt(self.path, f"cannot read {name} ({e})") from None
        if f is None:
            raise corrupt(self.path, f"{name} is not a regular file")
        try:
            yield f  # type: ignore[misc]
        except (tarfile.TarError, EOFError) as e:
            raise corrupt(self.path, f"cannot read {name} ({e})") from None
        finally:
            f.close()

    def read(self, name: str) -> bytes:
        with self.open(name) as f:
            data = f.read(MAX_JSON + 1)
        if len(data) > MAX_JSON:
            raise corrupt(self.path, f"{name} is implausibly large")
        return data

    def read_json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise corrupt(self.path, f"{name} is not valid JSON ({e})") from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if hasattr(self, "tar"):
                self.tar.close()
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.unlink()
            self._tmp = None


def archive_format(path: Path | str) -> str:
    """``oci-archive`` or ``docker-archive`` (a docker-archive that is also an OCI layout is OCI)."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"archive {path} does not exist")
    tmp = Path(tempfile.gettempdir())
    a = _Archive(path, tmp)
    try:
        return _detect(a)
    finally:
        a.close()


def _detect(a: _Archive) -> str:
    if a.has("index.json"):
        return OCI_ARCHIVE
    if a.has("manifest.json"):
        return DOCKER_ARCHIVE
    raise corrupt(a.path, "it has neither manifest.json (docker-archive) nor index.json (OCI archive)")


def _copy_blob(store: Store, a: _Archive, desc: Descriptor, on_blob: BlobCallback | None) -> None:
    if store.has_blob(desc.digest):
        return
    name = blob_name(desc.digest)
    try:
        with a.open(name) as src, store.blob_writer(expected=desc.digest, size=desc.size) as w:
            while chunk := src.read(BLOCK):
                w.write(chunk)
    except DigestMismatchError as e:
        raise DigestMismatchError(
            f"{a.path}: {name} is corrupt: {e.message}", hint="the archive is damaged; create it again"
        ) from None
    if on_blob is not None:
        on_blob(desc.digest, desc.size)


def _load_oci_tree(
    store: Store, a: _Archive, desc: Descriptor, on_blob: BlobCallback | None, *, optional: bool
) -> bool:
    """Copy ``desc`` and what it references; False when an optional index child is absent."""
    if optional and not a.has(blob_name(desc.digest)) and not store.has_blob(desc.digest):
        return False
    is_doc = desc.media_type in MANIFEST_TYPES or desc.media_type in INDEX_TYPES
    if is_doc:
        # read and verify the document before trusting what it references
        _copy_blob(store, a, desc, on_blob)
        doc = store.read_json(desc.digest)
        if not isinstance(doc, dict):
            raise corrupt(a.path, f"manifest {desc.digest} is not a JSON object")
        try:
            children = [Descriptor.from_json(m) for m in doc.get("manifests", [])]
            config = Descriptor.from_json(doc["config"]) if "config" in doc else None
            layers = [Descriptor.from_json(layer) for layer in doc.get("layers", [])]
        except (AttributeError, KeyError, TypeError, ValueError, UsageError) as e:
            raise corrupt(a.path, f"manifest {desc.digest} has a bad descriptor ({e})") from None
        present = [c for c in children if _load_oci_tree(store, a, c, on_blob, optional=True)]
        if children and not present:
            raise corrupt(a.path, f"index {desc.digest} has none of its manifests")
        for blob in ([config] if config else []) + layers:
            _copy_blob(store, a, blob, on_blob)
        return True
    _copy_blob(store, a, desc, on_blob)
    return True


def _parse_name(text: object) -> str | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        ref = Reference.parse(text)
    except UsageError:
        return None
    return ref.store_key


def _config_digest(store: Store, desc: Descriptor) -> Digest | None:
    if desc.media_type not in MANIFEST_TYPES:
        return None
    with contextlib.suppress(Exception):
        return Digest.parse(store.read_json(desc.digest)["config"]["digest"])
    return None


def _repo_tags_by_config(a: _Archive) -> dict[str, list[str]]:
    if not a.has("manifest.json"):
        return {}
    out: dict[str, list[str]] = {}
    with contextlib.suppress(IdpError, AttributeError, TypeError):
        for item in a.read_json("manifest.json"):
            m = HEX_JSON_RE.match(str(item.get("Config", "")))
            if m and isinstance(item.get("RepoTags"), list):
                out.setdefault(m.group(1), []).extend(str(t) for t in item["RepoTags"])
    return out


def _load_oci(store: Store, a: _Archive, on_blob: BlobCallback | None) -> list[LoadedImage]:
    index = a.read_json("index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise corrupt(a.path, "index.json has no manifests list")
    repo_tags = _repo_tags_by_config(a)
    results: dict[Digest, LoadedImage] = {}
    pending: list[tuple[str, Descriptor]] = []
    for m in index["manifests"]:
        try:
            desc = Descriptor.from_json(m)
        except (AttributeError, KeyError, TypeError, ValueError, UsageError) as e:
            raise corrupt(a.path, f"index.json has a bad descriptor ({e})") from None
        _load_oci_tree(store, a, desc, on_blob, optional=False)
        # docker 25+ names images in io.containerd.image.name; our own archives and skopeo in ref.name
        name = _parse_name(desc.annotations.get(ANNOTATION_CONTAINERD_NAME)) or _parse_name(
            desc.annotations.get(ANNOTATION_REF_NAME)
        )
        names = [name] if name else []
        if not names:
            cfg = _config_digest(store, desc)
            if cfg is not None:
                names = [n for n in map(_parse_name, repo_tags.get(cfg.hex, [])) if n]
        plain = Descriptor(desc.media_type, desc.digest, desc.size, platform=desc.platform)
        prev = results.get(desc.digest)
        merged = (prev.names if prev else []) + [n for n in names if not prev or n not in prev.names]
        results[desc.digest] = LoadedImage(merged, plain, store.image_id(plain))
        pending.extend((n, plain) for n in names)
    for name, desc in pending:
        store.set_ref(name, desc)
    for item in results.values():
        if not item.names:
            store.add_untagged(item.descriptor)
    return list(results.values())


def _import_layer(
    store: Store, src: BinaryIO, diff_id: Digest, blob_digest: Digest | None, what: str
) -> Descriptor:
    """Store one docker-archive layer (kept if compressed, gzip-compressed if plain), checking its diff_id."""
    first = src.read(BLOCK)
    decomp: _Decompressor | None = None
    compressor: Any = None
    if first[:2] == GZIP_MAGIC:
        media_type, decomp = MT_OCI_LAYER_GZIP, _GzipStream()
    elif first[:4] == ZSTD_MAGIC:
        media_type, decomp = MT_OCI_LAYER_ZSTD, _zstd_stream()
    else:
        media_type, compressor = MT_OCI_LAYER_GZIP, _gzlib.compressobj(1, zlib.DEFLATED, 31)
    diff = diff_id.hasher()
    raw = hashlib.sha256()
    with store.blob_writer() as w:
        chunk = first
        while chunk:
            raw.update(chunk)
            if decomp is not None:
                try:
                    diff.update(decomp.decompress(chunk))
                except Exception as e:  # zlib.error, isal error, zstd.ZstdError: all mean a damaged stream
                    raise DigestMismatchError(
                        f"{what}: the compressed layer is damaged ({e})",
                        hint="the archive is damaged; create it again",
                    ) from None
                w.write(chunk)
            else:
                diff.update(chunk)
                w.write(compressor.compress(chunk))
            chunk = src.read(BLOCK)
        if compressor is not None:
            w.write(compressor.flush())
        got = Digest(diff_id.algorithm, diff.hexdigest())
        if got != diff_id:
            raise DigestMismatchError(
                f"{what}: layer content has diff_id {got}, the image config says {diff_id}",
                hint="the archive is damaged; create it again",
            )
        if blob_digest is not None and Digest("sha256", raw.hexdigest()) != blob_digest:
            raise DigestMismatchError(
                f"{what}: content does not match its digest {blob_digest}",
                hint="the archive is damaged; create it again",
            )
    assert w.digest is not None
    return Descriptor(media_type, w.digest, w.size)


def _load_docker(store: Store, a: _Archive, on_blob: BlobCallback | None) -> list[LoadedImage]:
    manifest = a.read_json("manifest.json")
    if not isinstance(manifest, list):
        raise corrupt(a.path, "manifest.json is not a list")
    results: list[LoadedImage] = []
    for item in manifest:
        if not isinstance(item, dict) or not isinstance(item.get("Config"), str):
            raise corrupt(a.path, "a manifest.json entry has no Config")
        layer_paths = item.get("Layers") or []
        if not isinstance(layer_paths, list) or not all(isinstance(p, str) for p in layer_paths):
            raise corrupt(a.path, "a manifest.json entry has a bad Layers list")
        config_name = item["Config"]
        config_bytes = a.read(config_name)
        cdesc = Descriptor.for_bytes(MT_OCI_CONFIG, config_bytes)
        m = HEX_JSON_RE.match(config_name)
        if m and cdesc.digest.hex != m.group(1):
            raise DigestMismatchError(
                f"{a.path}: {config_name} is corrupt: content has digest {cdesc.digest}",
                hint="the archive is damaged; create it again",
            )
        try:
            config = json.loads(config_bytes)
            diff_ids = [Digest.parse(str(d)) for d in config["rootfs"]["diff_ids"]]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, UsageError) as e:
            raise corrupt(a.path, f"{config_name} is not an image config ({e})") from None
        if len(diff_ids) != len(layer_paths):
            raise corrupt(
                a.path, f"{config_name} lists {len(diff_ids)} layers but manifest.json {len(layer_paths)}"
            )
        layers = []
        for path, diff_id in zip(layer_paths, diff_ids, strict=True):
            bm = re.match(r"^(?:\./)?blobs/sha256/([a-f0-9]{64})$", path)
            with a.open(path) as src:
                ld = _import_layer(
                    store, src, diff_id, Digest("sha256", bm.group(1)) if bm else None, f"{a.path}: {path}"
                )
            layers.append(ld)
            if on_blob is not None:
                on_blob(ld.digest, ld.size)
        store.put_bytes(config_bytes)
        doc = {
            "schemaVersion": 2,
            "mediaType": MT_OCI_MANIFEST,
            "config": cdesc.to_json(),
            "layers": [ld.to_json() for ld in layers],
        }
        data = canonical_json(doc)
        mdesc = Descriptor(
            MT_OCI_MANIFEST,
            store.put_bytes(data),
            len(data),
            platform=Platform.from_json(config) if isinstance(config, dict) else None,
        )
        tags = item.get("RepoTags")
        names = [n for n in map(_parse_name, tags) if n] if isinstance(tags, list) else []
        for n in names:
            store.set_ref(n, mdesc)
        if not names:
            store.add_untagged(mdesc)
        results.append(LoadedImage(names, mdesc, cdesc.digest))
    return results


def load_archive(
    store: Store, source: Path | str | BinaryIO, *, on_blob: BlobCallback | None = None
) -> list[LoadedImage]:
    """Load every image of a docker-archive or OCI archive (file path, ``-`` for stdin, or a stream)."""
    spooled: Path | None = None
    try:
        if isinstance(source, (str, Path)) and str(source) != "-":
            path = Path(source)
            if not path.exists():
                raise NotFoundError(f"archive {path} does not exist", hint="check the path given to -i")
            if not path.is_file():
                raise UsageError(f"{path} is not a file", hint="give a tarball made by save / docker save")
        else:
            stream: BinaryIO = sys.stdin.buffer if not hasattr(source, "read") else source  # type: ignore[assignment]
            fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix=stamped("load-"))
            spooled = path = Path(name)
            with os.fdopen(fd, "wb") as f:
                shutil.copyfileobj(stream, f, BLOCK)
        archive = _Archive(path, store.tmp_dir)
        try:
            if _detect(archive) == OCI_ARCHIVE:
                return _load_oci(store, archive, on_blob)
            return _load_docker(store, archive, on_blob)
        finally:
            archive.close()
    finally:
        if spooled is not None:
            with contextlib.suppress(OSError):
                spooled.unlink()
