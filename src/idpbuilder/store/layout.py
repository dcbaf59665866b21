"""The local image store: an OCI image layout that skopeo, umoci and oci-image-tool read directly.

Layout of the store home (``$IDPBUILDER_HOME``, default ``~/.idpbuilder``)::

    store/oci-layout, store/index.json, store/blobs/sha256/<hex>   the OCI layout (index.json is the truth)
    tmp/                 temp files, renamed into blobs/ once fsynced and verified
    cache/<hash>.json    build-cache records (they keep their blobs alive)
    work/…               private work dirs (extracted layers, cache mounts)
    index.lock           exclusive flock while index.json is rewritten
    gc.lock              every open Store holds it shared; gc deletes fresh blobs only when it gets it exclusive

Every write goes temp file → fsync → verify → ``os.replace``; a crash never leaves a half blob or index.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from idpbuilder.digest import Digest, VerifyingReader, sha256_bytes
from idpbuilder.errors import DigestMismatchError, NotFoundError, StoreError, UsageError
from idpbuilder.oci import (
    ANNOTATION_REF_NAME,
    INDEX_TYPES,
    MANIFEST_TYPES,
    MT_OCI_INDEX,
    Descriptor,
    canonical_json,
)
from idpbuilder.reference import Reference
from idpbuilder.store.files import READ_ONLY_ERRNOS, BlobWriter, atomic_write, fsync_dir, store_io_error
from idpbuilder.store.private_dirs import private_home, private_mkdir
from idpbuilder.store.verify import bad_index, damaged_blob, index_problem

__all__ = ["Store"]

_OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
# blobs newer than this survive gc while another process has the store open (it may be about to tag them)
GC_GRACE_SECONDS = 3600.0


class Store:
    """An OCI image layout plus the tool's caches; safe for concurrent processes."""

    def __init__(self, root: Path, *, home: Path | None = None) -> None:
        self.root = Path(root)
        self.home = Path(home) if home is not None else self.root.parent
        self.tmp_dir = self.home / "tmp"
        self._gc_fd: int | None = None
        # a store on a read-only filesystem (or not writable by this user) can still be read: images,
        # inspect, push, save; writes then fail with a StoreError saying why
        self.read_only = False
        try:
            private_home(self.home)
            private_mkdir(self.root / "blobs" / "sha256")
            private_mkdir(self.tmp_dir)
            if not (self.root / "oci-layout").exists():
                atomic_write(self.root / "oci-layout", _OCI_LAYOUT)
            if not (self.root / "index.json").exists():
                with self._index_lock():
                    if not (self.root / "index.json").exists():
                        self._write_index({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": []})
            self._gc_fd = os.open(self.home / "gc.lock", os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._gc_fd, fcntl.LOCK_SH)
        except (OSError, StoreError) as e:
            err = e.__cause__ if isinstance(e, StoreError) else e
            if (
                isinstance(err, OSError)
                and err.errno in READ_ONLY_ERRNOS
                and (self.root / "index.json").is_file()
                and (self.root / "blobs" / "sha256").is_dir()
            ):
                self.read_only = True
            elif isinstance(e, StoreError):
                raise
            elif isinstance(e, OSError) and e.errno in (errno.EEXIST, errno.ENOTDIR):
                raise StoreError(
                    f"cannot use the image store at {self.root}: {e.filename or self.root} is not a directory",
                    hint=f"move that file aside, or pass --store DIR (IDPBUILDER_HOME) naming a directory; "
                    f"the store lives in {self.root}",
                ) from e
            else:
                raise store_io_error(e, f"cannot use the image store at {self.root}") from e
        self._read_index()  # a damaged index.json fails every command here, before any work or download

    @classmethod
    def open(cls, home: Path) -> Store:
        """The store under an idpbuilder home directory (``home/store``)."""
        return cls(Path(home) / "store", home=Path(home))

    def close(self) -> None:
        """Release the store's shared gc lock."""
        if self._gc_fd is not None:
            os.close(self._gc_fd)
            self._gc_fd = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    # ---------------------------------------------------------------- paths
    def path_for(self, *parts: str) -> Path:
        """A private work directory under the store home (created)."""
        return private_mkdir(self.home.joinpath("work", *parts))

    def blob_path(self, d: Digest) -> Path:
        """Where blob ``d`` lives (it may not exist)."""
        return self.root / "blobs" / d.algorithm / d.hex

    # ---------------------------------------------------------------- blobs
    def has_blob(self, d: Digest) -> bool:
        """True when the blob is present."""
        return self.blob_path(d).is_file()

    def blob_size(self, d: Digest) -> int:
        """Size of a present blob; NotFoundError otherwise."""
        try:
            return self.blob_path(d).stat().st_size
        except FileNotFoundError:
            raise NotFoundError(f"blob {d} is not in the store at {self.root}") from None

    def blob_writer(self, *, expected: Digest | None = None, size: int | None = None) -> BlobWriter:
        """A context manager that streams a new blob into the store."""
        return BlobWriter(self, expected=expected, size=size)

    def put_bytes(self, data: bytes, *, expected: Digest | None = None) -> Digest:
        """Store ``data`` as a blob and return its digest."""
        d = sha256_bytes(data) if expected is None or expected.algorithm == "sha256" else None
        if d is not None and expected is not None and d != expected:
            raise DigestMismatchError(f"blob {expected}: content has digest {d}")
        if d is not None and self.has_blob(d) and self._holds(d, data):
            with contextlib.suppress(OSError):  # a read-only store: nothing can gc it anyway
                os.utime(self.blob_path(d))
            return d
        with self.blob_writer(expected=expected) as w:
            w.write(data)
        assert w.digest is not None
        return w.digest

    def _holds(self, d: Digest, data: bytes) -> bool:
        """Whether the stored copy of small blob ``d`` is intact (else it is written again)."""
        try:
            return self.blob_path(d).read_bytes() == data
        except OSError:
            return False

    def put_json(self, obj: Any, media_type: str) -> Descriptor:
        """Store ``obj`` as canonical JSON; return its descriptor."""
        data = canonical_json(obj)
        return Descriptor(media_type, self.put_bytes(data), len(data))

    def put_file(self, src: Path, *, expected: Digest | None = None) -> tuple[Digest, int]:
        """Copy a file into the store (verified); return digest and size."""
        with open(src, "rb") as f, self.blob_writer(expected=expected) as w:
            while chunk := f.read(1 << 20):
                w.write(chunk)
        assert w.digest is not None
        return w.digest, w.size

    def open_blob(self, d: Digest, *, size: int | None = None, verify: bool = True) -> BinaryIO:
        """Open a blob for reading; the digest (and size) are checked at EOF."""
        try:
            f = open(self.blob_path(d), "rb")  # noqa: SIM115 - handed to the caller
        except FileNotFoundError:
            raise NotFoundError(
                f"blob {d} is missing from the store at {self.root}",
                hint="pull or build the image again; `idpbuilder prune` cleans dangling references",
            ) from None
        if not verify:
            return f
        return VerifyingReader(f, d, size, what="stored blob")  # type: ignore[return-value]

    def read_blob(self, d: Digest) -> bytes:
        """Read a whole blob, verified (a damaged one: an error naming the images that use it)."""
        with self.open_blob(d, verify=False) as f:
            data = f.read()
        got = d.hasher()
        got.update(data)
        if got.hexdigest() != d.hex:
            raise damaged_blob(self, d, f"its content has digest {d.algorithm}:{got.hexdigest()}")
        return data

    def read_json(self, d: Digest) -> Any:
        """Read a blob as JSON."""
        try:
            return json.loads(self.read_blob(d))
        except json.JSONDecodeError as e:
            raise StoreError(f"stored blob {d} is not valid JSON: {e}") from e

    # ---------------------------------------------------------------- index.json
    @contextlib.contextmanager
    def _index_lock(self) -> Iterator[None]:
        try:
            fd = os.open(self.home / "index.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise store_io_error(e, f"updating the image store at {self.root}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Exclusive lock over index.json read-modify-write."""
        return self._index_lock()

    def _read_index(self) -> dict[str, Any]:
        """index.json, validated: a file we cannot fully understand is never rewritten (nor trusted)."""
        path = self.root / "index.json"
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": []}
        except OSError as e:
            raise store_io_error(e, f"reading the store index {path}") from e
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise bad_index(path, f"not valid JSON ({e})") from e
        problem = index_problem(data)
        if problem:
            raise bad_index(path, problem)
        data.setdefault("manifests", [])
        return data  # type: ignore[no-any-return]

    def _write_index(self, index: dict[str, Any]) -> None:
        data = json.dumps(index, indent=2, sort_keys=True).encode() + b"\n"
        atomic_write(self.root / "index.json", data, tmp_dir=self.tmp_dir)

    def entries(self) -> list[tuple[str | None, Descriptor]]:
        """Every index.json entry: (reference name, or None for an untagged image, descriptor)."""
        out: list[tuple[str | None, Descriptor]] = []
        for m in self._read_index()["manifests"]:
            name = (m.get("annotations") or {}).get(ANNOTATION_REF_NAME)
            out.append((name or None, Descriptor.from_json(m)))
        return out

    def refs(self) -> list[tuple[str, Descriptor]]:
        """Every tagged reference in the store with its manifest (or index) descriptor."""
        return [(n, d) for n, d in self.entries() if n is not None]

    def add_untagged(self, desc: Descriptor) -> None:
        """Keep an image without a name (docker's ``<none>``) unless an entry already holds its digest."""
        if not self.has_blob(desc.digest):
            raise StoreError(f"cannot record image {desc.digest}: its manifest is not in the store")
        fsync_dir(self.root / "blobs" / desc.digest.algorithm)
        with self._index_lock():
            index = self._read_index()
            if any(m.get("digest") == str(desc.digest) for m in index["manifests"]):
                return
            entry = Descriptor(desc.media_type, desc.digest, desc.size, platform=desc.platform).to_json()
            entry.pop("annotations", None)
            index["manifests"].append(entry)
            self._write_index(index)

    def remove_untagged(self, digest: Digest) -> bool:
        """Drop the untagged entry of ``digest``; True when there was one."""
        with self._index_lock():
            index = self._read_index()
            keep = [
                m
                for m in index["manifests"]
                if (m.get("annotations") or {}).get(ANNOTATION_REF_NAME) or m.get("digest") != str(digest)
            ]
            if len(keep) == len(index["manifests"]):
                return False
            index["manifests"] = keep
            self._write_index(index)
            return True

    def set_ref(self, ref: str, desc: Descriptor) -> None:
        """Point reference ``ref`` at ``desc`` (replacing what it pointed at)."""
        if not self.has_blob(desc.digest):
            raise StoreError(f"cannot tag {ref}: manifest {desc.digest} is not in the store")
        entry = Descriptor(
            desc.media_type,
            desc.digest,
            desc.size,
            annotations={**desc.annotations, ANNOTATION_REF_NAME: ref},
            platform=desc.platform,
        ).to_json()
        if entry in self._read_index()["manifests"]:
            return  # already so (a fully cached rebuild): no lock, no fsync, no rewrite
        fsync_dir(self.root / "blobs" / desc.digest.algorithm)
        with self._index_lock():
            index = self._read_index()
            # the new name replaces any entry of that name, and the untagged entry of the same image
            manifests = [
                m
                for m in index["manifests"]
                if (name := (m.get("annotations") or {}).get(ANNOTATION_REF_NAME)) != ref
                and (name or m.get("digest") != str(desc.digest))
            ]
            manifests.append(entry)
            index["manifests"] = manifests
            self._write_index(index)

    def remove_ref(self, ref: str) -> Descriptor:
        """Remove a reference; NotFoundError when absent."""
        name = self._match_name(ref)
        if name is None:
            raise NotFoundError(
                f"image {ref!r} is not in the local store", hint="list images with `idpbuilder images`"
            )
        with self._index_lock():
            index = self._read_index()
            keep, removed = [], None
            for m in index["manifests"]:
                if (m.get("annotations") or {}).get(ANNOTATION_REF_NAME) == name:
                    removed = Descriptor.from_json(m)
                else:
                    keep.append(m)
            if removed is None:
                raise NotFoundError(f"image {ref!r} is not in the local store")
            index["manifests"] = keep
            self._write_index(index)
        return removed

    def _candidates(self, ref: str) -> list[str]:
        out = [ref]
        try:
            r = Reference.parse(ref)
        except UsageError:
            return out
        out.append(r.store_key)
        if r.registry is None:
            out.append(r.for_pull().store_key)
        elif r.registry == "docker.io":
            # the short form docker writes for Docker Hub (a loaded docker-archive's "busybox:latest")
            repo = r.repository.removeprefix("library/") if r.repository.count("/") == 1 else r.repository
            out.append(Reference(None, repo, r.tag, r.digest).store_key)
        return out

    def match_name(self, ref: str) -> str | None:
        """The stored reference name ``ref`` denotes (as typed, with :latest, or docker.io/library/…)."""
        return self._match_name(ref)

    def _match_name(self, ref: str) -> str | None:
        names = {n for n, _ in self.refs()}
        for c in self._candidates(ref):
            if c in names:
                return c
        return None

    def image_id(self, desc: Descriptor) -> Digest:
        """Docker's image id: the config digest (for an index, the index digest)."""
        if desc.media_type in MANIFEST_TYPES:
            with contextlib.suppress(Exception):
                return Digest.parse(self.read_json(desc.digest)["config"]["digest"])
        return desc.digest

    def lookup(self, ref: str) -> Descriptor | None:
        """Find a reference, full digest or unique id prefix; None when absent."""
        entries = self.entries()
        by_name = {n: d for n, d in entries if n is not None}
        for c in self._candidates(ref):
            if c in by_name:
                return by_name[c]
        text = ref.strip().lower()
        hexpart = text.split(":", 1)[1] if text.startswith("sha256:") else text
        if len(hexpart) < 4 or any(ch not in "0123456789abcdef" for ch in hexpart):
            return None
        matches: dict[Digest, Descriptor] = {}
        for _, desc in entries:
            if desc.digest.hex.startswith(hexpart) or self.image_id(desc).hex.startswith(hexpart):
                matches[desc.digest] = desc
        if len(matches) == 1:
            return next(iter(matches.values()))
        if len(matches) > 1:
            raise UsageError(f"image id prefix {ref!r} is ambiguous", hint="give more digits of the id")
        return None

    def resolve(self, ref: str) -> Descriptor:
        """Like lookup, but NotFoundError (exit 2) with a hint when absent."""
        desc = self.lookup(ref)
        if desc is None:
            raise NotFoundError(
                f"image {ref!r} is not in the local store",
                hint="list local images with `idpbuilder images`, or build/pull it first",
            )
        return desc

    # ---------------------------------------------------------------- build cache
    def _cache_path(self, key: str) -> Path:
        return self.home / "cache" / f"{hashlib.sha256(key.encode()).hexdigest()}.json"

    def cache_get(self, key: str) -> dict[str, Any] | None:
        """The cache record stored under ``key`` if all its blobs are still present."""
        try:
            data = json.loads(self._cache_path(key).read_bytes())
        except (FileNotFoundError, ValueError):  # a record cut short by a crash is a miss
            return None
        if not isinstance(data, dict) or data.get("key") != key:
            return None
        for b in data.get("blobs", []):
            if not self.has_blob(Digest.parse(b)):
                return None
        rec = data.get("record")
        return rec if isinstance(rec, dict) else None

    def cache_put(self, key: str, record: dict[str, Any], blobs: list[Digest]) -> None:
        """Store a build-cache record; ``blobs`` stay alive through gc while the record exists."""
        path = self._cache_path(key)
        private_mkdir(path.parent)
        payload = {"key": key, "record": record, "blobs": [str(b) for b in blobs], "created": time.time()}
        atomic_write(path, json.dumps(payload, sort_keys=True).encode(), tmp_dir=self.tmp_dir, durable=False)

    def cache_clear(self) -> int:
        """Drop every build-cache record; returns how many."""
        n = 0
        d = self.home / "cache"
        if d.is_dir():
            for p in d.glob("*.json"):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    n += 1
        return n

    # ---------------------------------------------------------------- gc
    def _reachable(self, d: Digest, media_type: str, seen: set[Digest]) -> None:
        if d in seen:
            return
        seen.add(d)
        if media_type not in MANIFEST_TYPES and media_type not in INDEX_TYPES:
            return
        try:
            doc = self.read_json(d)
        except (NotFoundError, StoreError):
            return
        if "manifests" in doc:
            for m in doc["manifests"]:
                self._reachable(Digest.parse(m["digest"]), m.get("mediaType", ""), seen)
        if "config" in doc:
            seen.add(Digest.parse(doc["config"]["digest"]))
        for layer in doc.get("layers", []):
            seen.add(Digest.parse(layer["digest"]))

    def live_blobs(self) -> set[Digest]:
        """Blobs referenced by an index.json entry (tagged or not) or a cache record."""
        seen: set[Digest] = set()
        for _, desc in self.entries():
            self._reachable(desc.digest, desc.media_type, seen)
        cdir = self.home / "cache"
        if cdir.is_dir():
            for p in cdir.glob("*.json"):
                with contextlib.suppress(Exception):
                    data = json.loads(p.read_bytes())
                    for b in data.get("blobs", []):
                        seen.add(Digest.parse(b))
        return seen

    def _live_diff_ids(self, live: set[Digest]) -> set[str]:
        """Hex diff_ids of the layers of every live image config and cache record."""
        out: set[str] = set()
        for d in live:
            p = self.blob_path(d)
            with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
                if p.stat().st_size > 1 << 20:
                    continue
                with open(p, "rb") as f:
                    if f.read(1) != b"{":
                        continue
                doc = json.loads(p.read_bytes())
                for diff in (doc.get("rootfs") or {}).get("diff_ids", []):
                    out.add(str(diff).split(":", 1)[-1])
        cdir = self.home / "cache"
        if cdir.is_dir():
            for c in cdir.glob("*.json"):
                with contextlib.suppress(Exception):
                    diff = json.loads(c.read_bytes()).get("record", {}).get("diff_id")
                    if diff:
                        out.add(str(diff).split(":", 1)[-1])
        return out

    def _prune_layer_work(self, live: set[Digest]) -> int:
        """Remove extracted-layer caches (work/layers, work/build/members) of layers no live image uses.

        Only called while gc holds the store exclusively, so no build can be using them as overlay lower dirs.
        """
        import shutil

        keep = self._live_diff_ids(live)
        freed = 0
        layers = self.home / "work" / "layers"
        if layers.is_dir():
            for d in layers.iterdir():
                if d.name not in keep:
                    freed += sum(f.stat().st_size for f in d.rglob("*") if f.is_file() and not f.is_symlink())
                    shutil.rmtree(d, ignore_errors=True)
        members = self.home / "work" / "build" / "members"
        if members.is_dir():
            for m in members.glob("*.json"):
                if m.stem not in keep:
                    with contextlib.suppress(OSError):
                        m.unlink()
        return freed

    def discard_blobs(self, digests: set[Digest]) -> int:
        """Delete those of ``digests`` nothing references, when no other process has the store open (a failed
        pull cleans up after itself; otherwise gc's grace period takes them later). Returns how many."""
        if not digests or self._gc_fd is None:
            return 0
        fcntl.flock(self._gc_fd, fcntl.LOCK_UN)
        try:
            try:
                fcntl.flock(self._gc_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return 0
            n = 0
            with self._index_lock():
                for d in digests - self.live_blobs():
                    with contextlib.suppress(OSError):
                        self.blob_path(d).unlink()
                        n += 1
            return n
        finally:
            fcntl.flock(self._gc_fd, fcntl.LOCK_SH)

    def gc(self) -> tuple[int, int]:
        """Delete blobs no tag or cache record references; returns (count, bytes)."""
        exclusive = False
        if self._gc_fd is not None:
            fcntl.flock(self._gc_fd, fcntl.LOCK_UN)
            try:
                fcntl.flock(self._gc_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                exclusive = True
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
        try:
            with self._index_lock():
                live = self.live_blobs()
                cutoff = float("inf") if exclusive else time.time() - GC_GRACE_SECONDS
                count = freed = 0
                for algo_dir in (self.root / "blobs").iterdir():
                    if not algo_dir.is_dir():
                        continue
                    for p in algo_dir.iterdir():
                        try:
                            d = Digest(algo_dir.name, p.name)
                            st = p.stat()
                        except OSError:
                            continue
                        if d in live or st.st_mtime > cutoff:
                            continue
                        with contextlib.suppress(FileNotFoundError):
                            p.unlink()
                            count += 1
                            freed += st.st_size
                if exclusive:
                    for t in self.tmp_dir.iterdir():
                        with contextlib.suppress(OSError):
                            t.unlink()
                    freed += self._prune_layer_work(live)
                return count, freed
        finally:
            if self._gc_fd is not None:
                fcntl.flock(self._gc_fd, fcntl.LOCK_SH)
