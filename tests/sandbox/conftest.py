"""Sandbox fixtures: a session store holding the busybox image, and helpers to read layers back."""

from __future__ import annotations

import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.images import make_busybox_store
from idpbuilder.image import Image, Layer, open_layer
from idpbuilder.store import Store

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, overlayfs, mknod)")
needs_runtime = pytest.mark.skipif(
    shutil.which("runc") is None and shutil.which("crun") is None, reason="needs runc or crun"
)


@pytest.fixture(scope="session")
def bb_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An IDPBUILDER_HOME whose store holds the busybox image (shared by the whole session)."""
    home = tmp_path_factory.mktemp("sandbox-home")
    make_busybox_store(home)
    return home


@pytest.fixture
def store(bb_home: Path) -> Iterator[Store]:
    s = Store.open(bb_home)
    yield s
    s.close()


@pytest.fixture
def base_layers(store: Store) -> list[Layer]:
    return list(Image.load(store, store.resolve("busybox:latest")).layers)


def layer_members(store: Store, layer: Layer) -> dict[str, tarfile.TarInfo]:
    """name -> TarInfo of every entry of a stored layer, in tar order."""
    with open_layer(store, layer.descriptor) as raw, tarfile.open(fileobj=raw, mode="r|") as tf:
        return {m.name: m for m in tf}


def layer_file(store: Store, layer: Layer, name: str) -> bytes:
    """The content of one regular file in a stored layer."""
    with open_layer(store, layer.descriptor) as raw, tarfile.open(fileobj=raw, mode="r|") as tf:
        for m in tf:
            if m.name == name:
                f = tf.extractfile(m)
                assert f is not None
                return f.read()
    raise KeyError(name)
