"""Read-only file-system views used as COPY/ADD sources, scoped symlink resolution and Go-style globbing.

Every path handled here is an absolute, slash-separated path *inside* the view ("/a/b"); the view's
root is "/". Symlinks are resolved inside the view (``..`` and absolute targets never leave it), like
containerd's ``fs.RootPath``, so nothing outside a build context can ever be read.
"""

from __future__ import annotations

import errno
import io
import os
import posixpath
import stat
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from idpbuilder._records import dataclass
from idpbuilder.errors import BuildError
from idpbuilder.sandbox.fs import open_dir_in_root

__all__ = [
    "ContextFS",
    "Meta",
    "SourceFS",
    "clean",
    "contains_wildcards",
    "go_match",
    "resolve_path",
    "split_wildcards",
    "walk",
]

MAX_SYMLINKS = 255
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# O_NONBLOCK: a FIFO swapped in must not block the build; regular files ignore it
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK

# kinds
FILE, DIR, SYMLINK, CHAR, BLOCK, FIFO = "file", "dir", "symlink", "char", "block", "fifo"


@dataclass(frozen=True)
class Meta:
    """Metadata of one file-system entry (what a tar header carries)."""

    kind: str
    mode: int  # permission bits (0o7777)
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime: float = 0.0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0

    @property
    def is_dir(self) -> bool:
        return self.kind == DIR


class SourceFS(Protocol):
    """A read-only tree: the build context, another stage's rootfs, an image's rootfs."""

    def lstat(self, path: str) -> Meta | None: ...

    def listdir(self, path: str) -> list[str]: ...

    def open(self, path: str) -> BinaryIO: ...

    def describe(self, path: str) -> str: ...


def clean(path: str) -> str:
    """Go's path.Clean rooted at "/": the absolute, normalised form of ``path``."""
    p = posixpath.normpath("/" + path)
    if p.startswith("//"):
        p = "/" + p.lstrip("/")
    return p


def resolve_path(fs: SourceFS, path: str, *, follow_last: bool = True) -> str:
    """Resolve symlinks in ``path`` inside ``fs`` (never escaping its root); missing tails are kept."""
    todo = [c for c in clean(path).split("/") if c]
    todo.reverse()
    cur = "/"
    links = 0
    while todo:
        comp = todo.pop()
        if comp == ".":
            continue
        if comp == "..":
            cur = posixpath.dirname(cur) or "/"
            continue
        nxt = posixpath.join(cur, comp)
        if not todo and not follow_last:
            return nxt
        meta = fs.lstat(nxt)
        if meta is None or meta.kind != SYMLINK:
            cur = nxt
            if meta is None:
                # missing: the rest is taken literally (cleaned), like RootPath
                rest = [c for c in reversed(todo)]
                return clean(posixpath.join(cur, *rest)) if rest else cur
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise BuildError(f"too many levels of symbolic links resolving {path!r}")
        target = meta.linkname
        if target.startswith("/"):
            cur = "/"
        parts = [c for c in target.split("/") if c]
        todo.extend(reversed(parts))
    return cur


def walk(fs: SourceFS, top: str) -> Iterator[tuple[str, Meta]]:
    """Pre-order walk below ``top`` (excluded), sorted by name; symlinks are not followed."""
    for name in fs.listdir(top):
        p = posixpath.join(top, name)
        m = fs.lstat(p)
        if m is None:
            continue
        yield p, m
        if m.kind == DIR:
            yield from walk(fs, p)


# ------------------------------------------------------------------ Go filepath.Match


def contains_wildcards(name: str) -> bool:
    """True when ``name`` has an unescaped ``*``, ``?`` or ``[`` (Go fsutil's containsWildcards)."""
    i = 0
    while i < len(name):
        ch = name[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "*?[":
            return True
        i += 1
    return False


def split_wildcards(p: str) -> tuple[str, str]:
    """Split a path at the first component holding a wildcard: (literal prefix, pattern rest)."""
    parts = clean(p).split("/")[1:]
    p1: list[str] = []
    p2: list[str] = []
    found = False
    for c in parts:
        if not found and contains_wildcards(c):
            found = True
        (p2 if found else p1).append(c)
    return "/" + "/".join(p1), "/".join(p2)


def _bad(pattern: str) -> BuildError:
    return BuildError(f"syntax error in pattern {pattern!r}", hint="check the [...] classes and \\ escapes")


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    """Go's scanChunk: leading stars, then the chunk up to the next star outside a [...] class."""
    rest = pattern.lstrip("*")
    star = len(rest) != len(pattern)
    in_range = False
    i = 0
    while i < len(rest):
        c = rest[i]
        if c == "\\":
            if i + 1 < len(rest):
                i += 1
        elif c == "[":
            in_range = True
        elif c == "]":
            in_range = False
        elif c == "*" and not in_range:
            break
        i += 1
    return star, rest[:i], rest[i:]


def _get_esc(chunk: str, pattern: str) -> tuple[str, str]:
    if not chunk or chunk[0] in "-]":
        raise _bad(pattern)
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise _bad(pattern)
    r, rest = chunk[0], chunk[1:]
    if not rest:
        raise _bad(pattern)
    return r, rest


def _match_chunk(chunk: str, s: str, pattern: str) -> str | None:
    """Go's matchChunk: the rest of ``s`` after ``chunk`` matched its start, or None."""
    failed = False
    i = 0  # position in s
    while chunk:
        if not failed and i >= len(s):
            failed = True
        c = chunk[0]
        if c == "[":
            r = ""
            if not failed:
                r = s[i]
                i += 1
            chunk = chunk[1:]
            negated = chunk[:1] == "^"
            if negated:
                chunk = chunk[1:]
            matched = False
            nrange = 0
            while True:
                if chunk[:1] == "]" and nrange > 0:
                    chunk = chunk[1:]
                    break
                lo, chunk = _get_esc(chunk, pattern)
                hi = lo
                if chunk[0] == "-":
                    hi, chunk = _get_esc(chunk[1:], pattern)
                if lo <= r <= hi:
                    matched = True
                nrange += 1
            if matched == negated or r == "/":  # a class never matches the separator
                failed = True
        elif c == "?":
            if not failed:
                if s[i] == "/":
                    failed = True
                i += 1
            chunk = chunk[1:]
        else:
            if c == "\\":
                chunk = chunk[1:]
                if not chunk:
                    raise _bad(pattern)
            if not failed:
                if chunk[0] != s[i]:
                    failed = True
                i += 1
            chunk = chunk[1:]
    return None if failed else s[i:]


def go_match(pattern: str, name: str) -> bool:
    """Go's filepath.Match: ``*``/``?`` never match ``/``; BuildError on a malformed pattern.

    A port of Go's algorithm (chunks between stars, each matched at the first place it fits), so it takes
    O(len(pattern) * len(name)) time where a regular expression backtracked exponentially on ``***…a``."""
    rest = pattern
    while rest:
        star, chunk, rest = _scan_chunk(rest)
        if star and not chunk:
            return "/" not in name  # a trailing star matches the rest unless it has a separator
        t = _match_chunk(chunk, name, pattern)
        if t is not None and (not t or rest):
            name = t
            continue
        if star:
            found = False
            for i in range(len(name)):
                if name[i] == "/":
                    break
                t = _match_chunk(chunk, name[i + 1 :], pattern)
                if t is not None:
                    if not rest and t:
                        continue  # the last chunk must exhaust the name
                    name = t
                    found = True
                    break
            if found:
                continue
        while rest:  # no match: the rest of the pattern must still be well formed
            _, chunk, rest = _scan_chunk(rest)
            _match_chunk(chunk, "", pattern)
        return False
    return not name


# ------------------------------------------------------------------ the build context


class IgnoreLike(Protocol):
    def matches(self, relpath: str) -> bool: ...

    def excludes_dir_entirely(self, relpath: str) -> bool: ...


def _meta_from_stat(st: os.stat_result, link: str = "") -> Meta:
    m = st.st_mode
    if stat.S_ISDIR(m):
        kind = DIR
    elif stat.S_ISLNK(m):
        kind = SYMLINK
    elif stat.S_ISCHR(m):
        kind = CHAR
    elif stat.S_ISBLK(m):
        kind = BLOCK
    elif stat.S_ISFIFO(m):
        kind = FIFO
    else:
        kind = FILE  # regular files, and sockets (copied as empty regular files, like BuildKit)
    size = st.st_size if kind == FILE and stat.S_ISREG(m) else 0
    return Meta(
        kind=kind,
        mode=stat.S_IMODE(m),
        uid=st.st_uid,
        gid=st.st_gid,
        size=size,
        mtime=st.st_mtime,
        linkname=link,
        devmajor=os.major(st.st_rdev) if kind in (CHAR, BLOCK) else 0,
        devminor=os.minor(st.st_rdev) if kind in (CHAR, BLOCK) else 0,
    )


class ContextFS:
    """The build context directory as a SourceFS, with .dockerignore applied (ignored = absent).

    Every access walks directory file descriptors from the context root opened once, never following a
    symlink (paths given here are already resolved inside the view), so swapping a context directory for a
    symlink to elsewhere while the build runs can never lead outside: the walk meets the symlink and stops.
    """

    def __init__(self, root: Path, ignore: IgnoreLike | None = None) -> None:
        self.root = Path(os.path.realpath(root))
        self.ignore = ignore
        self._root_s = str(self.root)
        self._stat_cache: dict[str, Meta | None] = {}
        self._root_fd = os.open(self._root_s, _DIR_FLAGS)
        weakref.finalize(self, os.close, self._root_fd)

    def describe(self, path: str) -> str:
        return f"build context path {path.lstrip('/') or '.'!r}"

    def host_path(self, path: str) -> str:
        """The host path of a view path (no symlink resolution: callers resolve first)."""
        return self._root_s + clean(path) if path not in ("", "/") else self._root_s

    def _dir(self, parts: list[str]) -> int:
        """An fd of the real directory ``parts`` (OSError when missing, not a directory or a symlink)."""
        return open_dir_in_root(self._root_fd, parts, follow=False)

    def _ignored(self, path: str, st_is_dir: bool) -> bool:
        if self.ignore is None or path == "/":
            return False
        rel = path.lstrip("/")
        if not self.ignore.matches(rel):
            return False
        # an ignored directory still exists when a "!" exception may re-include something below it
        return not (st_is_dir and not self.ignore.excludes_dir_entirely(rel))

    def lstat(self, path: str) -> Meta | None:
        path = clean(path)
        if path in self._stat_cache:
            return self._stat_cache[path]
        parent = posixpath.dirname(path)
        meta: Meta | None = None
        if path == "/":
            meta = _meta_from_stat(os.fstat(self._root_fd))
        elif self.lstat(parent) is not None:
            parts = path.split("/")[1:]
            try:
                pfd = self._dir(parts[:-1])
            except OSError:
                pfd = -1  # missing, or a directory replaced meanwhile: absent, never followed
            if pfd >= 0:
                try:
                    st = os.stat(parts[-1], dir_fd=pfd, follow_symlinks=False)
                    link = os.readlink(parts[-1], dir_fd=pfd) if stat.S_ISLNK(st.st_mode) else ""
                except OSError:
                    pass
                else:
                    meta = (
                        None if self._ignored(path, stat.S_ISDIR(st.st_mode)) else _meta_from_stat(st, link)
                    )
                finally:
                    os.close(pfd)
        self._stat_cache[path] = meta
        return meta

    def listdir(self, path: str) -> list[str]:
        path = clean(path)
        try:
            fd = self._dir(path.split("/")[1:] if path != "/" else [])
        except OSError:
            return []
        try:
            names = sorted(os.listdir(fd))
        finally:
            os.close(fd)
        return [n for n in names if self.lstat(posixpath.join(path, n)) is not None]

    def open(self, path: str) -> BinaryIO:
        path = clean(path)
        parts = path.split("/")[1:] if path != "/" else []
        if not parts:
            raise BuildError(f"cannot read {self.describe(path)}: it is a directory")
        try:
            pfd = self._dir(parts[:-1])
            try:
                if not stat.S_ISREG(os.stat(parts[-1], dir_fd=pfd, follow_symlinks=False).st_mode):
                    return io.BytesIO(b"")  # sockets (and devices, FIFOs) become empty files
                fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=pfd)
            finally:
                os.close(pfd)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise BuildError(
                    f"{self.describe(path)} changed while the build read it (a symlink is now in its path)",
                    hint="do not modify the build context while a build runs",
                ) from None
            raise BuildError(f"cannot read {self.describe(path)}: {e.strerror}") from e
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return io.BytesIO(b"")  # replaced by something else since the check
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
