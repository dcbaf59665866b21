"""COPY/ADD: resolve sources, apply BuildKit's destination rules, and write the result as one layer.

The rules follow tonistiigi/fsutil ``copy.Copy`` as BuildKit's Dockerfile frontend drives it
(``FollowSymlinks``, ``CopyDirContentsOnly``, ``AllowWildcard``, ``AllowEmptyWildcard``, include /
exclude patterns): a matched directory copies its *contents*; a file lands inside an existing
directory destination (or one ending in ``/``), else becomes the destination; missing parents are
created 0755 (or with ``--chmod``) owned by ``--chown``. Destinations are resolved through the
image's symlinks, scoped to its root.
"""

from __future__ import annotations

import io
import posixpath
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, BinaryIO, Protocol

from idpbuilder import _records
from idpbuilder._records import dataclass, field
from idpbuilder.builder.fs import (
    BLOCK,
    CHAR,
    DIR,
    FIFO,
    FILE,
    SYMLINK,
    Meta,
    SourceFS,
    clean,
    contains_wildcards,
    go_match,
    resolve_path,
    split_wildcards,
)
from idpbuilder.builder.modes import ChmodSpec, Owner
from idpbuilder.builder.rootfs import HARDLINK, LayerMember
from idpbuilder.errors import BuildError
from idpbuilder.image import Layer, LayerWriter

_SETGID = 0o2000

if TYPE_CHECKING:
    import tarfile

    from idpbuilder.store.layout import Store

__all__ = ["CopyOptions", "DestView", "LayerPlan", "Matcher", "expand_sources", "include_match"]


class Matcher(Protocol):
    def matches(self, relpath: str) -> bool: ...


class DestView(Protocol):
    """What the destination image looks like before this layer."""

    def lstat(self, path: str) -> Meta | None: ...


Opener = Callable[[], BinaryIO]


@dataclass
class OutEntry:
    """One member of the layer being planned."""

    meta: Meta
    opener: Opener | None = None


@dataclass(frozen=True)
class CopyOptions:
    """Per-instruction options of COPY/ADD."""

    owner: Owner | None = None  # --chown; None keeps the source's owner (context files: 0:0)
    chmod: ChmodSpec | None = None
    exclude: Matcher | None = None
    mtime_clamp: float | None = None  # SOURCE_DATE_EPOCH
    created_mtime: float = 0.0  # mtime of directories the copy creates
    context_owner_root: bool = True  # context files are owned by 0:0 unless --chown


class _Overlay:
    """The destination as it would look with this layer's pending entries applied."""

    def __init__(self, plan: LayerPlan) -> None:
        self.plan = plan
        self.hidden: set[str] = set()  # destination directories replaced by a non-directory

    def lstat(self, path: str) -> Meta | None:
        e = self.plan.entries.get(path)
        if e is not None:
            return e.meta
        if self.hidden and any(path.startswith(h + "/") for h in self.hidden):
            return None
        if self.plan.base is not None:
            return self.plan.base.lstat(path)
        return Meta(DIR, 0o755) if path == "/" else None

    def listdir(self, path: str) -> list[str]:
        return []

    def open(self, path: str) -> BinaryIO:
        raise BuildError("internal: destination view is not readable")

    def describe(self, path: str) -> str:
        return f"destination {path!r}"


@dataclass
class LayerPlan:
    """The entries one COPY/ADD writes (later writes win), resolved against the destination image."""

    base: DestView | None
    opts: CopyOptions = field(default_factory=CopyOptions)
    entries: dict[str, OutEntry] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.view = _Overlay(self)

    # ------------------------------------------------------------ destination helpers
    def resolve(self, path: str, *, follow_last: bool = True) -> str:
        """``path`` with the destination's symlinks resolved inside its root."""
        return resolve_path(self.view, path, follow_last=follow_last)

    def stat(self, path: str) -> Meta | None:
        """Metadata of ``path`` following a final symlink."""
        return self.view.lstat(self.resolve(path))

    def _dir_meta(self) -> Meta:
        mode = 0o755
        if self.opts.chmod is not None:
            mode = self.opts.chmod.apply(0o755, is_dir=True)
        o = self.opts.owner or Owner(0, 0)
        return Meta(DIR, mode, o.uid, o.gid, mtime=self.opts.created_mtime)

    def mkdir_all(self, path: str, meta: Meta | None = None) -> str:
        """Create ``path`` and its missing parents (symlinks followed); return the real path.

        As ``mkdir`` does (and docker's copy, which makes them that way): a directory made in a setgid
        directory gets the setgid bit, and its group unless --chown gives one.
        """
        real = self.resolve(path)
        parts = [p for p in real.split("/") if p]
        cur = "/"
        for p in parts:
            parent, cur = cur, posixpath.join(cur, p)
            m = self.view.lstat(cur)
            if m is None:
                new = meta or self._dir_meta()
                pm = self.view.lstat(parent)
                if pm is not None and pm.mode & _SETGID:  # the kernel's rule for mkdir
                    gid = new.gid if self.opts.owner is not None else pm.gid
                    new = _records.replace(new, mode=new.mode | _SETGID, gid=gid)
                self.entries[cur] = OutEntry(new)
            elif m.kind != DIR:
                raise BuildError(f"cannot create directory {cur}: a file of that name exists in the image")
        return real

    def _clamp(self, t: float) -> float:
        c = self.opts.mtime_clamp
        return min(t, c) if c is not None else t

    def _final_meta(self, m: Meta, *, from_context: bool) -> Meta:
        mode = m.mode
        if self.opts.chmod is not None and m.kind != SYMLINK:
            mode = self.opts.chmod.apply(m.mode, is_dir=m.kind == DIR)
        uid, gid = m.uid, m.gid
        if self.opts.owner is not None:
            uid, gid = self.opts.owner.uid, self.opts.owner.gid
        elif from_context and self.opts.context_owner_root:
            uid = gid = 0
        kind = FILE if m.kind == HARDLINK else m.kind
        return Meta(kind, mode, uid, gid, m.size, self._clamp(m.mtime), m.linkname, m.devmajor, m.devminor)

    def put_file(self, target: str, meta: Meta, opener: Opener | None, *, replace: bool = False) -> None:
        """Write one non-directory entry at the real path ``target`` (replacing what is there).

        A directory there is an error, unless ``replace`` (archive extraction, as Docker's untar): then
        the directory and everything below it give way to the new entry.
        """
        old = self.view.lstat(target)
        if old is not None and old.kind == DIR:
            if not replace:
                raise BuildError(f"cannot replace directory {target} with a file")
            self._drop_below(target)
        self.entries[target] = OutEntry(meta, opener)

    def put_dir(self, target: str, meta: Meta, *, replace: bool = False) -> None:
        """Create or re-declare the directory ``target`` with ``meta``, its mode exactly (a copied directory
        does not inherit a setgid parent's bit); ``replace``: it may replace a non-directory."""
        old = self.view.lstat(target)
        if old is not None and old.kind != DIR and not replace:
            raise BuildError(f"cannot copy a directory onto non-directory {target}")
        self.entries[target] = OutEntry(meta)

    def _drop_below(self, target: str) -> None:
        """Forget the pending entries below ``target`` and hide the destination's (it is being replaced)."""
        prefix = target.rstrip("/") + "/"
        for p in [p for p in self.entries if p.startswith(prefix)]:
            del self.entries[p]
        self.view.hidden.add(target)

    # ------------------------------------------------------------ copying trees
    def copy_tree(self, fs: SourceFS, src: str, target: str, *, from_context: bool, rel: str = "") -> None:
        """Copy the (already resolved) source ``src`` to the real path ``target``, fsutil-style."""
        m = fs.lstat(src)
        if m is None:
            raise BuildError(f"{fs.describe(src)} not found")
        if m.kind == DIR:
            if rel:
                self.put_dir(target, self._final_meta(m, from_context=from_context))
            for name in fs.listdir(src):
                child_rel = f"{rel}/{name}" if rel else name
                if self.opts.exclude is not None and self.opts.exclude.matches(child_rel):
                    continue
                self.copy_tree(
                    fs,
                    posixpath.join(src, name),
                    posixpath.join(target, name),
                    from_context=from_context,
                    rel=child_rel,
                )
            return
        fm = self._final_meta(m, from_context=from_context)
        opener: Opener | None = None
        if fm.kind == FILE:
            opener = _opener(fs, src)
        elif fm.kind not in (SYMLINK, CHAR, BLOCK, FIFO):
            return
        self.put_file(target, fm, opener)

    def copy_source(
        self,
        fs: SourceFS,
        src: str,
        dest: str,
        *,
        dest_is_dir: bool,
        from_context: bool,
        name: str | None = None,
    ) -> None:
        """One resolved source (named ``name`` before symlinks were followed) onto the absolute ``dest``."""
        m = fs.lstat(src)
        if m is None:
            raise BuildError(f"{fs.describe(src)} not found")
        dreal = self.resolve(dest)
        dmeta = self.view.lstat(dreal)
        if m.kind == DIR:
            if dmeta is None:
                self.mkdir_all(dreal)
            self.copy_tree(fs, src, dreal, from_context=from_context)
            return
        if dest_is_dir or (dmeta is not None and dmeta.kind == DIR):
            if dmeta is None:
                self.mkdir_all(dreal)
            target = posixpath.join(dreal, posixpath.basename(name or src))
        else:
            # the final component is replaced, not followed (a symlink there is overwritten)
            target = posixpath.join(self.resolve(posixpath.dirname(dest)), posixpath.basename(dest))
            self.mkdir_all(posixpath.dirname(target))
        self.copy_tree(fs, src, target, from_context=from_context)

    def add_bytes(self, target_dir_or_file: str, data: bytes, meta: Meta) -> None:
        """A synthetic file (heredoc, download) at the real path given."""
        self.put_file(target_dir_or_file, meta, lambda: io.BytesIO(data))

    # ------------------------------------------------------------ output
    def _ancestors(self) -> dict[str, Meta]:
        out: dict[str, Meta] = {}
        for path in self.entries:
            p = posixpath.dirname(path)
            while p != "/" and p not in self.entries and p not in out:
                m = self.view.lstat(p)
                out[p] = m if m is not None and m.kind == DIR else Meta(DIR, 0o755)
                p = posixpath.dirname(p)
        return out

    def members(self) -> list[LayerMember]:
        """The planned entries (plus unchanged parent directories) in tar order."""
        allm = {**self._ancestors(), **{p: e.meta for p, e in self.entries.items()}}
        return [LayerMember(p, allm[p]) for p in sorted(allm, key=_sort_key) if p != "/"]

    def write(self, store: Store) -> tuple[Layer, list[LayerMember]]:
        """Write the layer into the store; return it with its members."""
        import tarfile  # here: a build whose steps are all cached writes no layer

        members = self.members()
        with LayerWriter(store) as w:
            for mem in members:
                info = _tarinfo(mem)
                entry = self.entries.get(mem.path)
                if info.type == tarfile.REGTYPE and entry is not None and entry.opener is not None:
                    with entry.opener() as f:
                        w.add_entry(info, _SizedReader(f, info.size, mem.path))  # type: ignore[arg-type]
                else:
                    w.add_entry(info)
        return w.result, members


def _sort_key(p: str) -> list[str]:
    return p.split("/")


def _opener(fs: SourceFS, path: str) -> Opener:
    return lambda: fs.open(path)


class _SizedReader(io.RawIOBase):
    """Exactly ``size`` bytes from ``f``; a file that changed size while building fails clearly."""

    def __init__(self, f: BinaryIO, size: int, name: str) -> None:
        self.f, self.left, self.name = f, size, name

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self.left:
            n = self.left
        data = self.f.read(n)
        if len(data) < n:
            raise BuildError(f"{self.name} changed while it was being copied (shorter than its size)")
        self.left -= len(data)
        return data


def _tarinfo(mem: LayerMember) -> tarfile.TarInfo:
    import tarfile

    m = mem.meta
    info = tarfile.TarInfo(mem.path.lstrip("/"))
    info.mode = m.mode & 0o7777
    info.uid, info.gid = m.uid, m.gid
    info.uname = info.gname = ""
    info.mtime = int(m.mtime)
    if m.kind == DIR:
        info.type = tarfile.DIRTYPE
    elif m.kind == SYMLINK:
        info.type = tarfile.SYMTYPE
        info.linkname = m.linkname
    elif m.kind == CHAR:
        info.type = tarfile.CHRTYPE
        info.devmajor, info.devminor = m.devmajor, m.devminor
    elif m.kind == BLOCK:
        info.type = tarfile.BLKTYPE
        info.devmajor, info.devminor = m.devmajor, m.devminor
    elif m.kind == FIFO:
        info.type = tarfile.FIFOTYPE
    else:
        info.type = tarfile.REGTYPE
        info.size = m.size
    return info


# ------------------------------------------------------------------ source expansion


def _resolve_wildcards(fs: SourceFS, pattern: str) -> list[str]:
    """fsutil ResolveWildcards: walk below the literal prefix, matching the rest (dirs not entered)."""
    d1, d2 = split_wildcards(pattern)
    base = resolve_path(fs, d1)
    bm = fs.lstat(base)
    if bm is None or bm.kind != DIR:
        return []
    out: list[str] = []

    def walk(d: str, rel: str) -> None:
        for name in fs.listdir(d):
            r = f"{rel}/{name}" if rel else name
            p = posixpath.join(d, name)
            if go_match(d2, r):
                out.append(p)
                continue
            m = fs.lstat(p)
            if m is not None and m.kind == DIR:
                walk(p, r)

    walk(base, "")
    return out


def expand_sources(fs: SourceFS, pattern: str) -> list[tuple[str, str]]:
    """(path as named, path with symlinks followed) for each match; [] when a wildcard matches nothing."""
    if contains_wildcards(pattern):
        return [(p, resolve_path(fs, p)) for p in _resolve_wildcards(fs, pattern)]
    p = resolve_path(fs, pattern)
    if fs.lstat(p) is None:
        raise BuildError(
            f"{fs.describe(clean(pattern))} not found",
            hint="check the path, and that .dockerignore does not exclude it",
        )
    return [(clean(pattern), p)]


def include_match(pattern: str, rel: str) -> tuple[bool, bool]:
    """(full, partial) match of ``rel`` against an include pattern with ``**`` (fsutil prefix.Match)."""
    pp = [c for c in pattern.split("/") if c and c != "."]
    rp = [c for c in rel.split("/") if c]

    def go(i: int, j: int) -> tuple[bool, bool]:
        if j == len(rp):
            if i == len(pp) or all(x == "**" for x in pp[i:]):
                return True, False
            return False, True
        if i == len(pp):
            return True, False  # below a fully matched directory
        if pp[i] == "**":
            full, part = go(i + 1, j)
            if full:
                return True, False
            f2, p2 = go(i, j + 1)
            return f2, part or p2 or True
        if go_match(pp[i], rp[j]):
            return go(i + 1, j + 1)
        return False, False

    return go(0, 0)


def iter_parents_matches(fs: SourceFS, base: str, pattern: str) -> Iterator[str]:
    """Paths below ``base`` (relative, slash-separated) fully matching ``pattern``; dirs not entered once matched."""

    def walk(d: str, rel: str) -> Iterator[str]:
        for name in fs.listdir(d):
            r = f"{rel}/{name}" if rel else name
            full, partial = include_match(pattern, r)
            if full:
                yield r
                continue
            if partial:
                m = fs.lstat(posixpath.join(d, name))
                if m is not None and m.kind == DIR:
                    yield from walk(posixpath.join(d, name), r)

    yield from walk(base, "")
