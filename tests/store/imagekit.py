"""Small deterministic test images written with the real LayerWriter + commit_image (no network)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from idpbuilder.image import Layer, LayerWriter, commit_image
from idpbuilder.oci import Descriptor
from idpbuilder.store.layout import Store

__all__ = ["BUSYBOX", "busybox_files", "make_image", "make_layer"]

BUSYBOX = Path("/bin/busybox")


def make_layer(store: Store, files: dict[str, bytes | str], *, compression: str = "gzip") -> Layer:
    """One layer holding ``files`` (path -> bytes, or str for a symlink target), directories implied, mtime 0."""
    with LayerWriter(store, compression=compression) as w:
        dirs: set[str] = set()
        for path in sorted(files):
            parts = path.strip("/").split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    w.add_entry(info)
            info = tarfile.TarInfo(path.strip("/"))
            content = files[path]
            if isinstance(content, str):
                info.type = tarfile.SYMTYPE
                info.linkname = content
                info.mode = 0o777
                w.add_entry(info)
                continue
            info.size = len(content)
            info.mode = 0o755 if path.startswith("bin/") else 0o644
            w.add_entry(info, io.BytesIO(content))
    return w.result


def make_image(
    store: Store,
    ref: str | None,
    layers: list[dict[str, bytes | str]],
    *,
    created: str | None = "2024-01-02T03:04:05Z",
    cmd: list[str] | None = None,
    compression: str = "gzip",
) -> Descriptor:
    """Commit an image with one layer per dict in ``layers``; tag it ``ref`` when given."""
    built = [make_layer(store, files, compression=compression) for files in layers]
    config: dict[str, object] = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": cmd or ["sh"],
        },
        "rootfs": {"type": "layers", "diff_ids": [str(layer.diff_id) for layer in built]},
        "history": [{"created_by": "test layer"} for _ in built],
    }
    if created is not None:
        config["created"] = created
    desc = commit_image(store, config, built)
    if ref is not None:
        store.set_ref(ref, desc)
    return desc


def busybox_files() -> dict[str, bytes | str]:
    """A runnable busybox root filesystem: /bin/busybox with sh/cat/echo/ls links, /etc/passwd, /tmp."""
    files: dict[str, bytes | str] = {
        "bin/busybox": BUSYBOX.read_bytes(),
        "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n",
        "etc/group": b"root:x:0:\n",
    }
    for applet in ("sh", "cat", "echo", "ls", "true"):
        files[f"bin/{applet}"] = "busybox"
    return files
