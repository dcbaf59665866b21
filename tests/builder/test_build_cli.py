"""``idpbuilder build`` through the CLI: output streams, exit codes, -q/--iidfile, tags, --push, pulls."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from idpbuilder.store.layout import Store


def _ctx(tmp_path: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for k, v in (files or {}).items():
        (ctx / k).parent.mkdir(parents=True, exist_ok=True)
        (ctx / k).write_text(v)
    return ctx


def test_quiet_iidfile_and_tags(cli: Any, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM scratch\nCOPY app.sh /app.sh\n", {"app.sh": "echo hi"})
    iid = tmp_path / "iid"
    r = cli.main(
        "build",
        "-q",
        "--iidfile",
        str(iid),
        "-t",
        "demo:v1",
        "--tag",
        "reg.example:5000/team/demo:2",
        str(ctx),
    )
    r.check()
    image_id = r.stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    assert iid.read_text() == image_id
    store = Store.open(cli.home)
    try:
        names = {n for n, _ in store.refs()}
        assert {"demo:v1", "reg.example:5000/team/demo:2"} <= names
        manifest = store.read_json(store.resolve("demo:v1").digest)
        assert manifest["config"]["digest"] == image_id
    finally:
        store.close()
    # progress goes to stderr, nothing but the id on stdout; -q silences progress
    r2 = cli.main("build", "--progress", "plain", "-f", str(ctx / "Dockerfile"), "-t", "demo:v1", str(ctx))
    r2.check()
    assert r2.stdout == ""
    # FROM scratch is not a step (BuildKit): the COPY is step 1 of 1
    assert "[1/1] COPY app.sh /app.sh" in r2.stderr and "CACHED" in r2.stderr


def test_context_option_and_dockerfile_alias(cli: Any, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM scratch\nCOPY a /a\n", {"a": "1"})
    other = tmp_path / "docker" / "Custom.dockerfile"
    other.parent.mkdir()
    other.write_text("FROM scratch\nCOPY a /b\n")
    cli.main("build", "--context", str(ctx), "--dockerfile", str(other), "-t", "alias:1", "-q").check()


def test_missing_dockerfile_and_context_exit_2(cli: Any, tmp_path: Path) -> None:
    r = cli.main("build", str(tmp_path / "nope"))
    assert r.code == 2 and "context" in r.stderr and "Hint:" in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    r = cli.main("build", str(empty))
    assert r.code == 2 and "Dockerfile" in r.stderr and "Traceback" not in r.stderr


def test_parse_error_exit_1_with_line(cli: Any, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM scratch\nCOPY a /a\nFOO bar\n", {"a": "1"})
    r = cli.main("build", str(ctx))
    assert r.code == 1
    assert "Dockerfile:3" in r.stderr and "Traceback" not in r.stderr


def test_unknown_target_and_failed_copy(cli: Any, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM scratch AS build\nCOPY missing /x\n")
    r = cli.main("build", "--target", "bulid", str(ctx))
    assert r.code != 0 and 'target stage "bulid" could not be found (did you mean build?)' in r.stderr
    r = cli.main("build", str(ctx))
    assert r.code == 1 and "Dockerfile:2" in r.stderr and "missing" in r.stderr


def test_build_arg_from_environment(cli: Any, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM scratch\nARG A\nARG B\nLABEL a=$A b=$B\n")
    cli.main(
        "build",
        "-q",
        "-t",
        "args:1",
        "--build-arg",
        "A=1",
        "--build-arg",
        "B",
        str(ctx),
        env={"B": "from-env"},
    ).check()
    store = Store.open(cli.home)
    try:
        m = store.read_json(store.resolve("args:1").digest)
        cfg = json.loads((store.root / "blobs/sha256" / m["config"]["digest"][7:]).read_bytes())
        assert cfg["config"]["Labels"] == {"a": "1", "b": "from-env"}
    finally:
        store.close()


def test_from_and_copy_from_pulled_image_then_push(
    cli: Any, tmp_path: Path, seeded_registries: Any, registry_plain: Any
) -> None:
    reg = seeded_registries["plain"]
    base = f"{reg.host}/library/busybox:latest"
    ctx = _ctx(
        tmp_path,
        f"FROM {base}\nCOPY --from={base} /bin/busybox /copied-busybox\nCOPY app.sh /app.sh\n",
        {"app.sh": "echo hi"},
    )
    dest = f"{registry_plain.host}/buildtest/app:1"
    r = cli.main("build", "--push", "-t", dest, "--progress", "quiet", str(ctx))
    r.check()
    assert f"{dest}@sha256:" in r.stdout
    out = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{dest}"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert len(json.loads(out.stdout)["Layers"]) == 3
