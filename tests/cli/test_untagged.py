"""Images without a tag (a build with no -t, a nameless archive) behave like docker's <none> images."""

from __future__ import annotations

from pathlib import Path

from fixtures.cli import CliRunner
from idpbuilder.image import Image
from idpbuilder.store.layout import Store


def _build_untagged(cli: CliRunner, tmp_path: Path) -> str:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("untagged\n")
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY a.txt /a.txt\n")
    res = cli("build", "-q", str(ctx))
    assert res.code == 0, res.stderr
    image_id = res.stdout.strip()
    assert image_id.startswith("sha256:")
    return image_id


def test_untagged_build_is_listed_and_taggable_by_id(cli: CliRunner, tmp_path: Path) -> None:
    image_id = _build_untagged(cli, tmp_path)
    short = image_id.split(":", 1)[1][:12]

    listing = cli.main("images")
    assert listing.code == 0
    row = next(line for line in listing.stdout.splitlines() if short in line)
    assert row.split()[:2] == ["<none>", "<none>"]

    assert cli.main("tag", short, "later:v1").code == 0
    store = Store.open(cli.home)
    try:
        names = [n for n, _ in store.entries()]
    finally:
        store.close()
    assert names == ["later:v1"], "tagging must replace the <none> entry"


def test_rmi_by_id_removes_an_untagged_image_and_its_blobs(cli: CliRunner, tmp_path: Path) -> None:
    image_id = _build_untagged(cli, tmp_path)
    store = Store.open(cli.home)
    try:
        desc = store.resolve(image_id)
        blob = store.blob_path(desc.digest)
    finally:
        store.close()
    assert blob.exists()
    res = cli("rmi", image_id.split(":", 1)[1][:12])  # own process: gc gets the store to itself
    assert res.code == 0, res.stderr
    assert cli.main("images", "-q").stdout.strip() == ""
    assert not blob.exists()
    assert cli.main("inspect", image_id).code == 2


def test_prune_removes_untagged_images_like_docker_image_prune(cli: CliRunner, tmp_path: Path) -> None:
    _build_untagged(cli, tmp_path)
    assert cli.main("images", "-q").stdout.strip() != ""
    res = cli("prune")
    assert res.code == 0, res.stderr
    assert cli.main("images", "-q").stdout.strip() == ""


def test_rmi_also_drops_extracted_layer_caches_no_image_needs(cli: CliRunner, tmp_path: Path) -> None:
    from fixtures.images import make_busybox_store

    make_busybox_store(cli.home)
    ctx = tmp_path / "runctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo made > /made.txt\n")
    assert cli("build", "-t", "withrun:v1", str(ctx)).code == 0
    layers = cli.home / "work" / "layers"
    extracted = {p.name for p in layers.iterdir() if not p.name.startswith(".")}
    store = Store.open(cli.home)
    try:
        base = {layer.diff_id.hex for layer in Image.load(store, store.resolve("busybox")).layers}
    finally:
        store.close()
    # busybox's layer, extracted for the RUN's rootfs, and the RUN's own layer (its promoted upper dir)
    assert len(extracted) == 2 and base < extracted

    res = cli("rmi", "withrun:v1")
    assert res.code == 0, res.stderr
    # busybox is still tagged: its extracted layer stays; the build cache record still uses the RUN layer
    assert {p.name for p in layers.iterdir()} == extracted
    res = cli("rmi", "busybox")
    assert res.code == 0, res.stderr
    assert {p.name for p in layers.iterdir()} == extracted - base
