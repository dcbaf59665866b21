"""`images`, `tag`, `rmi`, `inspect` and `prune` through the real CLI (in-process main(argv) and subprocess)."""

from __future__ import annotations

import datetime as _dt
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.cli import CliRunner
from fixtures.images import make_busybox_store
from idpbuilder.cli.render import human_duration, human_size, render_table
from idpbuilder.image import Image
from idpbuilder.store.catalog import parse_created
from idpbuilder.store.layout import Store
from store.imagekit import make_image

APP = "127.0.0.1:5000/team/app:v1"


def _now_iso(minutes_ago: float) -> str:
    t = _dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=minutes_ago)
    return t.strftime("%Y-%m-%dT%H:%M:%S.123456789Z")


@pytest.fixture
def home(idp_home: Path) -> Path:
    """busybox (docker.io/library/busybox:latest, also tagged busybox:1.36) and an app image built 5 minutes ago."""
    busybox = make_busybox_store(idp_home)
    store = Store.open(idp_home)
    try:
        store.set_ref("busybox:1.36", busybox)
        make_image(store, APP, [{"app/hello.txt": b"hello\n"}], created=_now_iso(5.5))
    finally:
        store.close()
    return idp_home


def _table(out: str) -> list[list[str]]:
    return [re.split(r" {3,}", line.rstrip()) for line in out.splitlines()]


def _ids(home: Path) -> dict[str, tuple[str, str, int]]:
    """ref -> (config digest, manifest digest, size) computed independently of the command."""
    store = Store.open(home)
    try:
        out = {}
        for name, desc in store.refs():
            image = Image.load(store, desc)
            size = image.config_descriptor.size + sum(layer.descriptor.size for layer in image.layers)
            out[name] = (str(image.id), str(desc.digest), size)
        return out
    finally:
        store.close()


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (523, "523B"),
        (1000, "1kB"),
        (1234, "1.23kB"),
        (1_036_242, "1.04MB"),
        (77_800_000, "77.8MB"),
        (124_000_000, "124MB"),
        (3_500_000_000, "3.5GB"),
    ],
)
def test_human_size_is_dockers(size: int, text: str) -> None:
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.5, "Less than a second"),
        (1, "1 second"),
        (45, "45 seconds"),
        (61, "About a minute"),
        (300, "5 minutes"),
        (3600, "About an hour"),
        (5 * 3600, "5 hours"),
        (3 * 86400, "3 days"),
        (21 * 86400, "3 weeks"),
        (90 * 86400, "3 months"),
        (3 * 365 * 86400, "3 years"),
    ],
)
def test_human_duration_is_dockers(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_parse_created_accepts_go_nanoseconds() -> None:
    dt = parse_created("2026-11-21T10:00:00.123456789Z")
    assert dt is not None and dt.microsecond == 123456 and dt.utcoffset() == _dt.timedelta(0)
    assert parse_created("not a date") is None and parse_created(None) is None


def test_render_table_pads_like_tabwriter() -> None:
    assert render_table(["A", "TAG", "SIZE"], [["x", "latest", "1B"]]) == (
        "A         TAG       SIZE\nx         latest    1B\n"
    )


def test_images_table(home: Path, cli: CliRunner) -> None:
    code, out, err = cli.main("images")
    assert code == 0, err
    rows = _table(out)
    assert rows[0] == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    ids = _ids(home)
    app_id, _, app_size = ids[APP]
    bb_id, _, bb_size = ids["docker.io/library/busybox:latest"]
    assert rows[1] == ["127.0.0.1:5000/team/app", "v1", app_id[7:19], "5 minutes ago", human_size(app_size)]
    # Docker Hub library names are shown short, like docker does; both busybox tags share one id
    assert sorted(rows[2:]) == [
        ["busybox", "1.36", bb_id[7:19], rows[2][3], human_size(bb_size)],
        ["busybox", "latest", bb_id[7:19], rows[2][3], human_size(bb_size)],
    ]
    assert rows[2][3].endswith("years ago")


def test_images_quiet_lists_each_id_once(home: Path, cli: CliRunner) -> None:
    out = cli.main("images", "-q").check().stdout
    ids = _ids(home)
    assert sorted(out.split()) == sorted({v[0][7:19] for v in ids.values()})
    full = cli.main("images", "-q", "--no-trunc").check().stdout
    assert sorted(full.split()) == sorted({v[0] for v in ids.values()})


def test_images_digests_column(home: Path, cli: CliRunner) -> None:
    rows = _table(cli.main("images", "--digests").check().stdout)
    assert rows[0] == ["REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE"]
    assert rows[1][2] == _ids(home)[APP][1]


def test_images_json_has_full_fields(home: Path, cli: CliRunner) -> None:
    data = json.loads(cli.main("images", "--format", "json").check().stdout)
    by_name = {d["Name"]: d for d in data}
    assert set(by_name) == {APP, "busybox:1.36", "docker.io/library/busybox:latest"}
    app = by_name[APP]
    config_digest, manifest_digest, size = _ids(home)[APP]
    assert app["ID"] == config_digest and app["Digest"] == manifest_digest and app["Size"] == size
    assert app["Repository"] == "127.0.0.1:5000/team/app" and app["Tag"] == "v1"
    assert app["Platform"] == "linux/amd64" and app["CreatedSince"] == "5 minutes ago"
    assert app["Created"].endswith("Z")


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("busybox", {"busybox:1.36", "docker.io/library/busybox:latest"}),
        ("docker.io/library/busybox", {"busybox:1.36", "docker.io/library/busybox:latest"}),
        ("busybox:latest", {"docker.io/library/busybox:latest"}),
        ("127.0.0.1:5000/team/app", {APP}),
        ("127.0.0.1:5000/team/*", {APP}),
        ("busybox:1.*", {"busybox:1.36"}),
        ("nothing", set()),
    ],
)
def test_images_filter(home: Path, cli: CliRunner, pattern: str, expected: set[str]) -> None:
    data = json.loads(cli.main("images", "--format", "json", pattern).check().stdout)
    assert {d["Name"] for d in data} == expected


def test_images_empty_store_prints_header(cli: CliRunner) -> None:
    assert cli.main("images").check().stdout.split() == [
        "REPOSITORY",
        "TAG",
        "IMAGE",
        "ID",
        "CREATED",
        "SIZE",
    ]


def test_images_imports_no_rich_and_no_image_model(home: Path) -> None:
    code = (
        "import sys; from idpbuilder.cli.main import main\n"
        "try:\n    main(['--store', sys.argv[1], 'images'])\nexcept SystemExit:\n    pass\n"
        "bad = [m for m in ('rich', 'idpbuilder.image.layer', 'tarfile', 'idpbuilder.cluster', 'ssl', 'tempfile', 'shutil') if m in sys.modules]\n"
        "sys.stderr.write(repr(bad))\n"
    )
    p = subprocess.run([sys.executable, "-c", code, str(home)], capture_output=True, text=True, timeout=60)
    assert p.stderr.strip() == "[]"
    assert "busybox" in p.stdout


def test_tag_then_images_and_lookup(home: Path, cli: CliRunner) -> None:
    cli.main("tag", "busybox", "mybox:v2").check()
    data = json.loads(cli.main("images", "--format", "json", "mybox").check().stdout)
    assert [d["Name"] for d in data] == ["mybox:v2"]
    assert data[0]["ID"] == _ids(home)["docker.io/library/busybox:latest"][0]
    # by short image id, too
    short = data[0]["ID"][7:19]
    cli.main("tag", short, "byid").check()
    assert "byid:latest" in _ids(home)


def test_tag_errors(home: Path, cli: CliRunner) -> None:
    r = cli.main("tag", "nope:1", "x:1")
    assert r.code == 2 and "idpbuilder images" in r.stderr and "Traceback" not in r.stderr
    r = cli.main("tag", "busybox", "Bad/Name")
    assert r.code == 2 and "lower case" in r.stderr
    r = cli.main("tag", "busybox", "x@sha256:" + "0" * 64)
    assert r.code == 2 and "digest" in r.stderr


def test_rmi_outputs_and_exit_codes(home: Path, cli: CliRunner) -> None:
    ids = _ids(home)
    r = cli.main("rmi", APP).check()
    assert r.stdout.splitlines() == [f"Untagged: {APP}", f"Deleted: {ids[APP][1]}"]
    assert "Freed" in r.stderr
    r = cli.main("rmi", "nope:1")
    assert r.code == 2
    assert "Hint: list local images with `idpbuilder images`" in r.stderr
    bb = ids["busybox:1.36"][0][7:19]
    r = cli.main("rmi", bb)
    assert r.code == 1 and "must be forced" in r.stderr and "rmi -f" in r.stderr
    r = cli.main("rmi", "-f", bb).check()
    assert sorted(r.stdout.splitlines()[:2]) == [
        "Untagged: busybox:1.36",
        "Untagged: docker.io/library/busybox:latest",
    ]
    assert cli.main("images", "-q").check().stdout == ""
    assert not any((home / "store/blobs/sha256").iterdir())


def test_rmi_subprocess_has_no_traceback(home: Path, cli: CliRunner) -> None:
    r = cli("rmi", "nope:1", APP)
    assert r.code == 2 and "Traceback" not in r.stderr
    assert f"Untagged: {APP}" in r.stdout  # the existing one is still removed


def test_inspect_json(home: Path, cli: CliRunner) -> None:
    data = json.loads(cli.main("inspect", APP).check().stdout)
    assert len(data) == 1
    info = data[0]
    config_digest, manifest_digest, size = _ids(home)[APP]
    assert info["Id"] == config_digest and info["Digest"] == manifest_digest and info["Size"] == size
    assert info["RepoTags"] == [APP]
    assert info["Manifest"]["config"]["digest"] == config_digest
    assert [la["Digest"] for la in info["Layers"]] == [la["digest"] for la in info["Manifest"]["layers"]]
    assert [la["DiffID"] for la in info["Layers"]] == info["ImageConfig"]["rootfs"]["diff_ids"]
    assert info["Os"] == "linux" and info["Architecture"] == "amd64"
    assert json.loads(cli.main("inspect", "--format", "json", "busybox").check().stdout)[0]["Config"][
        "Cmd"
    ] == ["sh"]
    r = cli.main("inspect", "nope")
    assert r.code == 2 and "idpbuilder images" in r.stderr


def test_prune_reports_what_it_freed(home: Path, cli: CliRunner) -> None:
    store = Store.open(home)
    try:
        make_image(store, None, [{"dangling.txt": b"x" * 5000}])  # committed but never tagged
    finally:
        store.close()
    r = cli.main("prune").check()
    lines = r.stdout.splitlines()
    assert lines[0] == "Deleted blobs: 3"  # layer, config, manifest
    assert lines[1].startswith("Total reclaimed space: ") and lines[1] != "Total reclaimed space: 0B"
    r = cli.main("prune", "--all").check()
    assert r.stdout.splitlines() == [
        "Deleted build cache records: 0",
        "Deleted blobs: 0",
        "Total reclaimed space: 0B",
    ]
    assert len(_ids(home)) == 3


def test_images_help_still_lists_the_remote_options(cli: CliRunner) -> None:
    out = cli.main("images", "--help").check().stdout
    assert "--remote" in out and "--registry" in out and "--digests" in out
    r = cli.main("images", "--no-such-flag")
    assert r.code == 2 and "No such option" in r.stderr


def test_images_lists_an_index_and_a_damaged_entry(home: Path, cli: CliRunner) -> None:
    from idpbuilder.image import commit_image
    from idpbuilder.oci import MT_OCI_INDEX

    store = Store.open(home)
    try:
        app = Image.load(store, store.resolve(APP))
        arm = commit_image(store, {**app.config, "architecture": "arm64", "variant": "v8"}, app.layers)
        index = store.put_json(
            {
                "schemaVersion": 2,
                "mediaType": MT_OCI_INDEX,
                "manifests": [arm.to_json(), app.manifest_descriptor.to_json()],
            },
            MT_OCI_INDEX,
        )
        store.set_ref("multi:1", index)
        broken = make_image(store, "broken:1", [{"b.txt": b"broken"}])
        store.blob_path(broken.digest).unlink()
    finally:
        store.close()
    data = {d["Name"]: d for d in json.loads(cli.main("images", "--format", "json").check().stdout)}
    size = app.config_descriptor.size + sum(la.descriptor.size for la in app.layers)
    assert data["multi:1"]["ID"] == str(index.digest)  # docker (containerd store) shows the index digest
    assert data["multi:1"]["Size"] == size and data["multi:1"]["Platform"] == "linux/amd64"
    assert data["broken:1"]["Size"] == 0 and data["broken:1"]["Created"] is None
    assert cli.main("images").check().stdout.count("\n") == 6
