"""``--platform`` (any os/arch, as BuildKit): a base image of another platform is used with a warning
(BuildKit's InvalidBaseImagePlatform), the image is labelled with the requested platform, and the platform
is part of every layer's cache key."""

from __future__ import annotations

from pathlib import Path

from builder.stepkit import StepRecorder as _Hits
from builder.stepkit import build_steps as _build
from idpbuilder.builder import Builder, BuildOptions
from idpbuilder.oci import Platform
from idpbuilder.store.layout import Store


def test_platform_counts(busybox_home: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a").write_text("a")
    arm = Platform.parse("linux/arm64")
    for df in ("FROM scratch\nCOPY a /a\n", "FROM busybox\nCOPY a /a\n"):
        assert _build(busybox_home, ctx, df)[0]["COPY a /a"] is False
        assert _build(busybox_home, ctx, platform=arm)[0]["COPY a /a"] is False
        hits, result = _build(busybox_home, ctx, platform=arm)
        assert hits["COPY a /a"] is True
        store = Store.open(busybox_home)
        try:
            assert store.read_json(result.image_id)["architecture"] == "arm64"
        finally:
            store.close()
        assert _build(busybox_home, ctx)[0]["COPY a /a"] is True  # the host platform's layer is kept


def test_base_of_another_platform_warns(busybox_home: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\n")
    rec = _Hits()
    store = Store.open(busybox_home)
    try:
        opts = BuildOptions(context=ctx, platform=Platform.parse("linux/arm64"))
        Builder(store, opts, reporter=rec).build()
    finally:
        store.close()
    assert rec.warnings == [
        "Dockerfile:1: base image busybox is linux/amd64, not the requested linux/arm64/v8"
    ]
