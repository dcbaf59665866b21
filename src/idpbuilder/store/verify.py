"""Checking the store: index.json validation, damaged blobs named with the images that use them, and the
whole-store check behind ``prune --verify``.

Nothing here imports the ``Store`` class (it imports this module); functions take the store as an argument.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idpbuilder._records import dataclass, field
from idpbuilder.digest import Digest
from idpbuilder.errors import DigestMismatchError, StoreError, UsageError

if TYPE_CHECKING:
    from idpbuilder.store.layout import Store

__all__ = [
    "StoreCheck",
    "bad_index",
    "blob_problem",
    "check_store",
    "damaged_blob",
    "images_using",
    "index_problem",
]

_BLOCK = 1 << 20
_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}


def _json_type(v: Any) -> str:
    return "a boolean" if isinstance(v, bool) else _JSON_TYPES.get(type(v), "null")


def bad_index(path: Path, problem: str) -> StoreError:
    """The error for an index.json this tool cannot use (it is then never rewritten)."""
    return StoreError(
        f"the store index {path} is damaged: {problem}",
        hint=f"restore it from a backup, or move it aside (mv {path} {path}.bad) and pull or build the images "
        "again; the blobs stay in the store",
    )


def index_problem(data: Any) -> str | None:
    """What is wrong with a parsed index.json (None when it is a usable OCI image index)."""
    if not isinstance(data, dict):
        return f"it is {_json_type(data)}, not a JSON object"
    manifests = data.get("manifests", [])
    if not isinstance(manifests, list):
        return f'"manifests" is {_json_type(manifests)}, not a list'
    for i, m in enumerate(manifests):
        where = f"manifests[{i}]"
        if not isinstance(m, dict):
            return f"{where} is {_json_type(m)}, not an object"
        digest = m.get("digest")
        if not isinstance(digest, str):
            return f"{where} has no digest"
        try:
            Digest.parse(digest)
        except UsageError:
            return f"{where} has an invalid digest {digest[:80]!r}"
        if not isinstance(m.get("mediaType", ""), str):
            return f'{where} has a "mediaType" that is not a string'
        size = m.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            return f"{where} has no valid size"
        ann = m.get("annotations")
        if ann is not None and (
            not isinstance(ann, dict) or not all(isinstance(v, str) for v in ann.values())
        ):
            return f'{where} has "annotations" that are not strings'
        if m.get("platform") is not None and not isinstance(m["platform"], dict):
            return f'{where} has a "platform" that is not an object'
    return None


def blob_problem(path: Path, digest: Digest, size: int | None = None) -> str | None:
    """Hash the file: None when it holds ``digest`` (and ``size`` bytes), else what is wrong."""
    h = digest.hasher()
    n = 0
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_BLOCK):
                h.update(chunk)
                n += len(chunk)
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return f"unreadable: {e.strerror or e}"
    if size is not None and n != size:
        return f"{n} bytes, expected {size}"
    if h.hexdigest() != digest.hex:
        return f"its content has digest {digest.algorithm}:{h.hexdigest()}"
    return None


def _children(store: Store, digest: Digest, seen: set[Digest]) -> None:
    """``digest`` and every blob below it (manifests read unverified: this runs on the error path)."""
    if digest in seen:
        return
    seen.add(digest)
    try:
        path = store.blob_path(digest)
        if path.stat().st_size > 4 << 20:
            return
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return
    if not isinstance(doc, dict):
        return
    refs: list[Any] = [*(doc.get("manifests") or []), doc.get("config"), *(doc.get("layers") or [])]
    for r in refs:
        if isinstance(r, dict) and isinstance(r.get("digest"), str):
            with contextlib.suppress(UsageError):
                _children(store, Digest.parse(r["digest"]), seen)


def images_using(store: Store, digest: Digest) -> list[str]:
    """The names (untagged images: their digest) of the images whose manifests reach blob ``digest``."""
    names: list[str] = []
    with contextlib.suppress(StoreError):
        for name, desc in store.entries():
            seen: set[Digest] = set()
            _children(store, desc.digest, seen)
            if digest in seen:
                names.append(name or str(desc.digest))
    return sorted(set(names))


def damaged_blob(store: Store, digest: Digest, detail: str, *, what: str = "blob") -> DigestMismatchError:
    """The error for a stored blob whose bytes are wrong, naming the images that use it and the way out."""
    names = images_using(store, digest)
    of = f" of {', '.join(names[:3])}{' …' if len(names) > 3 else ''}" if names else ""
    again = f"`idpbuilder pull {names[0]}`" if names else "pull"
    return DigestMismatchError(
        f"stored {what} {digest}{of} is damaged ({detail})",
        hint=f"fetch it again with {again} (a pull replaces damaged blobs) or rebuild the image; "
        "`idpbuilder prune --verify` checks the whole store",
    )


@dataclass
class StoreCheck:
    """What ``check_store`` found: blobs checked, damaged (removed when repairing) and missing blobs."""

    blobs: int = 0
    bytes: int = 0
    damaged: dict[Digest, str] = field(default_factory=dict)
    missing: set[Digest] = field(default_factory=set)
    affected: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.missing


def check_store(store: Store, *, repair: bool = True) -> StoreCheck:
    """Hash every blob (digest = file name) and check every image's blobs are present; with ``repair``,
    damaged blobs are removed (a pull or build puts them back). ``affected`` names the images hit."""
    out = StoreCheck()
    for algo_dir in sorted((store.root / "blobs").iterdir()):
        if not algo_dir.is_dir():
            continue
        for p in sorted(algo_dir.iterdir()):
            try:
                d = Digest.parse(f"{algo_dir.name}:{p.name}")
            except UsageError:
                continue
            problem = blob_problem(p, d)
            out.blobs += 1
            with contextlib.suppress(OSError):
                out.bytes += p.stat().st_size
            if problem is not None and problem != "missing":
                out.damaged[d] = problem
    affected: set[str] = set()
    for name, desc in store.entries():
        seen: set[Digest] = set()
        _children(store, desc.digest, seen)
        label = name or str(desc.digest)
        for d in seen:
            if d in out.damaged:
                affected.add(label)
            elif not store.blob_path(d).is_file():
                out.missing.add(d)
                affected.add(label)
    if repair:
        for d in out.damaged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(store.blob_path(d))
    out.affected = sorted(affected)
    return out
