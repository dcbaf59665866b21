"""Safe layer extraction: whiteouts, opaque dirs, and nothing ever written outside the target.

Two modes:

* flattened (default): layers are applied one after another into one directory; ``.wh.<name>`` removes
  ``<name>`` from the layers below and ``.wh..wh..opq`` empties its directory of lower content.
* overlay lower (``as_overlay_lower``): one layer into its own directory, whiteouts turned into what
  overlayfs understands (a 0/0 character device, ``trusted.overlay.opaque=y``, ``user.`` in a user namespace), so extracted layers can be
  stacked as ``lowerdir``\\ s.

Entries are resolved with chroot semantics through directory file descriptors (see ``sandbox.fs``):
``../`` names are refused, absolute names are taken relative to the target, symlinked parents are
followed inside the target only, and hardlinks can only point at entries inside the target.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from idpbuilder.digest import VerifyingReader
from idpbuilder.errors import BuildError, IdpError
from idpbuilder.image import Image, Layer, open_layer
from idpbuilder.owner import stamped
from idpbuilder.sandbox.fs import copy_xattrs_ok, lexical_parts, open_dir_in_root, remove_at
from idpbuilder.sandbox.isolation import id_mapped, in_user_namespace, overlay_xattr_prefix
from idpbuilder.sandbox.tarread import (
    READ_ERRORS,
    ExpansionBudget,
    expansion_budget,
    iter_members,
    open_tar_stream,
)

if TYPE_CHECKING:
    from idpbuilder.store import Store

__all__ = [
    "OPAQUE",
    "WHITEOUT_OPAQUE",
    "WHITEOUT_PREFIX",
    "extract_image_rootfs",
    "extract_layers",
    "layer_dir",
    "safe_extract",
]

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE = "opaque"  # after overlay_xattr_prefix(): trusted.overlay. as root, user.overlay. in a user namespace
_XATTR_PAX = "SCHILY.xattr."
_BLOCK = 1 << 20
_NAME_MAX = 255
_PATH_MAX = 4096
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _Extractor:
    def __init__(self, root_fd: int, *, overlay: bool) -> None:
        self.root_fd = root_fd
        self.overlay = overlay
        self.privileged = os.geteuid() == 0
        userns = in_user_namespace()
        self.can_mknod = self.privileged and not userns  # a user namespace may not make device nodes
        # only our own id mapped (rootless without subordinate ids): every file stays root's
        self.can_chown = self.privileged and not (userns and not id_mapped("uid", 1))
        self.opaque_xattr = overlay_xattr_prefix() + OPAQUE
        self.kept: set[tuple[str, ...]] = set()
        self.dirs: list[tuple[tuple[str, ...], int, int]] = []
        self._pkey: tuple[str, ...] | None = None
        self._pfd = -1

    def close(self) -> None:
        self._drop_parent()

    def _drop_parent(self) -> None:
        if self._pfd >= 0:
            os.close(self._pfd)
        self._pfd, self._pkey = -1, None

    def _parent(self, parts: Sequence[str]) -> int:
        key = tuple(parts)
        if key == self._pkey:
            return self._pfd
        fd = self._child_of_cached(key)
        self._drop_parent()
        self._pfd = fd if fd >= 0 else open_dir_in_root(self.root_fd, list(parts), create=True)
        self._pkey = key
        return self._pfd

    def _child_of_cached(self, key: tuple[str, ...]) -> int:
        """The cached parent's real subdirectory ``key[-1]`` when ``key`` is one level below it, else -1.

        Entries usually come parent first: opening one level down keeps a deep chain linear."""
        if self._pkey is None or len(key) != len(self._pkey) + 1 or key[:-1] != self._pkey:
            return -1
        try:
            return os.open(key[-1], _DIR_FLAGS, dir_fd=self._pfd)  # O_NOFOLLOW: a symlink takes the slow path
        except OSError:
            return -1

    def _remove(self, dir_fd: int, name: str) -> None:
        remove_at(dir_fd, name)
        if dir_fd != self._pfd:
            self._drop_parent()  # the cached parent may have lived below what went away

    def _keep(self, parts: Sequence[str]) -> None:
        # deepest first, stopping at a kept ancestor: a chain of n nested directories costs O(n^2), not O(n^3)
        for i in range(len(parts), 0, -1):
            key = tuple(parts[:i])
            if key in self.kept:
                return
            self.kept.add(key)

    # ---------------------------------------------------------------- entries
    def member(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = lexical_parts(m.name)
        if len(m.name.encode("utf-8", "surrogateescape")) > _PATH_MAX or any(
            len(p.encode("utf-8", "surrogateescape")) > _NAME_MAX for p in parts
        ):
            raise BuildError(f"layer entry name is too long ({len(m.name)} characters): {m.name[:80]!r}…")
        if any(p.startswith(WHITEOUT_META) for p in parts[:-1]):
            return  # aufs bookkeeping (.wh..wh.plnk/…), meaningless here
        base = parts[-1] if parts else ""
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parts[:-1], base)
            return
        if not parts:
            if not m.isdir():
                raise BuildError(f"layer entry {m.name!r} would replace the root directory")
            self.dirs.append(((), m.mode, _mtime_ns(m)))
            return
        pfd = self._parent(parts[:-1])
        name = parts[-1]
        self._keep(parts)
        try:
            st: os.stat_result | None = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if m.isdir():
            if st is not None and not stat.S_ISDIR(st.st_mode):
                self._remove(pfd, name)
                pfd = self._parent(parts[:-1])
                st = None
            if st is None:
                os.mkdir(name, 0o700, dir_fd=pfd)
            fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
            try:
                self._owner_and_xattrs(fd, m)
            finally:
                os.close(fd)
            self.dirs.append((tuple(parts), m.mode, _mtime_ns(m)))
            return
        if m.islnk():
            self._hardlink(pfd, name, parts, m, st)
            return
        if st is not None:
            self._remove(pfd, name)
            pfd = self._parent(parts[:-1])
        if m.isreg():
            self._regular(tf, pfd, name, m)
        elif m.issym():
            os.symlink(m.linkname, name, dir_fd=pfd)
            self._chown(m, name, dir_fd=pfd)
            self._xattrs(f"/proc/self/fd/{pfd}/{name}", m, follow=False)
            os.utime(name, ns=(_mtime_ns(m),) * 2, dir_fd=pfd, follow_symlinks=False)
        elif m.ischr() or m.isblk() or m.isfifo():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
            if kind != stat.S_IFIFO and not self.can_mknod:
                return  # device nodes need CAP_MKNOD; an unprivileged extraction skips them as docker does
            os.mknod(name, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=pfd)
            self._special_meta(pfd, name, m)
        # other types (sockets, unknown GNU extensions) are skipped

    def _regular(self, tf: tarfile.TarFile, pfd: int, name: str, m: tarfile.TarInfo) -> None:
        fd = os.open(
            name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=pfd
        )
        try:
            src = tf.extractfile(m)
            if src is not None:
                while chunk := src.read(_BLOCK):
                    _write_all(fd, chunk)
            self._owner_and_xattrs(fd, m)
            os.chmod(fd, m.mode & 0o7777)
            os.utime(fd, ns=(_mtime_ns(m),) * 2)
        finally:
            os.close(fd)

    def _hardlink(
        self, pfd: int, name: str, parts: list[str], m: tarfile.TarInfo, st: os.stat_result | None
    ) -> None:
        lparts = lexical_parts(m.linkname)
        if not lparts:
            raise BuildError(f"layer entry {m.name!r} is a hardlink to the root directory")
        if lparts == parts:
            return
        try:
            sfd = open_dir_in_root(self.root_fd, lparts[:-1])
        except (FileNotFoundError, NotADirectoryError):
            raise BuildError(
                f"layer entry {m.name!r} links to {m.linkname!r}, which is not in the layer"
            ) from None
        try:
            try:
                sst = os.stat(lparts[-1], dir_fd=sfd, follow_symlinks=False)
            except FileNotFoundError:
                raise BuildError(
                    f"layer entry {m.name!r} links to {m.linkname!r}, which is not in the layer"
                ) from None
            if stat.S_ISDIR(sst.st_mode):
                raise BuildError(f"layer entry {m.name!r} is a hardlink to a directory ({m.linkname!r})")
            if st is not None:
                if (st.st_dev, st.st_ino) == (sst.st_dev, sst.st_ino):
                    return
                self._remove(pfd, name)
                pfd = self._parent(parts[:-1])
            os.link(lparts[-1], name, src_dir_fd=sfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(sfd)

    def _chown(self, m: tarfile.TarInfo, target: int | str, *, dir_fd: int | None = None) -> None:
        if not self.can_chown:
            return
        try:
            if isinstance(target, int):
                os.chown(target, m.uid, m.gid)
            else:
                os.chown(target, m.uid, m.gid, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            raise BuildError(
                f"layer entry {m.name!r} is owned by {m.uid}:{m.gid}, which the rootless build's user "
                "namespace does not map",
                hint="give your user a larger subordinate id range in /etc/subuid and /etc/subgid "
                "(65536 ids fit nearly every image)",
            ) from None

    def _special_meta(self, pfd: int, name: str, m: tarfile.TarInfo) -> None:
        self._chown(m, name, dir_fd=pfd)
        os.chmod(name, m.mode & 0o7777, dir_fd=pfd)  # just created by us: not a symlink
        self._xattrs(f"/proc/self/fd/{pfd}/{name}", m, follow=False)
        os.utime(name, ns=(_mtime_ns(m),) * 2, dir_fd=pfd, follow_symlinks=False)

    def _owner_and_xattrs(self, fd: int, m: tarfile.TarInfo) -> None:
        self._chown(m, fd)
        self._xattrs(fd, m, follow=True)

    def _xattrs(self, target: int | str, m: tarfile.TarInfo, *, follow: bool) -> None:
        for key, value in m.pax_headers.items():
            if not key.startswith(_XATTR_PAX):
                continue
            xname = key[len(_XATTR_PAX) :]
            if not copy_xattrs_ok(xname):
                continue  # a layer must not smuggle overlayfs metadata (opaque/redirect) into the cache
            if not self.privileged and not xname.startswith("user."):
                continue
            with contextlib.suppress(OSError):
                os.setxattr(target, xname, value.encode("utf-8", "surrogateescape"), follow_symlinks=follow)

    def _whiteout(self, dparts: list[str], base: str) -> None:
        if base == WHITEOUT_OPAQUE and not dparts:
            return  # docker (overlay2) and BuildKit ignore an opaque marker on a layer's root
        if base == WHITEOUT_OPAQUE:
            if self.overlay:
                fd = open_dir_in_root(self.root_fd, dparts, create=True)
                try:
                    os.setxattr(fd, self.opaque_xattr, b"y")
                finally:
                    os.close(fd)
                self._keep(dparts)
            else:
                self._opaque_flat(dparts)
            return
        if base.startswith(WHITEOUT_META):
            return
        name = base[len(WHITEOUT_PREFIX) :]
        if name in ("", ".", ".."):
            raise BuildError(f"invalid whiteout entry {'/'.join([*dparts, base])!r} in layer")
        target = (*dparts, name)
        if target in self.kept:
            return  # a whiteout only hides lower layers, never this layer's own entries
        if self.overlay:
            pfd = self._parent(dparts)
            self._remove(pfd, name)
            pfd = self._parent(dparts)
            os.mknod(name, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=pfd)
            self._keep(target)
            return
        try:
            fd = open_dir_in_root(self.root_fd, dparts)
        except (FileNotFoundError, NotADirectoryError):
            return
        try:
            self._remove(fd, name)
        finally:
            os.close(fd)

    def _opaque_flat(self, dparts: list[str]) -> None:
        try:
            fd = open_dir_in_root(self.root_fd, dparts)
        except (FileNotFoundError, NotADirectoryError):
            return
        self._drop_parent()
        try:
            self._prune(fd, tuple(dparts))
        finally:
            os.close(fd)

    def _prune(self, dir_fd: int, prefix: tuple[str, ...]) -> None:
        for name in os.listdir(dir_fd):
            p = (*prefix, name)
            if p not in self.kept:
                remove_at(dir_fd, name)
                continue
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                sub = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
                try:
                    self._prune(sub, p)
                finally:
                    os.close(sub)

    def finish_dirs(self) -> None:
        """Apply directory modes and mtimes last (children changed them), deepest first."""
        self._drop_parent()
        last: tuple[tuple[str, ...], int] | None = None  # the previous directory, still open
        try:
            for parts, mode, mtime in reversed(self.dirs):
                try:
                    fd = self._open_dir_near(parts, last)
                except OSError:
                    continue  # removed or replaced by a later entry
                if last is not None:
                    os.close(last[1])
                last = (parts, fd)
                os.chmod(fd, mode & 0o7777)
                os.utime(fd, ns=(mtime, mtime))
        finally:
            if last is not None:
                os.close(last[1])

    def _open_dir_near(self, parts: tuple[str, ...], last: tuple[tuple[str, ...], int] | None) -> int:
        # deepest first: the next directory is often the parent of the previous one, and ".." of a real
        # directory opened without following links is its real parent, inside the root
        if last is not None and parts and last[0][:-1] == parts:
            return os.open("..", _DIR_FLAGS, dir_fd=last[1])
        if not parts:
            return os.dup(self.root_fd)
        pfd = open_dir_in_root(self.root_fd, list(parts[:-1]))
        try:
            return os.open(parts[-1], _DIR_FLAGS, dir_fd=pfd)
        finally:
            os.close(pfd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _mtime_ns(m: tarfile.TarInfo) -> int:
    try:
        return max(0, int(float(m.mtime) * 1_000_000_000))
    except (TypeError, ValueError, OverflowError):
        return 0


def safe_extract(
    tar_stream: BinaryIO | tarfile.TarFile,
    dest: Path,
    *,
    as_overlay_lower: bool = False,
    what: str = "layer",
    budget: ExpansionBudget | None = None,
) -> None:
    """Extract one tar layer into ``dest`` (which must exist) applying whiteouts; nothing lands outside it.

    ``what`` names the layer in errors; ``budget`` bounds its expansion (default: from the free space).
    """
    dest = Path(dest)
    own = not isinstance(tar_stream, tarfile.TarFile)
    tf = tar_stream if isinstance(tar_stream, tarfile.TarFile) else open_tar_stream(tar_stream, what=what)
    if budget is None:
        budget = expansion_budget(0, what=what, dest=dest)
    root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    ex = _Extractor(root_fd, overlay=as_overlay_lower)
    m: tarfile.TarInfo | None = None
    try:
        for m in iter_members(tf, what=what, budget=budget):
            ex.member(tf, m)
        ex.finish_dirs()
    except IdpError:
        raise
    except OSError as e:
        where = f"{what} entry {m.name!r}" if m is not None else what
        hint = "free disk space" if e.errno in (errno.ENOSPC, errno.EDQUOT) else None
        raise BuildError(f"extracting {where} into {dest}: {e.strerror or e}", hint=hint) from e
    except READ_ERRORS as e:
        where = f"{what} entry {m.name!r}" if m is not None else what
        raise BuildError(f"{where} is not valid: {e or type(e).__name__}") from e
    finally:
        ex.close()
        os.close(root_fd)
        if own:
            tf.close()


def _extract_verified(store: Store, layer: Layer, dest: Path, *, as_overlay_lower: bool) -> None:
    raw = open_layer(store, layer.descriptor)
    reader = VerifyingReader(raw, layer.diff_id, what=f"layer {layer.descriptor.digest} (uncompressed)")
    what = f"layer {layer.descriptor.digest}"
    budget = expansion_budget(layer.descriptor.size, what=what, dest=dest)
    try:
        safe_extract(reader, dest, as_overlay_lower=as_overlay_lower, what=what, budget=budget)  # type: ignore[arg-type]
        while reader.read(_BLOCK):  # tar padding after the end-of-archive blocks: the diff_id covers it
            pass
    finally:
        reader.close()


def extract_layers(store: Store, layers: Sequence[Layer], dest: Path) -> None:
    """Apply ``layers`` (bottom first) into ``dest`` as one flattened rootfs, whiteouts applied."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for layer in layers:
        _extract_verified(store, layer, dest, as_overlay_lower=False)


def extract_image_rootfs(store: Store, image: Image, dest: Path) -> None:
    """Extract an image's layers into ``dest`` as a plain rootfs (for COPY --from and conformance)."""
    extract_layers(store, image.layers, dest)


def layer_dir(store: Store, layer: Layer) -> Path:
    """The layer extracted as an overlayfs lower dir, cached once per diff_id under the store."""
    base = store.path_for("layers")
    final = base / layer.diff_id.hex
    if final.is_dir():
        return final
    tmp = Path(tempfile.mkdtemp(dir=base, prefix=stamped(f".tmp-{layer.diff_id.hex[:12]}-")))
    try:
        os.chmod(tmp, 0o755)
        _extract_verified(store, layer, tmp, as_overlay_lower=True)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(tmp)  # another process extracted it first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
