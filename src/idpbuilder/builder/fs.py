"""Read-only file-system views used as COPY/ADD sources, scoped symlink resolution and Go-style globbing.

Every path handled here is an absolute, slash-separated path *inside* the view ("/a/b"); the view's
root is "/". Symlinks are resolved inside the view (``..`` and absolute targets never leave it), like
containerd's ``fs.RootPath``, so nothing outside a build context can ever be read.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Protocol

from idpbuilder.errors import BuildError

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


@lru_cache(maxsize=512)
def _go_pattern(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            i += 1
            if i >= n:
                raise BuildError(f"syntax error in pattern {pattern!r}")
            out.append(re.escape(pattern[i]))
        elif c == "[":
            j = i + 1
            cls: list[str] = []
            negate = False
            if j < n and pattern[j] == "^":
                negate = True
                j += 1
            first = True
            while True:
                if j >= n:
                    raise BuildError(f"syntax error in pattern {pattern!r}")
                ch = pattern[j]
                if ch == "]" and not first:
                    break
                first = False
                if ch == "\\":
                    j += 1
                    if j >= n:
                        raise BuildError(f"syntax error in pattern {pattern!r}")
                    ch = pattern[j]
                lo = ch
                j += 1
                if j + 1 < n and pattern[j] == "-" and pattern[j + 1] != "]":
                    hi = pattern[j + 1]
                    if hi == "\\":
                        j += 1
                        if j + 1 >= n:
                            raise BuildError(f"syntax error in pattern {pattern!r}")
                        hi = pattern[j + 1]
                    if hi < lo:
                        raise BuildError(f"syntax error in pattern {pattern!r}")
                    cls.append(f"{re.escape(lo)}-{re.escape(hi)}")
                    j += 2
                else:
                    cls.append(re.escape(lo))
            body = "".join(cls)
            out.append(f"[^/{body}]" if negate else f"(?![/])[{body}]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def go_match(pattern: str, name: str) -> bool:
    """Go's filepath.Match: ``*``/``?`` never match ``/``; BuildError on a malformed pattern."""
    return _go_pattern(pattern).fullmatch(name) is not None


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
    """The build context directory as a SourceFS, with .dockerignore applied (ignored = absent)."""

    def __init__(self, root: Path, ignore: IgnoreLike | None = None) -> None:
        self.root = Path(os.path.realpath(root))
        self.ignore = ignore
        self._root_s = str(self.root)
        self._stat_cache: dict[str, Meta | None] = {}

    def describe(self, path: str) -> str:
        return f"build context path {path.lstrip('/') or '.'!r}"

    def host_path(self, path: str) -> str:
        """The host path of a view path (no symlink resolution: callers resolve first)."""
        return self._root_s + clean(path) if path not in ("", "/") else self._root_s

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
        meta: Meta | None
        if path != "/" and self.lstat(parent) is None:
            meta = None
        else:
            try:
                st = os.lstat(self.host_path(path))
            except (FileNotFoundError, NotADirectoryError):
                meta = None
            else:
                link = os.readlink(self.host_path(path)) if stat.S_ISLNK(st.st_mode) else ""
                meta = None if self._ignored(path, stat.S_ISDIR(st.st_mode)) else _meta_from_stat(st, link)
        self._stat_cache[path] = meta
        return meta

    def listdir(self, path: str) -> list[str]:
        path = clean(path)
        try:
            names = sorted(os.listdir(self.host_path(path)))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [n for n in names if self.lstat(posixpath.join(path, n)) is not None]

    def open(self, path: str) -> BinaryIO:
        host = self.host_path(clean(path))
        real = os.path.realpath(host)
        if real != self._root_s and not real.startswith(self._root_s + os.sep):
            raise BuildError(f"{self.describe(path)} points outside the build context")
        try:
            st = os.lstat(host)
            if not stat.S_ISREG(st.st_mode):
                import io

                return io.BytesIO(b"")  # sockets become empty files
            fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as e:
            raise BuildError(f"cannot read {self.describe(path)}: {e.strerror}") from e
        return os.fdopen(fd, "rb")
