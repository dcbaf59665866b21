"""Layers: deterministic tar streams written straight into the store, and readers for stored layers.

One pass over the tar bytes computes the diff_id (sha256 of the tar), compresses (isal igzip, else zlib;
or zstd), and streams the compressed bytes into a store blob that hashes them on the way.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from idpbuilder._records import dataclass
from idpbuilder.digest import Digest
from idpbuilder.errors import StoreError, UsageError
from idpbuilder.oci import (
    MT_DOCKER_LAYER_GZIP,
    MT_OCI_LAYER,
    MT_OCI_LAYER_GZIP,
    MT_OCI_LAYER_ZSTD,
    Descriptor,
)

if TYPE_CHECKING:
    import queue
    import tarfile

    from idpbuilder.store.files import BlobWriter
    from idpbuilder.store.layout import Store

# tarfile and the compressors are imported when a layer is written or read: every command that knows
# images imports ``Layer`` from here, and a build whose steps are all cached never writes a layer

__all__ = ["Layer", "LayerWriter", "open_layer", "media_type_for"]

_REGTYPE, _LNKTYPE = b"0", b"1"  # tarfile.REGTYPE, tarfile.LNKTYPE
_GZIP_TYPES = {MT_OCI_LAYER_GZIP, MT_DOCKER_LAYER_GZIP, "application/vnd.docker.image.rootfs.diff.tar"}
BLOCK = 1 << 20


@dataclass(frozen=True)
class Layer:
    """A stored layer: its compressed blob and the digest of its uncompressed tar."""

    descriptor: Descriptor
    diff_id: Digest


COMPRESSION_ENV = "IDPBUILDER_LAYER_COMPRESSION"


def default_compression() -> str:
    """How built layers are stored: gzip (isal level 1), unless $IDPBUILDER_LAYER_COMPRESSION says zstd or none."""
    return os.environ.get(COMPRESSION_ENV) or "gzip"


def media_type_for(compression: str) -> str:
    """The OCI layer media type for a compression name."""
    try:
        return {"gzip": MT_OCI_LAYER_GZIP, "zstd": MT_OCI_LAYER_ZSTD, "none": MT_OCI_LAYER}[compression]
    except KeyError:
        raise UsageError(
            f"unknown layer compression {compression!r}", hint="use gzip, zstd or none"
        ) from None


class _Compressor(Protocol):
    def compress(self, data: bytes, /) -> bytes: ...
    def flush(self) -> bytes: ...


def _gzip_compressor(level: int) -> _Compressor:
    """A gzip stream compressor: isal's igzip (~4.6x faster than zlib, same format), else zlib."""
    import zlib

    try:
        from isal import isal_zlib
    except ImportError:  # pragma: no cover - isal has wheels for every platform we run on
        return zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 31: gzip wrapper, mtime 0
    return isal_zlib.compressobj(level, zlib.DEFLATED, 31)  # type: ignore[no-any-return]


class _NullCompressor:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


class _ZstdCompressor:
    def __init__(self, level: int) -> None:
        import zstandard

        self._c = zstandard.ZstdCompressor(level=level).compressobj()

    def compress(self, data: bytes) -> bytes:
        return self._c.compress(data)

    def flush(self) -> bytes:
        return self._c.flush()


class _Sink(io.RawIOBase):
    """File-like target for tarfile: hash (diff_id) → compress → blob writer, in blocks of exactly 1 MiB.

    From the second block on, compression and the blob write run in a worker thread (zlib,
    isal and hashlib release the GIL), so a large layer is read, tarred and hashed on one core while it is
    compressed on the other; a small layer never starts the thread.
    """

    def __init__(self, writer: BlobWriter, compressor: _Compressor) -> None:
        self._writer = writer
        self._comp = compressor
        self._diff = hashlib.sha256()
        self._buf = bytearray()
        self._pos = 0  # bytes accepted (tarfile asks where it is)
        self.raw_size = 0
        self.failed = False
        self._queue: queue.Queue[bytes | None] | None = None
        self._worker: threading.Thread | None = None
        self._error: BaseException | None = None
        self._blocks = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def write(self, data: Any) -> int:
        n = len(data)
        if self.failed:
            # the blob writer gave up (disk full …) and was aborted: tarfile's own clean-up must not fail a
            # second time with "write to closed file"
            return n
        self._pos += n
        try:
            if not self._buf and n == BLOCK and type(data) is bytes:
                self._emit(data)
            else:
                buf = self._buf
                buf += data
                while len(buf) >= BLOCK:  # exactly 1 MiB blocks: the compressed bytes depend on them
                    self._emit(bytes(memoryview(buf)[:BLOCK]))
                    del buf[:BLOCK]
        except BaseException:
            self.abort()
            raise
        return n

    def _emit(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._blocks += 1
        if self._queue is None and self._blocks >= 2:
            import queue

            self._queue = queue.Queue(maxsize=4)  # at most ~4 blocks in flight
            self._worker = threading.Thread(target=self._work, name="layer-compress", daemon=True)
            self._worker.start()
        self._diff.update(chunk)  # here: it runs beside the worker's compression (both release the GIL)
        self.raw_size += len(chunk)
        if self._queue is not None:
            self._queue.put(chunk)
        else:
            self._process(chunk)

    def _process(self, chunk: bytes) -> None:
        out = self._comp.compress(chunk)
        if out:
            self._writer.write(out)

    def _work(self) -> None:
        assert self._queue is not None
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            if self._error is None:
                try:
                    self._process(chunk)
                except BaseException as e:  # handed to the writing thread
                    self._error = e

    def abort(self) -> None:
        """The layer is given up: drop what is pending and end the worker before the blob is aborted."""
        self.failed = True
        self._buf.clear()
        self._stop()

    def _stop(self) -> None:
        """End the worker thread (after what it was given)."""
        if self._worker is not None and self._queue is not None:
            self._queue.put(None)
            self._worker.join()
            self._worker = None

    def finish(self) -> Digest:
        if self._buf:
            chunk = bytes(self._buf)
            self._buf.clear()
            self._emit(chunk)
        self._stop()
        if self._error is not None:
            raise self._error
        tail = self._comp.flush()
        if tail:
            self._writer.write(tail)
        return Digest("sha256", self._diff.hexdigest())


class LayerWriter:
    """Write one deterministic PAX tar layer into the store; ``result`` holds the Layer after exit."""

    def __init__(self, store: Store, *, compression: str | None = None, level: int = 1) -> None:
        self.store = store
        compression = compression or default_compression()
        self.media_type = media_type_for(compression)
        import tarfile

        comp: _Compressor
        if compression == "gzip":
            comp = _gzip_compressor(level)
        elif compression == "zstd":
            comp = _ZstdCompressor(3 if level <= 1 else level)
        else:
            comp = _NullCompressor()
        self._blob = store.blob_writer()
        self._sink = _Sink(self._blob, comp)
        # "w", not the stream mode "w|": tarfile's _Stream appends every 16 KiB to an immutable buffer and
        # slices it again (quadratic in its 1 MiB buffer); plain "w" hands headers and file data straight on
        self.tar = tarfile.TarFile(fileobj=self._sink, mode="w", format=tarfile.PAX_FORMAT, copybufsize=BLOCK)
        self._result: Layer | None = None
        self._hardlinks: dict[tuple[int, int], str] = {}

    @property
    def result(self) -> Layer:
        if self._result is None:
            raise StoreError("layer is not finished yet")
        return self._result

    def __enter__(self) -> LayerWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self._sink.abort()
            self._blob.abort()
            return
        self.finish()

    def finish(self) -> Layer:
        """Close the tar, flush compression and commit the blob."""
        if self._result is not None:
            return self._result
        try:
            self.tar.close()
            diff_id = self._sink.finish()
            digest = self._blob.commit()
        except BaseException:
            self._sink.abort()
            self._blob.abort()
            raise
        self._result = Layer(Descriptor(self.media_type, digest, self._blob.size), diff_id)
        return self._result

    def add_entry(self, info: tarfile.TarInfo, fileobj: BinaryIO | None = None) -> None:
        """Add one member (``fileobj`` supplies ``info.size`` bytes for regular files).

        A symlink is always stored with mode 0777, as Linux reports it and Docker writes it, whatever mode
        its source (e.g. a tar archive being extracted by ADD) gave it.
        """
        if info.issym():
            info.mode = 0o777
        info.uname = info.uname or ""
        info.gname = info.gname or ""
        self.tar.addfile(info, fileobj)

    def add_path(
        self,
        path: Path,
        arcname: str,
        *,
        uid: int | None = None,
        gid: int | None = None,
        mtime: float | None = None,
        mode: int | None = None,
    ) -> None:
        """Add one filesystem object (not recursive) under ``arcname``; symlinks are stored as links."""
        st = os.lstat(path)
        info = tarinfo_from_stat(st, arcname, uid=uid, gid=gid, mtime=mtime, mode=mode)
        if info is None:
            return
        if stat.S_ISLNK(st.st_mode):
            info.linkname = os.readlink(path)
        elif stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = self._hardlinks.get(key)
            if first is not None:
                info.type = _LNKTYPE
                info.linkname = first
                info.size = 0
            else:
                self._hardlinks[key] = info.name
        if info.type == _REGTYPE:
            with open(path, "rb") as f:
                self.tar.addfile(info, f)
        else:
            self.tar.addfile(info)

    def add_tree(
        self,
        root: Path,
        prefix: str = "",
        *,
        uid: int | None = None,
        gid: int | None = None,
        mtime: float | None = None,
        filter: Callable[[str], bool] | None = None,
        include_root: bool = False,
    ) -> None:
        """Add everything under ``root`` in sorted order, named ``prefix`` + relative path.

        ``filter(relpath)`` returning False skips an entry (and, for a directory, everything below it).
        With ``include_root`` the root directory itself is added as ``prefix``.
        """
        root = Path(root)
        prefix = prefix.strip("/")
        if include_root and prefix:
            self.add_path(root, prefix, uid=uid, gid=gid, mtime=mtime)

        def walk(d: Path, rel: str) -> None:
            try:
                names = sorted(os.listdir(d))
            except NotADirectoryError:
                return
            for name in names:
                r = f"{rel}/{name}" if rel else name
                if filter is not None and not filter(r):
                    continue
                p = d / name
                arc = f"{prefix}/{r}" if prefix else r
                self.add_path(p, arc, uid=uid, gid=gid, mtime=mtime)
                if p.is_dir() and not p.is_symlink():
                    walk(p, r)

        walk(root, "")


def tarinfo_from_stat(
    st: os.stat_result,
    arcname: str,
    *,
    uid: int | None = None,
    gid: int | None = None,
    mtime: float | None = None,
    mode: int | None = None,
) -> tarfile.TarInfo | None:
    """A TarInfo with numeric owners and no user/group names; None for sockets."""
    import tarfile

    info = tarfile.TarInfo(arcname.lstrip("/"))
    m = st.st_mode
    if stat.S_ISREG(m):
        info.type = tarfile.REGTYPE
        info.size = st.st_size
    elif stat.S_ISDIR(m):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(m):
        info.type = tarfile.SYMTYPE
    elif stat.S_ISCHR(m):
        info.type = tarfile.CHRTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISBLK(m):
        info.type = tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(m):
        info.type = tarfile.FIFOTYPE
    else:
        return None
    info.mode = stat.S_IMODE(m) if mode is None else mode
    info.uid = st.st_uid if uid is None else uid
    info.gid = st.st_gid if gid is None else gid
    info.uname = info.gname = ""
    info.mtime = int(st.st_mtime if mtime is None else mtime)
    return info


class _ZstdReader(io.RawIOBase):
    def __init__(self, raw: BinaryIO) -> None:
        import zstandard

        self._raw = raw
        self._r = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._r.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


def decompressing_reader(raw: BinaryIO, media_type: str) -> BinaryIO:
    """Wrap a compressed layer stream so reads return the uncompressed tar (detects gzip/zstd by magic)."""
    buffered = io.BufferedReader(raw, BLOCK) if not hasattr(raw, "peek") else raw  # type: ignore[arg-type,type-var]
    magic = buffered.peek(4)[:4]  # type: ignore[attr-defined]
    if magic[:2] == b"\x1f\x8b":
        try:
            from isal import igzip

            return igzip.IGzipFile(fileobj=buffered, mode="rb")  # type: ignore[no-untyped-call,return-value]
        except ImportError:  # pragma: no cover
            import gzip

            return gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[return-value]
    if magic == b"\x28\xb5\x2f\xfd":
        return io.BufferedReader(_ZstdReader(buffered), BLOCK)  # type: ignore[return-value]
    return buffered  # type: ignore[no-any-return]


# blobs verified by this process, by (path, inode, size, mtime): a build reads a layer more than once
_VERIFIED: set[tuple[str, int, int, int]] = set()


def open_layer(store: Store, desc: Descriptor) -> BinaryIO:
    """The uncompressed tar stream of a stored layer (gzip/zstd/none by content).

    The compressed blob is hashed before the first byte is handed out: damaged bytes would otherwise surface
    as a decompressor or tar error (or, in a part tar never reads, not at all). A damaged layer raises
    ``DigestMismatchError`` naming the blob and the images that use it.
    """
    from idpbuilder.store.verify import damaged_blob

    f = store.open_blob(desc.digest, size=desc.size, verify=False)
    try:
        st = os.fstat(f.fileno())
        key = (str(store.blob_path(desc.digest)), st.st_ino, st.st_size, st.st_mtime_ns)
        if key not in _VERIFIED:
            h = desc.digest.hasher()
            n = 0
            while chunk := f.read(BLOCK):
                h.update(chunk)
                n += len(chunk)
            if n != desc.size:
                raise damaged_blob(store, desc.digest, f"{n} bytes, expected {desc.size}", what="layer")
            if h.hexdigest() != desc.digest.hex:
                got = f"{desc.digest.algorithm}:{h.hexdigest()}"
                raise damaged_blob(store, desc.digest, f"its content has digest {got}", what="layer")
            _VERIFIED.add(key)
            f.seek(0)
    except BaseException:
        f.close()
        raise
    return decompressing_reader(f, desc.media_type)
