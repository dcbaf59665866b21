"""Reuse a RUN's overlay upper dir as the extracted lower dir of the layer written from it.

``layer_dir`` would otherwise extract the new layer from its blob on the next RUN. The upper dir holds the
same tree, but also things the layer left out (copy-ups identical to the lower entry, emptied mount-target
parents, sockets), overlayfs bookkeeping xattrs, nanosecond mtimes (a tar keeps seconds) and shared
whiteout inodes. ``promote_upper`` normalises all of that into exactly what the extraction would give and
renames the dir into the cache; anything it cannot reason about makes it give up (the next RUN extracts).
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from idpbuilder.sandbox.extract import OPAQUE, WHITEOUT_PREFIX
from idpbuilder.sandbox.fs import list_xattrs
from idpbuilder.sandbox.isolation import overlay_xattr_prefix

if TYPE_CHECKING:
    from idpbuilder.image import Layer
    from idpbuilder.sandbox.diff import Change
    from idpbuilder.store import Store

__all__ = ["promote_upper"]

log = logging.getLogger("idpbuilder.sandbox")

Parts = tuple[str, ...]
_PATH_MAX = 4096
# overlayfs bookkeeping an upper dir may carry with index/redirect_dir/metacopy off; anything else: give up
_OVERLAY_DROPPABLE = tuple(
    f"{ns}.overlay.{n}" for ns in ("trusted", "user") for n in ("origin", "impure", "nlink")
)


class _Unsure(Exception):
    """The upper dir holds something whose extracted form is not certain."""


def _mtime_ns(st: os.stat_result) -> int:
    # what the tar keeps (whole seconds, see diff._tarinfo) and extract._mtime_ns makes of it
    return max(0, int(float(st.st_mtime_ns // 1_000_000_000) * 1_000_000_000))


class _Normaliser:
    def __init__(self, changes: list[Change]) -> None:
        self.want: dict[Parts, str] = {}
        self.opaque: set[Parts] = set()
        for ch in changes:
            if ch.kind == "path":
                self.want[ch.parts] = "path"
            elif ch.kind == "whiteout":
                self.want[(*ch.parts[:-1], ch.parts[-1][len(WHITEOUT_PREFIX) :])] = "whiteout"
            else:
                self.opaque.add(ch.parts[:-1])
        self.parents = {k[:i] for k in self.want for i in range(1, len(k))}
        self.seen = 0
        self.kept: list[tuple[Parts, Path]] = []

    def prune(self, d: Path, prefix: Parts) -> None:
        """Drop what the layer left out, recreate whiteouts as extraction makes them; recurse."""
        before = os.lstat(d)
        self._prune_entries(d, prefix)
        # what prune changed in ``d`` must not move its mtime off what the layer recorded
        os.utime(d, ns=(before.st_atime_ns, before.st_mtime_ns), follow_symlinks=False)

    def _prune_entries(self, d: Path, prefix: Parts) -> None:
        for name in os.listdir(d):
            parts = (*prefix, name)
            p = d / name
            if name.startswith(WHITEOUT_PREFIX):
                raise _Unsure(f"{p}: a whiteout-like name")
            try:
                encoded = "/".join(parts).encode("utf-8")
            except UnicodeEncodeError:
                raise _Unsure(f"{p}: not UTF-8") from None
            if len(encoded) > _PATH_MAX:
                raise _Unsure(f"{p}: path too long")
            st = os.lstat(p)
            kind = self.want.get(parts)
            if kind is None:
                if stat.S_ISDIR(st.st_mode):
                    if parts in self.parents:
                        raise _Unsure(f"{p}: left out but holds layer entries")
                    shutil.rmtree(p)
                else:
                    os.unlink(p)
                continue
            self.seen += 1
            is_whiteout = stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
            if kind == "whiteout" or is_whiteout:
                if kind != "whiteout" or not is_whiteout:
                    raise _Unsure(f"{p}: whiteout mismatch")
                # overlayfs may share one whiteout inode (mode 0); extraction makes one 0600 node each
                os.unlink(p)
                os.mknod(p, stat.S_IFCHR | 0o600, os.makedev(0, 0))
                continue
            if stat.S_ISSOCK(st.st_mode):
                os.unlink(p)  # write_layer skips sockets
                continue
            if stat.S_ISDIR(st.st_mode):
                self.prune(p, parts)
            elif parts in self.opaque:
                raise _Unsure(f"{p}: opaque marker on a non-directory")
            self.kept.append((parts, p))

    def finish(self, root: Path) -> None:
        """Layer xattrs only (plus the opaque marker), seconds mtimes, hardlinks only within the layer."""
        if self.seen != len(self.want):
            raise _Unsure("the upper dir and the change list disagree")
        links: dict[tuple[int, int], int] = {}
        for _, p in self.kept:
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                links[(st.st_dev, st.st_ino)] = links.get((st.st_dev, st.st_ino), 0) + 1
        for parts, p in self.kept:
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                if st.st_nlink != links[(st.st_dev, st.st_ino)]:
                    raise _Unsure(f"{p}: hardlinked outside the layer")
            elif not stat.S_ISDIR(st.st_mode) and st.st_nlink != 1:
                raise _Unsure(f"{p}: a hardlinked non-regular file (the layer stores copies)")
            self._xattrs(p, parts)
            mt = _mtime_ns(st)
            os.utime(p, ns=(mt, mt), follow_symlinks=False)
        for name in os.listxattr(root, follow_symlinks=False):
            os.removexattr(root, name, follow_symlinks=False)
        os.chown(root, os.geteuid(), os.getegid())
        os.chmod(root, 0o755)

    def _xattrs(self, p: Path, parts: Parts) -> None:
        keep = list_xattrs(str(p))
        opaque = False
        for name in os.listxattr(p, follow_symlinks=False):
            if name in keep:
                continue
            if name == overlay_xattr_prefix() + OPAQUE:
                if parts not in self.opaque or os.getxattr(p, name, follow_symlinks=False) != b"y":
                    raise _Unsure(f"{p}: unexpected opaque xattr")
                opaque = True
            elif name in _OVERLAY_DROPPABLE or not name.startswith(("trusted.overlay.", "user.overlay.")):
                os.removexattr(p, name, follow_symlinks=False)
            else:
                raise _Unsure(f"{p}: overlayfs xattr {name}")
        if parts in self.opaque and not opaque:
            raise _Unsure(f"{p}: opaque in the layer but not in the upper dir")


def promote_upper(store: Store, layer: Layer, upper: Path, changes: list[Change]) -> Path | None:
    """Turn ``upper`` (whose ``changes`` made ``layer``) into ``layer_dir``'s cache dir; None if not done."""
    base = store.path_for("layers")
    final = base / layer.diff_id.hex
    if final.exists() or os.geteuid() != 0:
        return None  # cached already / an unprivileged extraction drops devices, owners, xattrs
    try:
        if os.stat(upper).st_dev != os.stat(base).st_dev:
            return None
        norm = _Normaliser(changes)
        norm.prune(upper, ())
        norm.finish(upper)
        # atomic, and never over a cache dir someone else made meanwhile (ENOTEMPTY/EEXIST then)
        os.rename(upper, final)
    except (_Unsure, OSError) as e:
        log.debug("not reusing the upper dir for layer %s: %s", layer.diff_id, e)
        return None
    return final
