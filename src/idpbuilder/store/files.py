"""Crash-safe writes for the store: temp file → fsync → verify → ``os.replace``, and the errors they raise."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol

from idpbuilder.digest import Digest
from idpbuilder.errors import DigestMismatchError, StoreError
from idpbuilder.owner import stamped
from idpbuilder.store.private_dirs import private_mkdir

__all__ = ["READ_ONLY_ERRNOS", "BlobHome", "BlobWriter", "atomic_write", "fsync_dir", "store_io_error"]


class BlobHome(Protocol):
    """Where a :class:`BlobWriter` puts its temp file and, once verified, the blob (the ``Store``)."""

    @property
    def root(self) -> Path: ...
    @property
    def tmp_dir(self) -> Path: ...
    def blob_path(self, d: Digest) -> Path: ...


READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def store_io_error(e: OSError, doing: str) -> StoreError:
    """A one-line StoreError for a failed store write (disk full, read-only, no permission) with a hint."""
    where = f" ({e.filename})" if e.filename else ""
    if e.errno in _FULL_ERRNOS:
        return StoreError(
            f"{doing}: no space left on the device{where}",
            hint="free some disk space (`idpbuilder prune -a` drops unused blobs and the build cache), or "
            "point --store (IDPBUILDER_HOME) at a bigger filesystem",
        )
    if e.errno in READ_ONLY_ERRNOS:
        reason = "read-only file system" if e.errno == errno.EROFS else "permission denied"
        return StoreError(
            f"{doing}: {reason}{where}",
            hint="pass --store DIR (or set IDPBUILDER_HOME) to a directory you can write",
        )
    return StoreError(f"{doing}: {e.strerror or e}{where}")


def fsync_dir(path: Path) -> None:
    """fsync a directory, so a rename into it survives a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, tmp_dir: Path | None = None, durable: bool = True) -> None:
    """Write ``data`` to ``path`` via a fsynced temp file and ``os.replace``.

    ``durable=False`` skips the fsyncs, for files whose loss in a crash only costs a cache miss (the
    build cache records: a Dockerfile of 100,000 LABEL lines writes one per step)."""
    import tempfile  # only writers need it (with shutil, bz2, lzma: ~5 ms of start-up)

    d = tmp_dir or path.parent
    try:
        fd, tmp = tempfile.mkstemp(dir=d, prefix=stamped(".tmp-"))
    except OSError as e:
        raise store_io_error(e, f"writing {path}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise store_io_error(e, f"writing {path}") from e
        raise
    if durable:
        fsync_dir(path.parent)


class BlobWriter:
    """Stream bytes into a temp file; on clean exit verify and move them into the store's blobs."""

    def __init__(self, store: BlobHome, *, expected: Digest | None = None, size: int | None = None) -> None:
        self._store = store
        self._expected = expected
        self._expected_size = size
        self._hash = expected.hasher() if expected else hashlib.sha256()
        import tempfile

        try:
            fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix=stamped("blob-"))
        except OSError as e:
            raise store_io_error(e, f"writing a blob to the store at {store.root}") from e
        self._tmp = Path(name)
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self.size = 0
        self.digest: Digest | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append ``data`` to the blob."""
        try:
            self._file.write(data)
        except OSError as e:
            self.abort()
            raise store_io_error(e, f"writing a blob to the store at {self._store.root}") from e
        self._hash.update(data)
        self.size += len(data)
        return len(data)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.abort()
            return
        self.commit()

    def abort(self) -> None:
        """Discard the temp file."""
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            self._tmp.unlink()

    def commit(self) -> Digest:
        """fsync, verify digest and size, rename into blobs/; returns the digest."""
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            got = Digest.from_hasher(self._hash)
            if self._expected_size is not None and self.size != self._expected_size:
                raise DigestMismatchError(
                    f"blob {self._expected or got}: got {self.size} bytes, expected {self._expected_size}"
                )
            if self._expected is not None and got != self._expected:
                raise DigestMismatchError(f"blob {self._expected}: content has digest {got}")
            dest = self._store.blob_path(got)
            # verified bytes replace any existing copy (fresh mtime for gc's grace period, and a damaged
            # copy is repaired by writing the blob again); readers holding the old file keep their inode
            private_mkdir(dest.parent)
            os.replace(self._tmp, dest)
            self.digest = got
            return got
        except BaseException as e:
            self.abort()
            if isinstance(e, OSError):
                raise store_io_error(e, f"writing a blob to the store at {self._store.root}") from e
            raise
