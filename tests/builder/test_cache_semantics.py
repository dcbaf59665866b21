"""The layer cache hits and misses where BuildKit's does: content and mode count, mtime alone does not; a
build arg or ENV invalidates the steps that use it (RUN sees them all in its environment) and no others;
metadata (LABEL) invalidates nothing; the base image's digest and .dockerignore count (the target
platform: test_platform.py)."""

from __future__ import annotations

import os
from pathlib import Path

from builder.stepkit import build_steps as _build
from idpbuilder.store.layout import Store


def test_content_and_mode_miss_mtime_alone_hits(tmp_path: Path) -> None:
    home, ctx = tmp_path / "home", tmp_path / "ctx"
    ctx.mkdir()
    f = ctx / "a"
    f.write_text("one")
    df = "FROM scratch\nCOPY a /a\n"
    assert _build(home, ctx, df)[0] == {"COPY a /a": False}
    os.utime(f, (1, 1))  # mtime only
    assert _build(home, ctx)[0] == {"COPY a /a": True}
    f.chmod(0o755)
    assert _build(home, ctx)[0] == {"COPY a /a": False}
    # same size, mtime restored afterwards (cp -p, tar x): the content still counts
    st = f.stat()
    f.write_text("two")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert _build(home, ctx)[0] == {"COPY a /a": False}


def test_build_args_and_env_invalidate_only_the_steps_that_use_them(
    busybox_home: Path, tmp_path: Path
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a").write_text("a")
    df = "FROM busybox\nARG V=1\nENV E=1\nLABEL l=1\nCOPY a /a\nRUN echo run > /r\n"
    first, _ = _build(busybox_home, ctx, df)
    assert not any(first.values())
    # an undeclared build arg is not used by anything: all cached
    again, _ = _build(busybox_home, ctx, build_args={"UNUSED": "x"})
    assert again == {"FROM busybox": False, "COPY a /a": True, "RUN echo run > /r": True}
    # the declared ARG reaches RUN's environment (BuildKit): the RUN misses, the COPY does not
    hits, _ = _build(busybox_home, ctx, build_args={"V": "2"})
    assert hits == {"FROM busybox": False, "COPY a /a": True, "RUN echo run > /r": False}
    # so does ENV
    hits, _ = _build(busybox_home, ctx, df.replace("ENV E=1", "ENV E=2"))
    assert hits["COPY a /a"] is True and hits["RUN echo run > /r"] is False
    # a label is metadata: nothing is rebuilt, and the image has the new label
    hits, result = _build(busybox_home, ctx, df.replace("LABEL l=1", "LABEL l=2"))
    assert hits["COPY a /a"] is True and hits["RUN echo run > /r"] is True
    store = Store.open(busybox_home)
    try:
        cfg = store.read_json(result.image_id)
    finally:
        store.close()
    assert cfg["config"]["Labels"] == {"l": "2"}
    # an ENV a COPY expands does count for that COPY
    hits, _ = _build(busybox_home, ctx, "FROM busybox\nENV D=/x\nCOPY a $D\n")
    hits, _ = _build(busybox_home, ctx, "FROM busybox\nENV D=/y\nCOPY a $D\n")
    assert hits == {"FROM busybox": False, "COPY a $D": False}


def test_base_image_retagged_to_another_digest_misses(tmp_path: Path) -> None:
    home = tmp_path / "home"
    base_ctx, ctx = tmp_path / "base", tmp_path / "ctx"
    base_ctx.mkdir()
    (base_ctx / "b").write_text("v1")
    _build(home, base_ctx, "FROM scratch\nCOPY b /b\n", tags=("base:1",))
    ctx.mkdir()
    (ctx / "a").write_text("a")
    df = "FROM base:1\nCOPY a /a\n"
    assert _build(home, ctx, df)[0]["COPY a /a"] is False
    assert _build(home, ctx)[0]["COPY a /a"] is True
    (base_ctx / "b").write_text("v2")
    _build(home, base_ctx, tags=("base:1",))  # base:1 now names another image
    assert _build(home, ctx)[0]["COPY a /a"] is False


def test_dockerignore_changes(tmp_path: Path) -> None:
    home, ctx = tmp_path / "home", tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "app.py").write_text("print()")
    (ctx / "notes.log").write_text("1")
    (ctx / ".dockerignore").write_text("*.log\n.dockerignore\nDockerfile\n")
    df = "FROM scratch\nCOPY . /src\n"
    assert _build(home, ctx, df)[0] == {"COPY . /src": False}
    (ctx / "notes.log").write_text("2")  # ignored: no effect
    assert _build(home, ctx)[0] == {"COPY . /src": True}
    (ctx / ".dockerignore").write_text(".dockerignore\nDockerfile\n")  # the log is now sent
    assert _build(home, ctx)[0] == {"COPY . /src": False}
    (ctx / ".dockerignore").write_text("*.log\n!notes.log\n.dockerignore\nDockerfile\n")  # same set
    assert _build(home, ctx)[0] == {"COPY . /src": True}
