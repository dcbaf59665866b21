"""`save` and `load`: our archives are read by skopeo and podman; we read skopeo's and our own; every blob
is verified, and a damaged archive fails with exit 1 and a hint, never a traceback."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.cli import CliRunner, hermetic_env
from fixtures.images import BUSYBOX_REF, make_busybox_store
from idpbuilder.image import Image, LayerWriter, commit_image, open_layer
from idpbuilder.image.archive import DOCKER_ARCHIVE, OCI_ARCHIVE
from idpbuilder.image.archive_load import archive_format, load_archive
from idpbuilder.oci import MT_OCI_INDEX, Platform
from idpbuilder.store.layout import Store
from store.imagekit import make_image

APP = "127.0.0.1:5000/team/app:v1"
HAS_SKOPEO = shutil.which("skopeo") is not None
HAS_PODMAN = shutil.which("podman") is not None and shutil.which("runc") is not None


def _skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def home(idp_home: Path) -> Path:
    """busybox plus an app image on top of it (cat /app/hello.txt)."""
    make_busybox_store(idp_home)
    store = Store.open(idp_home)
    try:
        base = Image.load(store, store.resolve(BUSYBOX_REF))
        with LayerWriter(store) as w:
            info = tarfile.TarInfo("app/hello.txt")
            info.size = 6
            info.mode = 0o644
            d = tarfile.TarInfo("app")
            d.type, d.mode = tarfile.DIRTYPE, 0o755
            w.add_entry(d)
            w.add_entry(info, io.BytesIO(b"hello\n"))
        layers = [*base.layers, w.result]
        config = dict(base.config)
        config["config"] = {**config["config"], "Cmd": ["cat", "/app/hello.txt"]}
        config["rootfs"] = {"type": "layers", "diff_ids": [str(la.diff_id) for la in layers]}
        store.set_ref(APP, commit_image(store, config, layers))
    finally:
        store.close()
    return idp_home


def _digests(home: Path) -> dict[str, str]:
    store = Store.open(home)
    try:
        return {n: str(d.digest) for n, d in store.refs()}
    finally:
        store.close()


def _image(home: Path, ref: str) -> Image:
    store = Store.open(home)
    try:
        return Image.load(store, store.resolve(ref))
    finally:
        store.close()


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as t:
        return {m.name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()}  # type: ignore[union-attr]


def _rewrite(src: Path, dst: Path, change: dict[str, bytes | None]) -> None:
    """Copy a tar, replacing (or dropping, for None) the named members."""
    with tarfile.open(src) as t, tarfile.open(dst, "w") as out:
        for m in t.getmembers():
            if m.name in change:
                data = change[m.name]
                if data is None:
                    continue
                m.size = len(data)
                out.addfile(m, io.BytesIO(data))
            else:
                out.addfile(m, t.extractfile(m) if m.isfile() else None)


# ------------------------------------------------------------------------------------------ save


def test_save_docker_archive_layout(home: Path, cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "app.tar"
    r = cli.main("save", "-o", str(out), APP, "busybox").check()
    assert "Wrote docker-archive" in r.stderr and r.stdout == ""
    files = _members(out)
    manifest = json.loads(files["manifest.json"])
    app = _image(home, APP)
    assert manifest[0]["RepoTags"] == [APP]
    assert manifest[1]["RepoTags"] == ["docker.io/library/busybox:latest"]
    assert manifest[0]["Config"] == f"blobs/sha256/{app.id.hex}"
    assert manifest[0]["Layers"] == [f"blobs/sha256/{la.descriptor.digest.hex}" for la in app.layers]
    assert json.loads(files["repositories"])[APP.rsplit(":", 1)[0]] == {
        "v1": app.layers[-1].descriptor.digest.hex
    }
    # it is an OCI layout as well, named with full references
    index = json.loads(files["index.json"])
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]] == [
        APP,
        BUSYBOX_REF,
    ]
    assert files["oci-layout"] == b'{"imageLayoutVersion":"1.0.0"}'
    assert archive_format(out) == OCI_ARCHIVE
    # saving twice gives the same bytes
    again = tmp_path / "again.tar"
    cli.main("save", "-o", str(again), APP, "busybox").check()
    assert again.read_bytes() == out.read_bytes()


@pytest.mark.skipif(not HAS_SKOPEO, reason="skopeo not installed")
def test_skopeo_reads_our_docker_archive(home: Path, cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "app.tar"
    cli.main("save", "-o", str(out), APP).check()
    p = _skopeo("inspect", f"docker-archive:{out}")
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    app = _image(home, APP)
    assert info["Layers"] == [str(la.diff_id) for la in app.layers]  # layers decompressed by skopeo
    p = _skopeo("inspect", "--config", f"docker-archive:{out}")
    assert json.loads(p.stdout)["config"]["Cmd"] == ["cat", "/app/hello.txt"]
    # copy it into an OCI layout: content intact
    dest = tmp_path / "layout"
    p = _skopeo("copy", f"docker-archive:{out}", f"oci:{dest}:x")
    assert p.returncode == 0, p.stderr
    # a multi-image archive: skopeo picks images by name
    multi = tmp_path / "multi.tar"
    cli.main("save", "-o", str(multi), APP, "busybox").check()
    p = _skopeo("inspect", f"docker-archive:{multi}:docker.io/library/busybox:latest")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["Layers"] == [str(_image(home, BUSYBOX_REF).layers[0].diff_id)]


@pytest.mark.skipif(not HAS_SKOPEO, reason="skopeo not installed")
def test_skopeo_reads_our_oci_archive(home: Path, cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "app-oci.tar"
    cli.main("save", "--format", "oci-archive", "-o", str(out), APP).check()
    assert "manifest.json" not in _members(out)
    p = _skopeo("inspect", f"oci-archive:{out}:{APP}")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["Digest"] == _digests(home)[APP]  # the manifest is kept byte for byte


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[list[str]]:
    """podman with private storage and the settings this sandbox needs (see notes/tools-on-this-machine.md)."""
    conf = tmp_path / "containers.conf"
    conf.write_text(
        '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\nnetns = "none"\n'
        '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
    )
    os.environ["CONTAINERS_CONF"] = str(conf)
    runroot = tempfile.mkdtemp(prefix="idpb-pm-", dir="/tmp")  # podman refuses a runroot over 50 characters
    try:
        yield ["podman", "--root", str(tmp_path / "pm-root"), "--runroot", runroot, "--storage-driver", "vfs"]
    finally:
        shutil.rmtree(runroot, ignore_errors=True)


@pytest.fixture(autouse=True)
def _restore_containers_conf() -> Iterator[None]:
    saved = os.environ.get("CONTAINERS_CONF")
    yield None
    if saved is None:
        os.environ.pop("CONTAINERS_CONF", None)
    else:
        os.environ["CONTAINERS_CONF"] = saved


@pytest.mark.skipif(not HAS_PODMAN, reason="podman/runc not installed")
def test_podman_loads_and_runs_our_docker_archive(
    home: Path, cli: CliRunner, tmp_path: Path, podman: list[str]
) -> None:
    out = tmp_path / "two.tar"
    cli.main("save", "-o", str(out), APP, "busybox").check()
    p = subprocess.run([*podman, "load", "-i", str(out)], capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    assert f"Loaded image: {APP}" in p.stdout and "Loaded image: docker.io/library/busybox:latest" in p.stdout
    p = subprocess.run([*podman, "run", "--rm", APP], capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "hello\n"
    p = subprocess.run(
        [*podman, "images", "--format", "{{.ID}}", APP], capture_output=True, text=True, timeout=60
    )
    assert _image(home, APP).id.hex.startswith(p.stdout.strip())


@pytest.mark.skipif(not HAS_PODMAN, reason="podman/runc not installed")
def test_podman_loads_our_oci_archive(home: Path, cli: CliRunner, tmp_path: Path, podman: list[str]) -> None:
    out = tmp_path / "one-oci.tar"
    cli.main("save", "--format", "oci-archive", "-o", str(out), APP).check()
    p = subprocess.run([*podman, "load", "-i", str(out)], capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    assert APP in p.stdout


def test_save_to_stdout(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "stdout.tar"
    with open(out, "wb") as f:
        p = subprocess.run(
            [sys.executable, "-m", "idpbuilder", "save", APP],
            stdout=f,
            stderr=subprocess.PIPE,
            env=hermetic_env(home),
            timeout=120,
        )
    assert p.returncode == 0, p.stderr
    assert json.loads(_members(out)["manifest.json"])[0]["RepoTags"] == [APP]


def test_save_errors(home: Path, cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "x.tar"
    r = cli.main("save", "-o", str(out), APP, "nope:1")
    assert r.code == 2 and "idpbuilder images" in r.stderr
    assert not out.exists() and not list(tmp_path.glob(".x.tar.*"))  # nothing half-written is left
    r = cli.main("save", "-o", str(tmp_path / "missing-dir" / "x.tar"), APP)
    assert r.code == 2 and "does not exist" in r.stderr


def test_docker_archive_of_a_multi_platform_index(idp_home: Path, cli: CliRunner, tmp_path: Path) -> None:
    store = Store.open(idp_home)
    store_layer_digests: list[str] = []
    try:
        manifests = []
        for arch in ("arm64", "amd64"):
            desc = make_image(store, None, [{f"{arch}.txt": arch.encode()}])
            image = Image.load(store, desc)
            config = {**image.config, "architecture": arch}
            if arch == "arm64":
                config["variant"] = "v8"
            manifests.append(commit_image(store, config, image.layers))
            store_layer_digests.append(image.layers[0].descriptor.digest.hex)
        index = store.put_json(
            {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": [m.to_json() for m in manifests]},
            MT_OCI_INDEX,
        )
        store.set_ref("multi:1", index)
    finally:
        store.close()
    docker_tar, oci_tar = tmp_path / "d.tar", tmp_path / "o.tar"
    cli.main("save", "-o", str(docker_tar), "--platform", "linux/arm64", "multi:1").check()
    entry = json.loads(_members(docker_tar)["manifest.json"])[0]
    arm_layer = store_layer_digests[0]
    assert entry["Layers"] == [f"blobs/sha256/{arm_layer}"]
    config = json.loads(_members(docker_tar)[entry["Config"]])
    assert config["architecture"] == "arm64"
    # the OCI archive keeps the whole index; loading it back restores the same digest
    cli.main("save", "--format", "oci-archive", "-o", str(oci_tar), "multi:1").check()
    other = tmp_path / "other-home"
    other.mkdir()
    store = Store.open(other)
    try:
        loaded = load_archive(store, oci_tar)
        assert [str(x.descriptor.digest) for x in loaded] == [str(index.digest)]
        assert (
            Image.load(store, store.resolve("multi:1"), platform=Platform.parse("linux/arm64")).config[
                "architecture"
            ]
            == "arm64"
        )
    finally:
        store.close()


# ------------------------------------------------------------------------------------------ load


def _fresh(tmp_path: Path, name: str = "fresh") -> CliRunner:
    h = tmp_path / name
    h.mkdir()
    return CliRunner(h)


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_round_trip_keeps_every_digest(home: Path, cli: CliRunner, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "rt.tar"
    cli.main("save", "--format", fmt, "-o", str(out), APP, "busybox").check()
    fresh = _fresh(tmp_path)
    r = fresh.main("load", "-i", str(out)).check()
    assert r.stdout.splitlines() == [f"Loaded image: {APP}", f"Loaded image: {BUSYBOX_REF}"]
    assert "Copied blob" in r.stderr
    assert _digests(fresh.home) == {k: v for k, v in _digests(home).items() if k in (APP, BUSYBOX_REF)}
    # -q: names only, nothing on stderr; loading again is idempotent
    r = fresh.main("load", "-q", "-i", str(out)).check()
    assert r.stderr == "" and len(r.stdout.splitlines()) == 2


@pytest.mark.skipif(not HAS_SKOPEO, reason="skopeo not installed")
def test_load_skopeo_docker_archive(home: Path, tmp_path: Path) -> None:
    """skopeo writes the classic layout: <diffid>.tar layers, symlinked layer.tar dirs, uncompressed."""
    out = tmp_path / "skopeo.tar"
    p = _skopeo("copy", f"oci:{home / 'store'}:{APP}", f"docker-archive:{out}:skopeo/app:v2")
    assert p.returncode == 0, p.stderr
    assert archive_format(out) == DOCKER_ARCHIVE
    fresh = _fresh(tmp_path)
    r = fresh.main("load", "-i", str(out)).check()
    assert r.stdout.strip() == "Loaded image: docker.io/skopeo/app:v2"
    original, loaded = _image(home, APP), _image(fresh.home, "skopeo/app:v2")
    assert loaded.id == original.id  # config kept byte for byte
    assert [la.diff_id for la in loaded.layers] == [la.diff_id for la in original.layers]
    store = Store.open(fresh.home)
    try:
        for layer in loaded.layers:  # stored gzip-compressed, and it decompresses to the diff_id
            assert layer.descriptor.media_type.endswith("tar+gzip")
            with open_layer(store, layer.descriptor) as f:
                import hashlib

                assert "sha256:" + hashlib.sha256(f.read()).hexdigest() == str(layer.diff_id)
    finally:
        store.close()
    # and the result is again a valid layout for skopeo
    p = _skopeo("inspect", f"oci:{fresh.home / 'store'}:docker.io/skopeo/app:v2")
    assert p.returncode == 0, p.stderr


def test_load_compressed_archive_and_stdin(home: Path, cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "app.tar"
    cli.main("save", "-o", str(out), APP).check()
    gz = tmp_path / "app.tar.gz"
    gz.write_bytes(gzip.compress(out.read_bytes(), compresslevel=1))
    fresh = _fresh(tmp_path)
    assert fresh.main("load", "-i", str(gz)).check().stdout.strip() == f"Loaded image: {APP}"
    fresh2 = _fresh(tmp_path, "fresh2")
    with open(out, "rb") as f:
        p = subprocess.run(
            [sys.executable, "-m", "idpbuilder", "load"],
            stdin=f,
            capture_output=True,
            env=hermetic_env(fresh2.home),
            timeout=120,
        )
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().strip() == f"Loaded image: {APP}"
    assert _digests(fresh2.home) == {APP: _digests(home)[APP]}
    assert not any((fresh2.home / "tmp").iterdir())  # the spooled copy is gone


def _assert_clean_failure(r: tuple[int, str, str], code: int, *needles: str) -> None:
    rc, out, err = r
    assert rc == code, (out, err)
    assert "Traceback" not in err and "internal error" not in err
    for n in needles:
        assert n in err


def test_load_damaged_archives(home: Path, cli: CliRunner, tmp_path: Path) -> None:
    good = tmp_path / "good.tar"
    cli.main("save", "-o", str(good), APP).check()
    files = _members(good)
    layer_name = json.loads(files["manifest.json"])[0]["Layers"][-1]
    data = bytearray(files[layer_name])
    data[len(data) // 2] ^= 0xFF
    flipped = tmp_path / "flipped.tar"
    _rewrite(good, flipped, {layer_name: bytes(data)})
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    junk = tmp_path / "junk.tar"
    junk.write_bytes(os.urandom(4096))
    no_meta = tmp_path / "nometa.tar"
    _rewrite(good, no_meta, {"index.json": None, "manifest.json": None})
    bad_json = tmp_path / "badjson.tar"
    _rewrite(good, bad_json, {"index.json": b"{not json"})
    for path in (flipped, truncated, junk, no_meta, bad_json):
        fresh = _fresh(tmp_path, f"h-{path.stem}")
        r = fresh.main("load", "-i", str(path))
        _assert_clean_failure(r, 1, "Hint:")
        assert _digests(fresh.home) == {}, path  # nothing tagged
        r = fresh("load", "-i", str(path))  # as a real process too
        _assert_clean_failure(r, 1, "Hint:")
    r = cli.main("load", "-i", str(tmp_path / "does-not-exist.tar"))
    _assert_clean_failure(r, 2, "does not exist")


@pytest.mark.skipif(not HAS_SKOPEO, reason="skopeo not installed")
def test_load_classic_archive_with_a_wrong_diff_id(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "skopeo.tar"
    assert (
        _skopeo("copy", f"oci:{home / 'store'}:{APP}", f"docker-archive:{out}:skopeo/app:v2").returncode == 0
    )
    files = _members(out)
    layer = next(n for n in files if n.endswith(".tar") and "/" not in n and len(files[n]) < 100_000)
    with tarfile.open(fileobj=io.BytesIO(files[layer])) as t:
        members = [(m, t.extractfile(m).read() if m.isfile() else None) for m in t.getmembers()]  # type: ignore[union-attr]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for m, content in members:
            if content is not None:
                content = content.replace(b"hello", b"HELLO")
            t.addfile(m, io.BytesIO(content) if content is not None else None)
    bad = tmp_path / "bad.tar"
    _rewrite(out, bad, {layer: buf.getvalue()})
    fresh = _fresh(tmp_path)
    r = fresh.main("load", "-i", str(bad))
    _assert_clean_failure(r, 1, "diff_id", "Hint:")
    assert _digests(fresh.home) == {}


def test_load_untagged_oci_archive_reports_the_id(home: Path, cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "named.tar"
    cli.main("save", "--format", "oci-archive", "-o", str(out), APP).check()
    index = json.loads(_members(out)["index.json"])
    for m in index["manifests"]:
        m.pop("annotations")
    anon = tmp_path / "anon.tar"
    _rewrite(out, anon, {"index.json": json.dumps(index).encode()})
    fresh = _fresh(tmp_path)
    r = fresh.main("load", "-i", str(anon)).check()
    image_id = _image(home, APP).id
    assert r.stdout.strip() == f"Loaded image ID: {image_id}"
    # kept as a <none> image (like docker load), so it can be tagged by id afterwards
    fresh.main("tag", image_id.hex[:12], "named:v1").check()
    assert fresh.main("images", "-q").stdout.strip() == image_id.hex[:12]


def test_load_names_docker25_style_and_repotags_fallback(home: Path, cli: CliRunner, tmp_path: Path) -> None:
    """docker 25+ names images in io.containerd.image.name (ref.name is only the tag); an index without
    names falls back to manifest.json's RepoTags."""
    store = Store.open(home)
    try:
        make_image(store, "plain:v25", [{"u.txt": b"uncompressed"}], compression="none")
    finally:
        store.close()
    oci = tmp_path / "oci.tar"
    cli.main("save", "--format", "oci-archive", "-o", str(oci), "plain:v25").check()
    index = json.loads(_members(oci)["index.json"])
    index["manifests"][0]["annotations"] = {
        "io.containerd.image.name": "docker.io/library/app:v25",
        "org.opencontainers.image.ref.name": "v25",
    }
    d25 = tmp_path / "d25.tar"
    _rewrite(oci, d25, {"index.json": json.dumps(index).encode()})
    fresh = _fresh(tmp_path)
    assert (
        fresh.main("load", "-i", str(d25)).check().stdout.strip() == "Loaded image: docker.io/library/app:v25"
    )
    assert _digests(fresh.home)["docker.io/library/app:v25"] == _digests(home)["plain:v25"]

    docker = tmp_path / "docker.tar"
    cli.main("save", "-o", str(docker), APP).check()
    index = json.loads(_members(docker)["index.json"])
    for m in index["manifests"]:
        m.pop("annotations")
    unnamed = tmp_path / "unnamed.tar"
    _rewrite(docker, unnamed, {"index.json": json.dumps(index).encode()})
    fresh2 = _fresh(tmp_path, "fresh2")
    assert fresh2.main("load", "-i", str(unnamed)).check().stdout.strip() == f"Loaded image: {APP}"


@pytest.mark.parametrize(
    "manifest",
    [
        b"{}",
        b"[1]",
        b'[{"Config": 5}]',
        b'[{"Config": "nope.json", "Layers": []}]',
        b'[{"Config": "CONFIG", "Layers": "LAYERS"}]',
        b'[{"Config": "CONFIG", "Layers": []}]',
        b'[{"Config": "CONFIG", "Layers": ["LAYER", "LAYER"]}]',
        b'[{"Config": "CONFIG", "Layers": ["missing/layer.tar"]}]',
        b'[{"Config": "LAYER", "Layers": ["LAYER"]}]',
    ],
)
def test_load_malformed_docker_manifest(home: Path, cli: CliRunner, tmp_path: Path, manifest: bytes) -> None:
    good = tmp_path / "good.tar"
    store = Store.open(home)
    try:
        make_image(store, "one:1", [{"one.txt": b"one"}])
    finally:
        store.close()
    cli.main("save", "-o", str(good), "one:1").check()
    entry = json.loads(_members(good)["manifest.json"])[0]
    text = manifest.replace(b"CONFIG", entry["Config"].encode()).replace(b"LAYERS", b"x")
    text = text.replace(b"LAYER", entry["Layers"][0].encode())
    bad = tmp_path / "bad.tar"
    _rewrite(good, bad, {"index.json": None, "manifest.json": text})
    # the classic path alone still works with the good manifest (the test's archive is sound)
    ok = tmp_path / "ok.tar"
    _rewrite(good, ok, {"index.json": None})
    assert (
        _fresh(tmp_path, "ok-home").main("load", "-i", str(ok)).check().stdout.strip()
        == "Loaded image: one:1"
    )
    fresh = _fresh(tmp_path)
    _assert_clean_failure(fresh.main("load", "-i", str(bad)), 1, "Hint:")
    assert _digests(fresh.home) == {}
