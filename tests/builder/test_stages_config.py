"""Image config, history, ARG/ENV rules, multi-stage builds, --target, ONBUILD and the layer cache."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from idpbuilder.errors import BuildError, UsageError

BuildFn = Callable[..., Any]


def test_scratch_config_and_history(build: BuildFn) -> None:
    b = build("FROM scratch\nENV foo=bar\n", {})
    cfg = b.config()
    assert cfg["os"] == "linux" and cfg["architecture"]
    assert cfg["config"]["WorkingDir"] == "/"
    assert "foo=bar" in cfg["config"]["Env"]
    assert any(e.startswith("PATH=") for e in cfg["config"]["Env"])
    assert cfg["rootfs"] == {"type": "layers", "diff_ids": []}
    assert len(cfg["history"]) == 1
    assert "ENV foo=bar" in cfg["history"][0]["created_by"]
    assert cfg["history"][0]["empty_layer"] is True


def test_history_and_layers(build: BuildFn) -> None:
    b = build(
        'FROM scratch\nLABEL lbl=val\nCOPY foo2 foo3\nWORKDIR /\nEXPOSE 5000 1234/udp 2375\nCMD ["sh"]\n',
        {"foo2": "x"},
    )
    cfg = b.config()
    hist = cfg["history"]
    assert [h["created_by"] for h in hist] == [
        "LABEL lbl=val",
        "COPY foo2 foo3 # buildkit",
        "WORKDIR /",
        "EXPOSE [1234/udp 2375/tcp 5000/tcp]",
        'CMD ["sh"]',
    ]
    assert [h.get("empty_layer", False) for h in hist] == [True, False, True, True, True]
    assert len(cfg["rootfs"]["diff_ids"]) == 1
    assert all(h["created"] for h in hist)


def test_expose_label_user_volume_stopsignal_healthcheck(build: BuildFn) -> None:
    b = build(
        """FROM scratch
ARG PORTS="3000 4000/udp"
EXPOSE $PORTS
EXPOSE 5000
LABEL foo=bar "with space"="v 1"
USER 1000:1000
VOLUME /data ["/cache"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://localhost/ || exit 1
MAINTAINER someone
""",
        {},
        labels={"bar": "baz"},
    )
    c = b.config()
    cc = c["config"]
    assert set(cc["ExposedPorts"]) == {"3000/tcp", "4000/udp", "5000/tcp"}
    assert cc["Labels"] == {"foo": "bar", "with space": "v 1", "bar": "baz"}
    assert cc["User"] == "1000:1000"
    assert cc["StopSignal"] == "SIGINT"
    assert cc["Healthcheck"]["Test"] == ["CMD-SHELL", "curl -f http://localhost/ || exit 1"]
    assert cc["Healthcheck"]["Interval"] == 5_000_000_000 and cc["Healthcheck"]["Retries"] == 3
    assert c["author"] == "someone"


def test_entrypoint_resets_inherited_cmd_and_uses_shell(build: BuildFn) -> None:
    b = build('FROM scratch AS base\nCMD ["test"]\n\nFROM base\nSHELL ["ls"]\nENTRYPOINT my entrypoint\n', {})
    cc = b.config()["config"]
    assert "Cmd" not in cc or cc["Cmd"] is None
    assert cc["Entrypoint"] == ["ls", "my entrypoint"]
    b2 = build('FROM scratch\nCMD ["a"]\nENTRYPOINT ["b"]\n', {})
    assert b2.config()["config"]["Cmd"] == ["a"]
    b3 = build("FROM scratch\nENTRYPOINT foo bar\n", {})
    assert b3.config()["config"]["Entrypoint"] == ["/bin/sh", "-c", "foo bar"]


def test_args_global_override_and_required_default(build: BuildFn, tmp_path: Path) -> None:
    df = 'FROM scratch\nARG FOO\nARG BAR=${FOO:?"foo missing"}\nENV BAR=$BAR\n'
    with pytest.raises(BuildError, match="foo missing"):
        build(df, {})
    assert "BAR=123" in build(df, {}, build_args={"FOO": "123"}).config()["config"]["Env"]
    assert "BAR=7" in build(df, {}, build_args={"BAR": "7"}).config()["config"]["Env"]
    # a global ARG is visible in a stage only when redeclared; build args override its default
    b = build(
        "ARG tag=one\nARG other=x\nFROM scratch AS s1\nARG tag\nENV t=$tag o=$other\n",
        {},
        build_args={"tag": "two"},
    )
    env = b.config()["config"]["Env"]
    assert "t=two" in env and "o=" in env


def test_platform_args_and_stage_names(build: BuildFn, tmp_path: Path) -> None:
    b = build(
        "FROM scratch AS build-linux\nCOPY foo bar\nFROM build-${TARGETOS}\nARG TARGETARCH\nENV arch=$TARGETARCH\n"
        "COPY foo2 bar2\n",
        {"foo": "d0", "foo2": "d1"},
    )
    root = b.unpack(tmp_path / "u")
    assert (root / "bar").read_text() == "d0" and (root / "bar2").read_text() == "d1"
    assert any(e.startswith("arch=") and len(e) > 5 for e in b.config()["config"]["Env"])


def test_target_builds_only_needed_stages(build: BuildFn, tmp_path: Path) -> None:
    df = """FROM scratch AS staGE0
COPY foo /foo
FROM nosuchimage.invalid/never:pulled AS unused
COPY bar /bar
FROM scratch AS Stage1
COPY --from=stage0 /foo /baz
FROM scratch
COPY --from=1 /bar /bax
"""
    b = build(df, {"foo": "foo-contents", "bar": "b"}, target="stage1")
    root = b.unpack(tmp_path / "u")
    assert (root / "baz").read_text() == "foo-contents" and not (root / "bax").exists()
    with pytest.raises(
        UsageError, match=r'target stage "stag1" could not be found \(did you mean stage1\?\)'
    ):
        build(df, {"foo": "x", "bar": "y"}, target="stag1")


def test_copy_from_later_stage_fails(build: BuildFn) -> None:
    with pytest.raises(BuildError, match="needs to be defined before current stage"):
        build("FROM scratch\nCOPY --from=build /d2 /\nFROM scratch AS build\nCOPY foo /d2\n", {"foo": "x"})


def test_no_stages(build: BuildFn) -> None:
    with pytest.raises(BuildError, match="no stages|FROM"):
        build("ARG foo=bar\n", {})


def test_onbuild_triggers_run_in_child(build: BuildFn, tmp_path: Path) -> None:
    b = build(
        "FROM scratch AS parent\nONBUILD COPY foo /from-trigger\nONBUILD ENV TRIGGERED=1\n"
        "FROM parent\nCOPY bar /bar\n",
        {"foo": "f", "bar": "b"},
    )
    root = b.unpack(tmp_path / "u")
    assert (root / "from-trigger").read_text() == "f"
    cc = b.config()["config"]
    assert "TRIGGERED=1" in cc["Env"]
    assert not cc.get("OnBuild")
    parent = build("FROM scratch\nONBUILD RUN echo hi\n", {})
    assert parent.config()["config"]["OnBuild"] == ["RUN echo hi"]


def test_workdir_created_and_relative(build: BuildFn, tmp_path: Path) -> None:
    b = build("FROM scratch\nWORKDIR /foo\nWORKDIR bar\nWORKDIR /\n", {})
    root = b.unpack(tmp_path / "u")
    assert (root / "foo/bar").is_dir()
    assert b.config()["config"]["WorkingDir"] == "/"


def test_source_date_epoch(build: BuildFn) -> None:
    b = build("FROM scratch\nCOPY foo /\nENV a=b\n", {"foo": "x"}, source_date_epoch=1_700_000_000)
    cfg = b.config()
    assert cfg["created"] == "2023-11-14T22:13:20Z"
    assert {h["created"] for h in cfg["history"]} == {"2023-11-14T22:13:20Z"}


def test_cache_hit_miss_and_no_cache(build: BuildFn, tmp_path: Path) -> None:
    ctx = tmp_path / "cachectx"
    files = {"a": "1", "b": "2", "dir/c": "3"}
    df = "FROM scratch\nCOPY a /a\nENV X=1\nCOPY dir /dir\nCOPY b /b\n"
    first = build(df, files, context=ctx)
    assert first.result.cached == 0
    t0 = time.monotonic()
    second = build(df, {}, context=ctx)
    assert time.monotonic() - t0 < 1.0
    assert second.result.cached == 3  # the three COPY layers
    assert second.result.image_id == first.result.image_id
    (ctx / "dir/c").write_text("changed")
    third = build(df, {}, context=ctx)
    # /a stays cached; the changed COPY and everything after it are rebuilt
    assert third.result.cached == 1
    assert third.result.image_id != first.result.image_id
    fourth = build(df, {}, context=ctx, no_cache=True)
    assert fourth.result.cached == 0


def test_cache_key_depends_on_build_args(build: BuildFn, tmp_path: Path) -> None:
    ctx = tmp_path / "argctx"
    df = "FROM scratch\nARG V=1\nCOPY a /a-$V\n"  # a COPY's key holds the build args it uses
    build(df, {"a": "x"}, context=ctx)
    again = build(df, {}, context=ctx, build_args={"V": "2"})
    assert again.result.cached == 0


def test_onbuild_copy_from_stage_not_otherwise_needed(build: BuildFn, tmp_path: Path) -> None:
    b = build(
        "FROM scratch AS src\nCOPY foo /in/file\nFROM scratch AS base\nONBUILD COPY --from=src /in/file /out/foo\n"
        "FROM base AS mid\nFROM scratch\nCOPY --from=mid /out/foo /bar\n",
        {"foo": "12"},
    )
    assert (b.unpack(tmp_path / "u") / "bar").read_text() == "12"


def test_lowercase_dockerfile_found(build: BuildFn, tmp_path: Path) -> None:
    from idpbuilder.builder import default_dockerfile

    ctx = tmp_path / "lower"
    ctx.mkdir()
    (ctx / "dockerfile").write_text("FROM scratch\n")
    assert default_dockerfile(ctx) == ctx / "dockerfile"
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    assert default_dockerfile(ctx) == ctx / "Dockerfile"
