"""rmi + gc: blobs nothing references go, shared and cache-referenced blobs stay; fresh blobs survive a
gc that runs while another process has the store open."""

from __future__ import annotations

import os
import time
from pathlib import Path

from imagekit import make_image, make_layer

from idpbuilder.image import Image
from idpbuilder.store.layout import Store
from idpbuilder.store.manage import prune_store, remove_images


def _blobs(store: Store) -> set[str]:
    return {p.name for p in (store.root / "blobs" / "sha256").iterdir()}


def _image_blobs(store: Store, ref: str) -> set[str]:
    image = Image.load(store, store.resolve(ref))
    return {
        image.manifest_descriptor.digest.hex,
        image.config_descriptor.digest.hex,
        *(layer.descriptor.digest.hex for layer in image.layers),
    }


def test_rmi_frees_unique_blobs_and_keeps_shared_ones(store: Store) -> None:
    base = {"base.txt": b"base layer"}
    make_image(store, "one:1", [base, {"one.txt": b"one"}])
    make_image(store, "two:1", [base, {"two.txt": b"two"}])
    one, two = _image_blobs(store, "one:1"), _image_blobs(store, "two:1")
    shared = one & two
    assert len(shared) == 1  # the base layer
    result = remove_images(store, ["one:1"])
    assert result.untagged == ["one:1"]
    assert result.blobs_removed == len(one - shared)
    left = _blobs(store)
    assert not (one - shared) & left
    assert two <= left
    # the survivor still reads back, every blob verified
    image = Image.load(store, store.resolve("two:1"))
    for layer in image.layers:
        store.read_blob(layer.descriptor.digest)


def test_untag_keeps_blobs_while_another_tag_remains(store: Store) -> None:
    make_image(store, "one:1", [{"one.txt": b"one"}])
    store.set_ref("one:2", store.resolve("one:1"))
    blobs = _image_blobs(store, "one:1")
    result = remove_images(store, ["one:1"])
    assert result.deleted == [] and result.blobs_removed == 0
    assert blobs <= _blobs(store)


def test_cache_records_keep_their_blobs_until_pruned(store: Store) -> None:
    make_image(store, "one:1", [{"one.txt": b"one"}, {"cached.txt": b"cached"}])
    cached_layer = Image.load(store, store.resolve("one:1")).layers[1].descriptor.digest
    store.cache_put("step-key", {"layer": str(cached_layer)}, [cached_layer])
    remove_images(store, ["one:1"])
    assert _blobs(store) == {cached_layer.hex}
    assert store.cache_get("step-key") == {"layer": str(cached_layer)}
    records, blobs, freed = prune_store(store, cache=True)
    assert (records, blobs) == (1, 1) and freed > 0
    assert _blobs(store) == set()


def test_gc_spares_fresh_blobs_while_the_store_is_in_use(home: Path, store: Store) -> None:
    other = Store.open(home)  # another user of the store (e.g. a build that has not tagged yet)
    try:
        fresh = make_layer(store, {"fresh.txt": b"fresh"}).descriptor.digest
        old = make_layer(store, {"old.txt": b"old"}).descriptor.digest
        two_hours_ago = time.time() - 7200
        os.utime(store.blob_path(old), (two_hours_ago, two_hours_ago))
        removed, _ = store.gc()
        assert removed == 1
        assert store.has_blob(fresh) and not store.has_blob(old)
    finally:
        other.close()
    removed, _ = store.gc()  # alone now: everything unreferenced goes
    assert removed == 1 and not store.has_blob(fresh)


def test_rmi_by_id_needs_force_with_several_tags(store: Store) -> None:
    import pytest

    from idpbuilder.errors import IdpError

    desc = make_image(store, "one:1", [{"one.txt": b"one"}])
    store.set_ref("one:2", desc)
    image_id = Image.load(store, desc).id
    with pytest.raises(IdpError, match="must be forced"):
        remove_images(store, [image_id.hex[:12]])
    assert store.lookup("one:1") is not None
    result = remove_images(store, [image_id.hex[:12]], force=True)
    assert sorted(result.untagged) == ["one:1", "one:2"]
    assert result.deleted == [desc.digest]
    assert _blobs(store) == set()


def test_rmi_reports_missing_and_still_removes_the_rest(store: Store) -> None:
    make_image(store, "one:1", [{"one.txt": b"one"}])
    make_image(store, "docker.io/library/two:latest", [{"two.txt": b"two"}])
    result = remove_images(store, ["nope:1", "one:1", "two"])  # "two" means docker.io/library/two:latest
    assert result.missing == ["nope:1"]
    assert result.untagged == ["one:1", "docker.io/library/two:latest"]
    assert store.refs() == []


def test_docker_hub_names_resolve_both_ways(store: Store) -> None:
    make_image(store, "busybox:latest", [{"a": b"a"}])  # as a docker-archive names it
    make_image(store, "docker.io/library/alpine:3", [{"b": b"b"}])  # as a pull names it
    make_image(store, "team/tool:1", [{"c": b"c"}])
    assert store.match_name("docker.io/library/busybox") == "busybox:latest"
    assert store.match_name("busybox") == "busybox:latest"
    assert store.match_name("alpine:3") == "docker.io/library/alpine:3"
    assert store.match_name("docker.io/team/tool:1") == "team/tool:1"
    assert store.lookup("index.docker.io/library/busybox:latest") is not None
    assert store.match_name("docker.io/library/team/tool:1") is None
