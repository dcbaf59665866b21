"""``StoreSource`` finds the one image a push names without building a descriptor for every store entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from regkit import make_image

from idpbuilder.errors import NotFoundError, UsageError
from idpbuilder.registry.source import StoreSource
from idpbuilder.store.layout import Store


def test_store_source_reads_only_the_named_entry(idp_home: Path) -> None:
    desc = make_image(idp_home, "example.com/team/app:v1", [500])
    other = make_image(idp_home, "plain-name", [300], seed=1)  # stored as typed (no :latest)
    index_path = idp_home / "store" / "index.json"
    index = json.loads(index_path.read_text())
    # an entry whose manifest is not in the store: a full scan of the store would have to read it
    index["manifests"].insert(
        0,
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + "e" * 64,
            "size": 9,
        },
    )
    index_path.write_text(json.dumps(index))
    store = Store.open(idp_home)
    try:
        assert StoreSource(store, "example.com/team/app:v1").root.digest == desc.digest
        assert StoreSource(store, "plain-name").root.digest == other.digest
        with pytest.raises((NotFoundError, UsageError)):  # the full lookup runs (and trips)
            StoreSource(store, "example.com/team/absent:v1")
    finally:
        store.close()


def test_store_source_falls_back_to_the_store_lookup(idp_home: Path) -> None:
    desc = make_image(idp_home, "docker.io/library/busybox:latest", [200])
    store = Store.open(idp_home)
    try:
        # Docker Hub short form and an id prefix are the store's business, not the fast path's
        assert StoreSource(store, "busybox").root.digest == desc.digest
        assert StoreSource(store, desc.digest.hex[:12]).root.digest == desc.digest
        with pytest.raises(NotFoundError):
            StoreSource(store, "absent:v1")
    finally:
        store.close()
