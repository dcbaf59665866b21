"""Turn a RUN's filesystem change into one sorted, deterministic tar layer.

Two sources give the same entries:

* ``overlay_changes``: the overlayfs upper dir. 0/0 character devices become ``.wh.<name>``, opaque
  directories get ``.wh..wh..opq``; copied-up entries identical to the lower one are dropped (a
  directory stays when something below it changed, so parents always precede their children).
* ``snapshot_changes``: a before/after walk of a copied rootfs. Deleted names become whiteouts; a
  directory that was removed and made again (new inode; the snapshot holds the old directories open so
  inode numbers cannot be reused) becomes opaque, exactly as overlayfs records it.
"""

from __future__ import annotations

import os
import resource
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from idpbuilder._records import dataclass, field
from idpbuilder.image import Layer, LayerWriter
from idpbuilder.sandbox.extract import OPAQUE, WHITEOUT_OPAQUE, WHITEOUT_PREFIX
from idpbuilder.sandbox.fs import list_xattrs
from idpbuilder.sandbox.isolation import overlay_xattr_prefix

if TYPE_CHECKING:
    from idpbuilder.store import Store

__all__ = ["Change", "Snapshot", "overlay_changes", "snapshot_changes", "take_snapshot", "write_layer"]

Parts = tuple[str, ...]


@dataclass(frozen=True)
class Change:
    """One layer entry: a filesystem object at ``path`` (``kind="path"``), a whiteout or an opaque marker."""

    parts: Parts  # the tar name's components
    kind: str  # "path" | "whiteout" | "opaque"
    path: Path | None = None


def _same_meta(a: os.stat_result, b: os.stat_result) -> bool:
    return (
        stat.S_IFMT(a.st_mode) == stat.S_IFMT(b.st_mode)
        and stat.S_IMODE(a.st_mode) == stat.S_IMODE(b.st_mode)
        and a.st_uid == b.st_uid
        and a.st_gid == b.st_gid
        and a.st_mtime_ns == b.st_mtime_ns
        and (stat.S_ISDIR(a.st_mode) or a.st_size == b.st_size)
        and a.st_rdev == b.st_rdev
    )


def _same_content(a: Path, b: Path, sa: os.stat_result) -> bool:
    if stat.S_ISLNK(sa.st_mode):
        return os.readlink(a) == os.readlink(b)
    if stat.S_ISREG(sa.st_mode):
        with open(a, "rb") as fa, open(b, "rb") as fb:
            while True:
                ca, cb = fa.read(1 << 20), fb.read(1 << 20)
                if ca != cb:
                    return False
                if not ca:
                    return True
    return True


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, overlay_xattr_prefix() + OPAQUE, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _lower_lookup(lowers: list[Path], parts: Parts) -> tuple[Path, os.stat_result] | None:
    """The entry the merged view showed before the run (top lower first), honouring whiteouts/opaques."""
    for low in lowers:
        p = low.joinpath(*parts)
        try:
            st = os.lstat(p)
        except (FileNotFoundError, NotADirectoryError):
            # an opaque ancestor in this layer hides everything below it in lower layers
            if any(_is_opaque(low.joinpath(*parts[:i])) for i in range(1, len(parts))):
                return None
            continue
        if _is_whiteout(st):
            return None
        return p, st
    return None


def overlay_changes(upper: Path, lowers: list[Path]) -> list[Change]:
    """The change recorded in an overlayfs upper dir over ``lowers`` (top first)."""

    def walk(d: Path, prefix: Parts) -> list[Change]:
        groups: list[tuple[str, list[Change]]] = []
        for name in os.listdir(d):
            p = d / name
            parts = (*prefix, name)
            st = os.lstat(p)
            if _is_whiteout(st):
                wh = WHITEOUT_PREFIX + name
                groups.append((wh, [Change((*prefix, wh), "whiteout")]))
                continue
            lower = _lower_lookup(lowers, parts)
            if stat.S_ISDIR(st.st_mode):
                opaque = _is_opaque(p)
                below = walk(p, parts)
                same = (
                    lower is not None
                    and not opaque
                    and _same_meta(st, lower[1])
                    and list_xattrs(str(p)) == list_xattrs(str(lower[0]))
                )
                if not same or below:
                    group = [Change(parts, "path", p)]
                    if opaque:
                        group.append(Change((*parts, WHITEOUT_OPAQUE), "opaque"))
                    groups.append((name, group + below))
                continue
            if (
                lower is not None
                and _same_meta(st, lower[1])
                and list_xattrs(str(p)) == list_xattrs(str(lower[0]))
                and _same_content(p, lower[0], st)
            ):
                continue
            groups.append((name, [Change(parts, "path", p)]))
        return [c for _, group in sorted(groups, key=lambda g: g[0]) for c in group]

    return walk(upper, ())


@dataclass
class Snapshot:
    """Metadata of every entry of a rootfs; holds its directories open until ``close``."""

    entries: dict[Parts, os.stat_result] = field(default_factory=dict)
    children: dict[Parts, set[str]] = field(default_factory=dict)
    fds: list[int] = field(default_factory=list)

    def close(self) -> None:
        """Release the held directory descriptors."""
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()


def _scan(root: Path) -> Iterator[tuple[Parts, Path, os.stat_result]]:
    stack: list[tuple[Path, Parts]] = [(root, ())]
    while stack:
        d, prefix = stack.pop()
        for name in os.listdir(d):
            p = d / name
            st = os.lstat(p)
            yield (*prefix, name), p, st
            if stat.S_ISDIR(st.st_mode):
                stack.append((p, (*prefix, name)))


def take_snapshot(root: Path) -> Snapshot:
    """Record every entry below ``root`` (the root itself excluded)."""
    snap = Snapshot()
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    budget = max(0, soft - 256)
    snap.children[()] = set()
    try:
        for parts, p, st in _scan(root):
            snap.entries[parts] = st
            snap.children.setdefault(parts[:-1], set()).add(parts[-1])
            if stat.S_ISDIR(st.st_mode):
                snap.children.setdefault(parts, set())
                if len(snap.fds) < budget:
                    snap.fds.append(os.open(p, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC))
    except BaseException:
        snap.close()
        raise
    return snap


def snapshot_changes(root: Path, before: Snapshot, *, touched: set[Parts] | None = None) -> list[Change]:
    """The change between ``before`` and ``root`` now; ``touched`` dirs are compared without ctime."""
    touched = touched or set()

    def changed(parts: Parts, a: os.stat_result, b: os.stat_result) -> bool:
        if a.st_ino != b.st_ino or not _same_meta(a, b):
            return True
        return parts not in touched and a.st_ctime_ns != b.st_ctime_ns

    def walk(d: Path, prefix: Parts, fresh: bool) -> list[Change]:
        out: list[Change] = []
        names = sorted(os.listdir(d))
        entries: list[tuple[str, Change | None, list[Change]]] = []
        for name in names:
            p = d / name
            parts = (*prefix, name)
            st = os.lstat(p)
            old = None if fresh else before.entries.get(parts)
            if stat.S_ISDIR(st.st_mode):
                replaced = old is not None and (not stat.S_ISDIR(old.st_mode) or old.st_ino != st.st_ino)
                new_dir = old is None or replaced
                below = walk(p, parts, new_dir)
                if old is not None and stat.S_ISDIR(old.st_mode) and old.st_ino != st.st_ino:
                    below = [Change((*parts, WHITEOUT_OPAQUE), "opaque"), *below]
                if new_dir or changed(parts, old, st) or below:  # type: ignore[arg-type]
                    entries.append((name, Change(parts, "path", p), below))
                continue
            if old is None or changed(parts, old, st):
                entries.append((name, Change(parts, "path", p), []))
        if not fresh:
            for gone in before.children.get(prefix, set()) - set(names):
                entries.append(
                    (WHITEOUT_PREFIX + gone, Change((*prefix, WHITEOUT_PREFIX + gone), "whiteout"), [])
                )
        for _, ch, below in sorted(entries, key=lambda e: e[0]):
            if ch is not None:
                out.append(ch)
            out.extend(below)
        return out

    return walk(root, (), False)


def _tarinfo(ch: Change, path: Path, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo("/".join(ch.parts))
    m = st.st_mode
    if stat.S_ISREG(m):
        info.type, info.size = tarfile.REGTYPE, st.st_size
    elif stat.S_ISDIR(m):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(m):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
    elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(m) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    else:
        info.type = tarfile.FIFOTYPE
    info.mode = stat.S_IMODE(m)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = st.st_mtime_ns // 1_000_000_000
    xattrs = list_xattrs(str(path))
    if xattrs:
        info.pax_headers = {
            f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in sorted(xattrs.items())
        }
    return info


def write_layer(store: Store, changes: list[Change], *, compression: str | None = None) -> Layer:
    """Write ``changes`` (already in tar order) as one layer into the store; hardlinks kept within it."""
    links: dict[tuple[int, int], str] = {}
    with LayerWriter(store, compression=compression) as w:
        for ch in changes:
            if ch.kind != "path":
                info = tarfile.TarInfo("/".join(ch.parts))
                info.type, info.mode, info.mtime, info.uname, info.gname = tarfile.REGTYPE, 0, 0, "", ""
                w.add_entry(info)
                continue
            assert ch.path is not None
            st = os.lstat(ch.path)
            if stat.S_ISSOCK(st.st_mode):
                continue
            info = _tarinfo(ch, ch.path, st)
            if info.type == tarfile.REGTYPE and st.st_nlink > 1:
                first = links.get((st.st_dev, st.st_ino))
                if first is not None:
                    info.type, info.linkname, info.size = tarfile.LNKTYPE, first, 0
                    w.add_entry(info)
                    continue
                links[(st.st_dev, st.st_ino)] = info.name
            if info.type == tarfile.REGTYPE:
                with open(ch.path, "rb") as f:
                    w.add_entry(info, f)  # type: ignore[arg-type]
            else:
                w.add_entry(info)
    return w.result
