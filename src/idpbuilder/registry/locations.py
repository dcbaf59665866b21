"""A small cache of which repositories of a registry are known to hold a blob (for cross-repo mounts).

Kept as one JSON file under the store's work directory; written atomically, merged on save, capped.
Losing it is harmless: it only saves uploads.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from idpbuilder.digest import Digest
from idpbuilder.owner import stamped
from idpbuilder.store.private_dirs import private_mkdir

__all__ = ["BlobLocations"]

_MAX_REPOS_PER_BLOB = 8
_MAX_BLOBS_PER_REGISTRY = 20000


class BlobLocations:
    """``registry -> digest -> [repository …]`` (most recent first)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._data: dict[str, dict[str, list[str]]] = self._load() if path else {}
        self._dirty: dict[str, dict[str, list[str]]] = {}
        self._lock = threading.Lock()

    def _load(self) -> dict[str, dict[str, list[str]]]:
        assert self.path is not None
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def repos(self, registry: str, digest: Digest) -> list[str]:
        """Repositories of ``registry`` believed to hold ``digest``."""
        with self._lock:
            return list(self._data.get(registry, {}).get(str(digest), []))

    def record(self, registry: str, repository: str, digests: Iterable[Digest]) -> None:
        """Remember that ``repository`` holds ``digests``."""
        with self._lock:
            for d in digests:
                known = self._data.get(registry, {}).get(str(d), [])
                if known[:1] == [repository]:
                    continue  # already the first place to mount it from: nothing to save
                for table in (self._data, self._dirty):
                    repos = table.setdefault(registry, {}).setdefault(str(d), [])
                    if repository in repos:
                        repos.remove(repository)
                    repos.insert(0, repository)
                    del repos[_MAX_REPOS_PER_BLOB:]

    def save(self) -> None:
        """Merge new records into the file (atomic replace); errors are ignored."""
        if self.path is None or not self._dirty:
            return
        with self._lock:
            merged = self._load()
            for reg, blobs in self._dirty.items():
                table = merged.setdefault(reg, {})
                for d, repos in blobs.items():
                    old = [r for r in table.get(d, []) if r not in repos]
                    table[d] = (repos + old)[:_MAX_REPOS_PER_BLOB]
                if len(table) > _MAX_BLOBS_PER_REGISTRY:
                    for k in list(table)[: len(table) - _MAX_BLOBS_PER_REGISTRY]:
                        del table[k]
            import tempfile

            with contextlib.suppress(OSError):
                private_mkdir(self.path.parent)
                fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=stamped(".locations-"))
                try:
                    with os.fdopen(fd, "w") as f:
                        json.dump(merged, f, separators=(",", ":"))
                    os.replace(tmp, self.path)
                except OSError:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
            self._data = merged
            self._dirty = {}
