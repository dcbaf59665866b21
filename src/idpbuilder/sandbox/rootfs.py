"""Root filesystem for one RUN: an overlayfs mount (or a plain copy) and the mount targets it needs.

The runtime needs every mount target to exist in the rootfs. Targets that were not in the image are
created here before the run and removed after it, and the mtimes of the directories that held them are
put back, so they never show up in the step's layer.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from idpbuilder._records import dataclass, field
from idpbuilder.errors import BuildError
from idpbuilder.sandbox.fs import lexical_parts, open_dir_in_root, resolve_in_root
from idpbuilder.sandbox.isolation import in_user_namespace
from idpbuilder.sandbox.libc import errno as _errno
from idpbuilder.sandbox.libc import libc as _libc

__all__ = ["MountError", "TargetPlan", "mount_overlay", "prepare_targets", "undo_targets", "unmount"]

_MS_NODEV = 4
_MS_PRIVATE = 1 << 18
_MNT_DETACH = 2


class MountError(OSError):
    """mount(2) failed; ``errno`` says why (EPERM/ENODEV/EINVAL mean: no overlayfs here)."""


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    import ctypes

    rc = _libc().mount(
        source.encode() if source else None,
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data is not None else None,
    )
    if rc != 0:
        e = _errno()
        raise MountError(e, f"mount {fstype or ''} on {target}: {os.strerror(e)}")


def mount_overlay(lowers: Sequence[Path], upper: Path, work: Path, merged: Path) -> None:
    """Mount overlayfs at ``merged``: ``lowers`` top first; nodev, private propagation.

    Lower dirs are passed as /proc/self/fd/N paths: short (many layers fit in one page of options) and
    immune to commas or colons in the store path.
    """
    fds = [os.open(p, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) for p in lowers]
    try:
        lowerdir = ":".join(f"/proc/self/fd/{fd}" for fd in fds)
        # renamed lower dirs are copied up, never redirected (the diff would not see them); in a user
        # namespace the kernel refuses redirect_dir=off and trusted xattrs: userxattr + nofollow
        extra = (
            "userxattr,index=off,metacopy=off,redirect_dir=nofollow"
            if in_user_namespace()
            else "index=off,redirect_dir=off,metacopy=off"
        )
        opts = f"lowerdir={lowerdir},upperdir={upper},workdir={work},{extra}"
        if len(opts) >= 4096:
            raise MountError(errno.E2BIG, f"too many layers ({len(lowers)}) for one overlay mount")
        _mount("overlay", str(merged), "overlay", _MS_NODEV, opts)
        with contextlib.suppress(MountError):
            _mount("", str(merged), None, _MS_PRIVATE, None)
    finally:
        for fd in fds:
            os.close(fd)


def unmount(target: Path) -> None:
    """Unmount ``target`` (lazily when busy); no error when nothing is mounted there."""
    t = str(target).encode()
    if _libc().umount2(t, 0) == 0:
        return
    e = _errno()
    if e in (errno.EINVAL, errno.ENOENT):
        return  # not a mount point (any more)
    if e == errno.EBUSY and _libc().umount2(t, _MNT_DETACH) == 0:
        return
    raise BuildError(f"cannot unmount {target}: {os.strerror(e)}")


@dataclass
class TargetPlan:
    """What ``prepare_targets`` created, to be removed again by ``undo_targets``."""

    created: list[tuple[str, ...]] = field(default_factory=list)
    # existing directory -> (atime_ns, mtime_ns before, mtime_ns right after setup)
    parents: dict[tuple[str, ...], tuple[int, int, int]] = field(default_factory=dict)

    @property
    def touched_dirs(self) -> set[tuple[str, ...]]:
        """Existing directories whose ctime changed because targets were created in them."""
        return set(self.parents)


def _lstat(root: Path, parts: Sequence[str]) -> os.stat_result | None:
    try:
        return os.lstat(root.joinpath(*parts))
    except (FileNotFoundError, NotADirectoryError):
        return None


def ensure_dir(rootfs: Path, path: str) -> str:
    """Create directory ``path`` (symlinks resolved inside ``rootfs``) with its parents; in-root path."""
    resolved = resolve_in_root(rootfs, path)
    root_fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.close(open_dir_in_root(root_fd, lexical_parts(resolved), create=True))
    except NotADirectoryError:
        raise BuildError(f"cannot create directory {path}: a file is in the way") from None
    finally:
        os.close(root_fd)
    return resolved


def prepare_targets(rootfs: Path, targets: Sequence[tuple[str, bool]], plan: TargetPlan) -> list[str]:
    """Make each (path, is_dir) target exist in ``rootfs``; returns the in-root resolved paths."""
    out = []
    for path, is_dir in targets:
        resolved = resolve_in_root(rootfs, path)
        parts = tuple(lexical_parts(resolved))
        if not parts:
            raise BuildError(f"cannot mount over the root directory ({path})")
        for i in range(1, len(parts) + 1):
            sub = parts[:i]
            st = _lstat(rootfs, sub)
            last = i == len(parts)
            if st is not None:
                if not last and not stat.S_ISDIR(st.st_mode):
                    raise BuildError(f"mount target {path}: {'/'.join(sub)} in the image is not a directory")
                continue
            parent = sub[:-1]
            if parent not in plan.parents and parent not in plan.created:
                pst = os.lstat(rootfs.joinpath(*parent))
                plan.parents[parent] = (pst.st_atime_ns, pst.st_mtime_ns, 0)
            full = rootfs.joinpath(*sub)
            if last and not is_dir:
                fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
                os.close(fd)
            else:
                os.mkdir(full, 0o755)
            plan.created.append(sub)
        out.append(resolved)
    for parent, (at, mt, _) in list(plan.parents.items()):
        plan.parents[parent] = (at, mt, os.lstat(rootfs.joinpath(*parent)).st_mtime_ns)
    return out


def undo_targets(rootfs: Path, plan: TargetPlan) -> None:
    """Remove what ``prepare_targets`` created (if still empty) and restore the parents' mtimes."""
    root_fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        post: dict[tuple[str, ...], int] = {}
        for parent in plan.parents:
            st = _stat_nofollow(root_fd, parent)
            if st is not None:
                post[parent] = st.st_mtime_ns
        for sub in reversed(plan.created):
            try:
                dfd = open_dir_in_root(root_fd, list(sub[:-1]), follow=False)
            except (FileNotFoundError, NotADirectoryError):
                continue
            try:
                st = os.stat(sub[-1], dir_fd=dfd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    os.rmdir(sub[-1], dir_fd=dfd)  # fails (kept) when the command put files there
                elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                    os.unlink(sub[-1], dir_fd=dfd)
            except OSError:
                pass
            finally:
                os.close(dfd)
        for parent, (atime, before, after_setup) in plan.parents.items():
            if parent not in post:
                continue
            mtime = before if post[parent] == after_setup else post[parent]
            try:
                fd = open_dir_in_root(root_fd, list(parent), follow=False)
            except (FileNotFoundError, NotADirectoryError):
                continue
            try:
                os.utime(fd, ns=(atime, mtime))
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)


def _stat_nofollow(root_fd: int, parts: Sequence[str]) -> os.stat_result | None:
    try:
        fd = open_dir_in_root(root_fd, list(parts), follow=False)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)
