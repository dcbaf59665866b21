"""Read an image straight out of an OCI image layout (stdlib only, independent of the tool's own store
code) and reduce it to what the conformance run compares: the config fields and the flattened rootfs.

Flattening applies the layers in order with OCI whiteout rules (``.wh.NAME`` deletes NAME and its subtree
from lower layers, ``.wh..wh..opq`` empties a directory of lower-layer entries); hard links become regular
files with their target's content, so "stored as a hard link" and "stored twice" compare equal.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from idpbuilder.errors import NotFoundError, StoreError

__all__ = [
    "CONFIG_FIELDS",
    "Entry",
    "FlatImage",
    "config_summary",
    "flatten_layers",
    "load_layout_image",
]

REF_ANNOTATION = "org.opencontainers.image.ref.name"
_INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
# image config fields compared between builders (``Config`` members, then top-level members)
CONFIG_FIELDS = (
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "OnBuild",
    "Shell",
    "StopSignal",
    "Healthcheck",
)
TOP_FIELDS = ("os", "architecture")
IGNORED_LABELS = ("io.buildah.version",)
SMALL_FILE = 1 << 16

_TYPES = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
    tarfile.FIFOTYPE: "fifo",
}


@dataclass(frozen=True)
class Entry:
    """One path of a flattened root filesystem."""

    type: str
    mode: int
    uid: int
    gid: int
    size: int = 0
    sha256: str = ""
    link: str = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for the oracle cache)."""
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Entry:
        """Inverse of ``to_json``."""
        return cls(**d)


@dataclass(frozen=True)
class FlatImage:
    """What is compared: selected config fields plus the flattened filesystem."""

    config: dict[str, Any]
    files: dict[str, Entry]
    layer_members: list[list[str]]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for the oracle cache)."""
        return {
            "config": self.config,
            "files": {p: e.to_json() for p, e in self.files.items()},
            "layer_members": self.layer_members,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FlatImage:
        """Inverse of ``to_json``."""
        return cls(d["config"], {p: Entry.from_json(e) for p, e in d["files"].items()}, d["layer_members"])


def _norm(name: str) -> str:
    p = posixpath.normpath("/" + name).lstrip("/")
    return "" if p == "." else p


def _blob(layout: Path, digest: str) -> Path:
    algo, _, hexpart = digest.partition(":")
    p = layout / "blobs" / algo / hexpart
    if not p.is_file():
        raise StoreError(f"blob {digest} missing from layout {layout}")
    return p


def _read_json(layout: Path, digest: str) -> Any:
    return json.loads(_blob(layout, digest).read_bytes())


def _pick_manifest(layout: Path, desc: dict[str, Any], arch: str) -> dict[str, Any]:
    while desc.get("mediaType") in _INDEX_TYPES:
        index = _read_json(layout, desc["digest"])
        candidates = [
            m
            for m in index.get("manifests", [])
            if (m.get("platform") or {}).get("os", "linux") == "linux"
            and (m.get("platform") or {}).get("architecture", arch) == arch
        ] or index.get("manifests", [])
        if not candidates:
            raise NotFoundError(f"index {desc['digest']} in {layout} has no manifests")
        desc = candidates[0]
    return _read_json(layout, desc["digest"])  # type: ignore[no-any-return]


def load_layout_image(
    layout: Path, ref: str, *, arch: str = "amd64"
) -> tuple[dict[str, Any], FlatImage, dict[str, bytes]]:
    """Find ``ref`` (ref.name annotation) in an OCI layout; return (raw config, flat image, small files)."""
    index = json.loads((layout / "index.json").read_text())
    matches = [
        m for m in index.get("manifests", []) if (m.get("annotations") or {}).get(REF_ANNOTATION) == ref
    ]
    if not matches:
        names = [(m.get("annotations") or {}).get(REF_ANNOTATION) for m in index.get("manifests", [])]
        raise NotFoundError(f"reference {ref!r} not in OCI layout {layout} (has {names})")
    manifest = _pick_manifest(layout, matches[-1], arch)
    config = _read_json(layout, manifest["config"]["digest"])
    layers = [(ld["mediaType"], _blob(layout, ld["digest"])) for ld in manifest.get("layers", [])]
    files, members, contents = flatten_layers(layers)
    return config, FlatImage(config_summary(config), files, members), contents


def config_summary(config: dict[str, Any]) -> dict[str, Any]:
    """The compared subset of an image config (absent and empty values normalised to None)."""
    inner = config.get("config") or {}
    out: dict[str, Any] = {}
    for key in CONFIG_FIELDS:
        v = inner.get(key)
        if key == "Labels" and v:
            v = {k: val for k, val in v.items() if k not in IGNORED_LABELS}
        out[key] = v if v not in ({}, [], "") else None
    for key in TOP_FIELDS:
        out[key] = config.get(key) or None
    return out


def _open_tar_stream(media_type: str, path: Path) -> IO[bytes]:
    raw = open(path, "rb")
    head = raw.read(4)
    raw.seek(0)
    if media_type.endswith("+zstd") or head == b"\x28\xb5\x2f\xfd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)  # type: ignore[no-any-return]
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def _iter_members(media_type: str, path: Path) -> Iterator[tuple[tarfile.TarInfo, bytes | None]]:
    with _open_tar_stream(media_type, path) as stream, tarfile.open(fileobj=stream, mode="r|") as tf:
        for info in tf:
            data: bytes | None = None
            if info.isreg():
                f = tf.extractfile(info)
                data = f.read() if f is not None else b""
            yield info, data


def _remove_subtree(files: dict[str, Entry], path: str) -> None:
    if path == "":
        files.clear()
        return
    files.pop(path, None)
    prefix = path + "/"
    for p in [p for p in files if p.startswith(prefix)]:
        del files[p]


def flatten_layers(
    layers: list[tuple[str, Path]], *, keep: int = SMALL_FILE
) -> tuple[dict[str, Entry], list[list[str]], dict[str, bytes]]:
    """Apply (media type, blob path) layers in order.

    Returns (path -> Entry, member names per layer, content of regular files up to ``keep`` bytes).
    """
    files: dict[str, Entry] = {}
    contents: dict[str, bytes] = {}
    members: list[list[str]] = []
    for media_type, path in layers:
        names: list[str] = []
        adds: list[tuple[str, Entry, bytes | None]] = []
        whiteouts: list[str] = []
        opaque: list[str] = []
        for info, data in _iter_members(media_type, path):
            name = _norm(info.name)
            names.append(name + ("/" if info.isdir() and name else ""))
            base = posixpath.basename(name)
            parent = posixpath.dirname(name)
            if base == ".wh..wh..opq":
                opaque.append(parent)
                continue
            if base.startswith(".wh."):
                whiteouts.append(posixpath.join(parent, base[4:]))
                continue
            if info.islnk():
                target = _norm(info.linkname)
                hit = next(((e, c) for n, e, c in reversed(adds) if n == target), None)
                if hit is None and target in files:
                    hit = (files[target], contents.get(target))
                if hit is None:
                    raise StoreError(f"hard link {name} -> {info.linkname}: target missing")
                src = hit[0]
                entry = Entry("file", info.mode & 0o7777, info.uid, info.gid, src.size, src.sha256)
                adds.append((name, entry, hit[1]))
                continue
            kind = _TYPES.get(info.type, f"other:{info.type!r}")
            entry = Entry(
                kind,
                info.mode & 0o7777,
                info.uid,
                info.gid,
                len(data) if data is not None else 0,
                hashlib.sha256(data).hexdigest() if data is not None else "",
                info.linkname if info.issym() else "",
            )
            adds.append((name, entry, data if data is not None and len(data) <= keep else None))
        for d in opaque:
            prefix = d + "/" if d else ""
            for p in [p for p in files if p.startswith(prefix) and p != d]:
                del files[p]
        for w in whiteouts:
            _remove_subtree(files, w)
        for name, entry, data in adds:
            old = files.get(name)
            if old is not None and old.type == "dir" and entry.type != "dir":
                _remove_subtree(files, name)
            files[name] = entry
            if data is not None:
                contents[name] = data
            else:
                contents.pop(name, None)
        members.append(names)
    files.pop("", None)
    contents = {p: c for p, c in contents.items() if p in files}
    return files, members, contents
