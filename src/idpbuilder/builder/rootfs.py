"""An image's root file system as a read-only view, built from its layer tars without unpacking them.

``RootfsIndex`` merges the members of every layer (OCI whiteouts and opaque directories applied) into
one path → metadata map; file contents are fetched from the layer that last wrote them, in one pass
per layer, into a private scratch directory. Per-layer member lists are cached by diff_id, so a
rebuild never re-reads a base image's layers.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from idpbuilder._records import dataclass
from idpbuilder.builder.fs import BLOCK, CHAR, DIR, FIFO, FILE, SYMLINK, Meta, clean
from idpbuilder.digest import VerifyingReader
from idpbuilder.errors import BuildError, IdpError
from idpbuilder.image import Layer, open_layer
from idpbuilder.owner import stamped

if TYPE_CHECKING:
    import tarfile

    from idpbuilder.store.layout import Store

# the tar reading (sandbox.tarread, tarfile) is imported where layers are read: a build whose steps are
# all cached never reads one

__all__ = ["ImageFS", "LayerMember", "read_layer_members"]

HARDLINK = "hardlink"
_WH = ".wh."
_OPAQUE = ".wh..wh..opq"
_INDEX_VERSION = 2


@dataclass(frozen=True)
class LayerMember:
    """One tar member of a layer, reduced to what the index needs."""

    path: str
    meta: Meta  # kind HARDLINK: linkname is the (absolute) target path


def _kind(info: tarfile.TarInfo) -> str:
    if info.isdir():
        return DIR
    if info.issym():
        return SYMLINK
    if info.islnk():
        return HARDLINK
    if info.ischr():
        return CHAR
    if info.isblk():
        return BLOCK
    if info.isfifo():
        return FIFO
    return FILE


def member_from_info(info: tarfile.TarInfo) -> LayerMember:
    """The LayerMember for a tar header."""
    kind = _kind(info)
    link = info.linkname
    if kind == HARDLINK:
        link = clean(link)
    return LayerMember(
        clean(info.name),
        Meta(
            kind=kind,
            mode=info.mode & 0o7777,
            uid=info.uid,
            gid=info.gid,
            size=info.size if kind == FILE else 0,
            mtime=float(info.mtime),
            linkname=link,
            devmajor=info.devmajor,
            devminor=info.devminor,
        ),
    )


def _to_json(m: LayerMember) -> list[Any]:
    x = m.meta
    return [m.path, x.kind, x.mode, x.uid, x.gid, x.size, x.mtime, x.linkname, x.devmajor, x.devminor]


def _from_json(row: list[Any]) -> LayerMember:
    return LayerMember(row[0], Meta(row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9]))


def read_layer_members(store: Store, layer: Layer) -> list[LayerMember]:
    """The members of a layer in tar order, its diff_id checked (cached by blob and diff_id in the store)."""
    key = f"{layer.diff_id.hex}-{layer.descriptor.digest.hex[:16]}"
    cache = store.path_for("build", "members") / f"{key}.json"
    try:
        doc = json.loads(cache.read_bytes())
        if doc.get("v") == _INDEX_VERSION:
            return [_from_json(r) for r in doc["members"]]
    except (FileNotFoundError, ValueError, KeyError, IndexError):
        pass
    from idpbuilder.sandbox.tarread import expansion_budget, iter_members, open_tar_stream

    out: list[LayerMember] = []
    what = layer_what(layer)
    budget = expansion_budget(layer.descriptor.size, what=what)
    with open_layer(store, layer.descriptor) as raw:
        reader = VerifyingReader(raw, layer.diff_id, what=f"{what} (uncompressed)")
        with open_tar_stream(reader, what=what) as tf:  # type: ignore[arg-type]
            for info in iter_members(tf, what=what, budget=budget):
                out.append(member_from_info(info))
        while reader.read(1 << 20):  # the diff_id covers the padding after the end-of-archive blocks
            pass
    tmp = cache.with_name(stamped(cache.name + "."))
    tmp.write_text(json.dumps({"v": _INDEX_VERSION, "members": [_to_json(m) for m in out]}))
    os.replace(tmp, cache)
    return out


def layer_what(layer: Layer) -> str:
    """How errors name a layer."""
    return f"layer {layer.descriptor.digest}"


class ImageFS:
    """A read-only SourceFS over an image's layers (lazily indexed; contents fetched on demand)."""

    def __init__(self, store: Store, layers: Iterable[Layer], *, name: str = "image") -> None:
        self.store = store
        self.layers: list[Layer] = list(layers)
        self.name = name
        # path -> (meta, layer index, ordinal of the tar member holding its content in that layer)
        self._entries: dict[str, tuple[Meta, int, int]] | None = None
        self._children: dict[str, set[str]] = {}
        self._scratch: Path | None = None
        self._fetched: dict[str, Path] = {}

    # ------------------------------------------------------------ index
    def _index(self) -> dict[str, tuple[Meta, int, int]]:
        if self._entries is None:
            self._entries = {"/": (Meta(DIR, 0o755), -1, -1)}
            self._children = {"/": set()}
            for i, layer in enumerate(self.layers):
                self._apply(i, self._members(layer))
        return self._entries

    def add_layer(self, layer: Layer, members: list[LayerMember] | None = None) -> None:
        """Stack one more layer on top (members may be given when the caller just wrote it)."""
        self.layers.append(layer)
        if self._entries is not None:
            self._apply(len(self.layers) - 1, members or self._members(layer))

    def _members(self, layer: Layer) -> list[LayerMember]:
        try:
            return read_layer_members(self.store, layer)
        except IdpError as e:
            e.message = f"{self.name}: {e.message}"  # errors name the image as well as the layer
            e.args = (e.message,)
            raise

    def _remove(self, path: str) -> None:
        assert self._entries is not None
        for child in list(self._children.pop(path, ())):
            self._remove(posixpath.join(path, child))
        if self._entries.pop(path, None) is not None and path != "/":
            parent = posixpath.dirname(path)
            self._children.get(parent, set()).discard(posixpath.basename(path))

    def _ensure_parents(self, path: str, li: int) -> None:
        assert self._entries is not None
        parent = posixpath.dirname(path)
        if parent not in self._entries or self._entries[parent][0].kind != DIR:
            if parent in self._entries:
                self._remove(parent)
            self._ensure_parents(parent, li)
            self._entries[parent] = (Meta(DIR, 0o755), li, -1)
            self._children.setdefault(parent, set())
            self._children.setdefault(posixpath.dirname(parent), set()).add(posixpath.basename(parent))

    def _apply(self, li: int, members: list[LayerMember]) -> None:
        assert self._entries is not None
        entries = self._entries
        for ordinal, m in enumerate(members):
            path = m.path
            if path == "/":
                entries["/"] = (m.meta, li, ordinal)
                continue
            base = posixpath.basename(path)
            parent = posixpath.dirname(path)
            if base == _OPAQUE:
                if parent == "/":
                    continue  # docker (overlay2) and BuildKit ignore an opaque marker on a layer's root
                for child in list(self._children.get(parent, ())):
                    cp = posixpath.join(parent, child)
                    if entries.get(cp, (None, li, -1))[1] < li:
                        self._remove(cp)
                continue
            if base.startswith(_WH):
                self._remove(posixpath.join(parent, base[len(_WH) :]))
                continue
            self._ensure_parents(path, li)
            meta = m.meta
            src_layer, src_ordinal = li, ordinal
            if meta.kind == HARDLINK:
                target = entries.get(meta.linkname)
                if target is not None and target[0].kind in (FILE, HARDLINK):
                    t = target[0]
                    content = t.linkname if t.kind == HARDLINK else meta.linkname
                    meta = Meta(HARDLINK, t.mode, t.uid, t.gid, t.size, t.mtime, content)
                    src_layer, src_ordinal = target[1], target[2]
            old = entries.get(path)
            if old is not None and (old[0].kind == DIR) != (meta.kind == DIR):
                self._remove(path)  # a directory re-declared by a later layer keeps its children
            entries[path] = (meta, src_layer, src_ordinal)
            self._children.setdefault(parent, set()).add(base)
            if meta.kind == DIR:
                self._children.setdefault(path, set())

    # ------------------------------------------------------------ SourceFS
    def describe(self, path: str) -> str:
        return f"{self.name} path {clean(path)!r}"

    def lstat(self, path: str) -> Meta | None:
        e = self._index().get(clean(path))
        if e is None:
            return None
        meta = e[0]
        if meta.kind == HARDLINK:
            return Meta(FILE, meta.mode, meta.uid, meta.gid, meta.size, meta.mtime)
        return meta

    def listdir(self, path: str) -> list[str]:
        self._index()
        return sorted(self._children.get(clean(path), ()))

    def exists(self, path: str) -> bool:
        """True when ``path`` exists (no symlink resolution)."""
        return clean(path) in self._index()

    def prefetch(self, paths: Iterable[str]) -> None:
        """Fetch the contents of regular files ``paths`` from their layers (one pass per layer)."""
        entries = self._index()
        want: dict[int, dict[int, list[str]]] = {}  # layer -> member ordinal -> paths
        total = 0
        for p in paths:
            p = clean(p)
            if p in self._fetched:
                continue
            e = entries.get(p)
            if e is None or e[0].kind not in (FILE, HARDLINK):
                continue
            if e[2] not in want.get(e[1], {}):
                total += e[0].size
            want.setdefault(e[1], {}).setdefault(e[2], []).append(p)
        if not want:
            return
        import tempfile

        from idpbuilder.sandbox.tarread import READ_ERRORS, expansion_budget

        if self._scratch is None:
            self._scratch = Path(
                tempfile.mkdtemp(prefix=stamped("rootfs-"), dir=self.store.path_for("build", "tmp"))
            )
        room = expansion_budget(0, what=f"{self.name}'s files", dest=self._scratch)
        if total > room.limit:
            raise BuildError(
                f"copying from {self.name} needs {total} bytes, more than the {room.limit} bytes{room.why}",
                hint="free disk space",
            )
        for li, members in sorted(want.items()):
            remaining = dict(members)
            layer = self.layers[li]
            what = f"{layer_what(layer)} of {self.name}"
            try:
                self._fetch_layer(layer, what, remaining)
            except OSError as e:
                raise BuildError(f"copying from {what}: {e.strerror or e}") from e
            except READ_ERRORS as e:
                raise BuildError(f"{what} is not a valid tar archive: {e or type(e).__name__}") from e
            for missing in remaining.values():
                for t in missing:
                    raise BuildError(f"{self.describe(t)}: content not found in {what}")

    def _fetch_layer(self, layer: Layer, what: str, remaining: dict[int, list[str]]) -> None:
        import shutil

        from idpbuilder.sandbox.tarread import iter_members, open_tar_stream

        assert self._scratch is not None
        with open_layer(self.store, layer.descriptor) as raw, open_tar_stream(raw, what=what) as tf:
            for ordinal, info in enumerate(iter_members(tf, what=what, budget=None)):
                targets = remaining.pop(ordinal, None)
                if targets is None:
                    continue
                if not info.isfile():
                    raise BuildError(f"{self.describe(targets[0])}: content not found in {what}")
                dest = self._scratch / f"{len(self._fetched)}"
                src = tf.extractfile(info)
                assert src is not None
                with open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                for t in targets:
                    self._fetched[t] = dest
                if not remaining:
                    break

    def open(self, path: str) -> BinaryIO:
        p = clean(path)
        if p not in self._fetched:
            self.prefetch([p])
        f = self._fetched.get(p)
        if f is None:
            raise BuildError(f"{self.describe(p)} is not a regular file")
        return open(f, "rb")

    def read_file(self, path: str, *, limit: int = 1 << 22) -> bytes | None:
        """Contents of a small regular file, or None when absent / not a file."""
        meta = self.lstat(path)
        if meta is None or meta.kind != FILE or meta.size > limit:
            return None
        with self.open(path) as f:
            return f.read()

    def close(self) -> None:
        """Remove the scratch directory holding fetched contents."""
        if self._scratch is not None:
            import shutil

            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
            self._fetched.clear()
