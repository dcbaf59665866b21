"""Test images for the registry tests, written with the real LayerWriter + commit_image (no network)."""

from __future__ import annotations

import os
import random
from pathlib import Path

from idpbuilder.image import LayerWriter, commit_image
from idpbuilder.oci import MT_OCI_INDEX, Descriptor, Platform
from idpbuilder.store.layout import Store


def make_image(home: Path, ref: str, layer_sizes: list[int], *, seed: int = 0) -> Descriptor:
    """An image of ``len(layer_sizes)`` gzip layers, each one incompressible file of that many bytes."""
    store = Store.open(home)
    rng = random.Random(seed)
    layers = []
    src = home / "layer-src"
    for i, size in enumerate(layer_sizes):
        d = src / f"l{i}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"data{i}.bin").write_bytes(rng.randbytes(size))
        with LayerWriter(store, level=1) as w:
            w.add_tree(d, uid=0, gid=0, mtime=1_600_000_000)
        layers.append(w.result)
    plat = Platform.host()
    cfg = {
        "architecture": plat.architecture,
        "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [str(x.diff_id) for x in layers]},
    }
    desc = commit_image(store, cfg, layers)
    store.set_ref(ref, desc)
    store.close()
    return desc


def make_index(home: Path, ref: str, manifest_ref: str) -> Descriptor:
    """An OCI index holding the (already stored) manifest ``manifest_ref`` for this host's platform."""
    store = Store.open(home)
    m = store.resolve(manifest_ref)
    child = Descriptor(
        m.media_type, m.digest, m.size, platform=Platform("linux", Platform.host().architecture)
    )
    desc = store.put_json(
        {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": [child.to_json()]}, MT_OCI_INDEX
    )
    store.set_ref(ref, desc)
    store.close()
    return desc


def unique(prefix: str) -> str:
    """A repository-safe unique name."""
    return f"{prefix}-{os.getpid()}-{random.randrange(1 << 30):x}"
