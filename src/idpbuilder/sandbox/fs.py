"""Filesystem helpers that never follow a symlink out of a root directory.

Every path inside a rootfs is resolved as the kernel would inside a chroot: absolute symlinks restart at
the root and ``..`` stops at it. Resolution walks directory file descriptors with ``O_NOFOLLOW``, so
nothing on the host outside the root is ever touched, whatever links the rootfs contains.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import stat
from pathlib import Path

from idpbuilder.errors import BuildError

__all__ = [
    "MAX_SYMLINKS",
    "XATTR_SKIP_PREFIXES",
    "copy_xattrs_ok",
    "list_xattrs",
    "lexical_parts",
    "open_dir_in_root",
    "remove_at",
    "resolve_in_root",
]

MAX_SYMLINKS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# xattrs that belong to the host or to overlayfs bookkeeping, never to an image layer
XATTR_SKIP_PREFIXES = (
    "trusted.overlay.",
    "user.overlay.",
    "security.selinux",
    "security.ima",
    "security.evm",
)


def lexical_parts(name: str) -> list[str]:
    """Split a path inside a rootfs into clean components; raise BuildError when it climbs out."""
    rel = posixpath.normpath(name.lstrip("/")) if name.strip("/") else "."
    if rel == ".." or rel.startswith("../"):
        raise BuildError(
            f"path {name!r} points outside the root filesystem",
            hint="the layer or mount is malformed or hostile; rebuild it from a trusted source",
        )
    return [] if rel == "." else rel.split("/")


def open_dir_in_root(
    root_fd: int, parts: list[str], *, create: bool = False, mode: int = 0o755, follow: bool = True
) -> int:
    """Open the directory ``parts`` below ``root_fd`` with chroot semantics; the caller closes the fd.

    Missing directories are created (``mode``, owned by the caller) when ``create``; symlinks are resolved
    inside the root (with ``follow=False`` a symlink raises NotADirectoryError); a non-directory in the
    way raises NotADirectoryError.
    """
    # one fd open at a time (a 2000-deep path must not need 2000 descriptors); ".." reopens from the root
    cur = os.dup(root_fd)
    resolved: list[str] = []
    todo = [p for p in reversed(parts)]  # a stack: next component last
    links = 0
    try:
        while todo:
            c = todo.pop()
            if c in ("", "."):
                continue
            if c == "..":
                if resolved:
                    resolved.pop()
                    nxt = _walk_real_dirs(root_fd, resolved)
                    os.close(cur)
                    cur = nxt
                continue
            try:
                fd = os.open(c, _DIR_FLAGS, dir_fd=cur)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(c, mode, dir_fd=cur)
                todo.append(c)
                continue
            except OSError as e:
                if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                st = os.stat(c, dir_fd=cur, follow_symlinks=False)
                if not stat.S_ISLNK(st.st_mode) or not follow:
                    raise NotADirectoryError(errno.ENOTDIR, "not a directory", c) from None
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links", c) from None
                target = os.readlink(c, dir_fd=cur)
                if target.startswith("/"):
                    os.close(cur)
                    cur = os.dup(root_fd)
                    resolved = []
                todo.extend(reversed([p for p in target.split("/") if p]))
                continue
            os.close(cur)
            cur = fd
            resolved.append(c)
        out, cur = cur, -1
        return out
    finally:
        if cur >= 0:
            os.close(cur)


def _walk_real_dirs(root_fd: int, parts: list[str]) -> int:
    """Open ``parts`` below ``root_fd`` through real directories only (no symlink is followed)."""
    cur = os.dup(root_fd)
    try:
        for c in parts:
            fd = os.open(c, _DIR_FLAGS, dir_fd=cur)
            os.close(cur)
            cur = fd
        out, cur = cur, -1
        return out
    finally:
        if cur >= 0:
            os.close(cur)


def resolve_in_root(root: Path, path: str, *, follow_final: bool = True) -> str:
    """The in-root absolute path ``path`` designates, resolving symlinks with chroot semantics.

    Components that do not exist are kept as written. With ``follow_final`` a trailing symlink is
    followed too (as a bind mount or an ``open`` would).
    """
    resolved: list[str] = []
    todo = lexical_parts(path)
    links = 0
    while todo:
        c = todo.pop(0)
        if c == "..":
            if resolved:
                resolved.pop()
            continue
        cand = root.joinpath(*resolved, c)
        try:
            st = os.lstat(cand)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(c)
            continue
        if stat.S_ISLNK(st.st_mode) and (todo or follow_final):
            links += 1
            if links > MAX_SYMLINKS:
                raise BuildError(f"too many levels of symbolic links resolving {path!r} in the rootfs")
            target = os.readlink(cand)
            if target.startswith("/"):
                resolved = []
            todo = [p for p in target.split("/") if p not in ("", ".")] + todo
            continue
        resolved.append(c)
    return "/" + "/".join(resolved)


def remove_at(dir_fd: int, name: str) -> None:
    """Remove ``name`` in ``dir_fd`` whatever it is (a directory recursively), never following links."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        import shutil

        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def list_xattrs(path: str | int) -> dict[str, bytes]:
    """The image-relevant xattrs of a path (not followed) or fd, without host/overlay bookkeeping ones."""
    out: dict[str, bytes] = {}
    follow = isinstance(path, int)
    try:
        names = os.listxattr(path, follow_symlinks=follow)
    except OSError:
        return out
    for n in sorted(names):
        if n.startswith(XATTR_SKIP_PREFIXES):
            continue
        with contextlib.suppress(OSError):
            out[n] = os.getxattr(path, n, follow_symlinks=follow)
    return out


def copy_xattrs_ok(name: str) -> bool:
    """True when an xattr from a layer may be applied (overlay/host bookkeeping ones may not)."""
    return not name.startswith(XATTR_SKIP_PREFIXES)
