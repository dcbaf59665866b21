"""Build-cache keys: a running chain over the parent image and every layer step (each with what it uses),
plus the content digest of COPY/ADD sources (file contents hashed once per inode state and remembered)."""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
from pathlib import Path
from typing import Any

from idpbuilder.builder.copy import Matcher
from idpbuilder.builder.fs import DIR, FILE, SourceFS, walk
from idpbuilder.owner import stamped

__all__ = ["FileHashCache", "chain_next", "source_digest"]

CACHE_VERSION = "idpbuilder-build-v1"


def chain_next(parent: str, step: Any) -> str:
    """The cache key of a step: sha256 over the parent key and the step's canonical description."""
    h = hashlib.sha256()
    h.update(CACHE_VERSION.encode())
    h.update(parent.encode())
    h.update(json.dumps(step, sort_keys=True, separators=(",", ":"), default=str).encode())
    return "sha256:" + h.hexdigest()


class FileHashCache:
    """sha256 of host files, remembered by (device, inode, size, mtime_ns, ctime_ns) in a JSON file
    (ctime: a rewrite that restores the mtime, as ``cp -p`` or ``tar x`` do, still changes it)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._data: dict[str, str] = {}
        self._dirty = False
        if path is not None:
            try:
                self._data = json.loads(path.read_text())
            except (FileNotFoundError, ValueError):
                self._data = {}

    def digest(self, host_path: str) -> str:
        """sha256 hex of the file at ``host_path``."""
        st = os.stat(host_path)
        key = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"
        got = self._data.get(key)
        if got is not None:
            return got
        h = hashlib.sha256()
        with open(host_path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        self._data[key] = h.hexdigest()
        self._dirty = True
        return self._data[key]

    def save(self) -> None:
        """Persist new entries (atomically); keeps the file bounded."""
        if self.path is None or not self._dirty:
            return
        if len(self._data) > 200_000:
            self._data = dict(list(self._data.items())[-100_000:])
        tmp = self.path.with_name(stamped(self.path.name + "."))
        tmp.write_text(json.dumps(self._data))
        os.replace(tmp, self.path)
        self._dirty = False


def _entry(fs: SourceFS, path: str, rel: str, hashes: FileHashCache | None) -> list[Any]:
    m = fs.lstat(path)
    if m is None:
        return [rel, None]
    row: list[Any] = [rel, m.kind, m.mode, m.uid, m.gid, m.linkname, m.devmajor, m.devminor]
    if m.kind == FILE:
        row.append(m.size)
        host = getattr(fs, "host_path", None)
        if host is not None and hashes is not None:
            try:
                row.append(hashes.digest(host(path)))
            except OSError:
                row.append("socket")
        else:
            h = hashlib.sha256()
            with fs.open(path) as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            row.append(h.hexdigest())
    return row


def source_digest(
    fs: SourceFS, roots: list[str], *, exclude: Matcher | None = None, hashes: FileHashCache | None = None
) -> str:
    """Content digest of the trees at ``roots`` (view paths): names, metadata and file contents."""
    h = hashlib.sha256()
    for root in roots:
        h.update(json.dumps(_entry(fs, root, root, hashes)).encode())
        m = fs.lstat(root)
        if m is None or m.kind != DIR:
            continue
        for path, _ in walk(fs, root):
            rel = posixpath.relpath(path, root)
            if exclude is not None and any(exclude.matches(r) for r in _prefixes(rel)):
                continue
            h.update(json.dumps(_entry(fs, path, rel, hashes)).encode())
    return "sha256:" + h.hexdigest()


def _prefixes(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]
