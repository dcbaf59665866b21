"""The conformance runner's own parts: busybox base image, flattener, comparison, fixture repair, HTTP helper."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from idpbuilder.image import LayerWriter, commit_image
from idpbuilder.store.layout import Store
from tools.conformance.baseimages import BASE_REFS, add_busybox_image
from tools.conformance.fixtures import content_hash, repair_context
from tools.conformance.flatten import Entry, FlatImage, config_summary, load_layout_image
from tools.conformance.httpserve import HTTP_PORT, port_free, serve
from tools.conformance.judge import compare_images, judge_build
from tools.conformance.model import BuildOutcome, BuildSpec, CaseSpec, Expect


def _info(
    name: str, kind: bytes = tarfile.REGTYPE, *, data: bytes = b"", mode: int = 0o644
) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    return ti


def _layer(store: Store, members: list[tuple[tarfile.TarInfo, bytes]]):  # type: ignore[no-untyped-def]
    with LayerWriter(store, compression="gzip") as lw:
        for ti, data in members:
            lw.add_entry(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)
    return lw.result


def _image(tmp_path: Path, layers: list[list[tuple[tarfile.TarInfo, bytes]]]) -> FlatImage:
    store = Store.open(tmp_path / "home")
    built = [_layer(store, m) for m in layers]
    cfg = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]}}
    desc = commit_image(
        store, {**cfg, "rootfs": {"type": "layers", "diff_ids": [str(x.diff_id) for x in built]}}, built
    )
    store.set_ref("example.test/flat:1", desc)
    _, image, _ = load_layout_image(store.root, "example.test/flat:1")
    return image


def test_flatten_applies_whiteouts_opaque_dirs_and_hardlinks(tmp_path: Path) -> None:
    d = tarfile.DIRTYPE
    lower = [
        (_info("a", d, mode=0o755), b""),
        (_info("a/keep", data=b"k"), b"k"),
        (_info("a/gone", data=b"g"), b"g"),
        (_info("o", d, mode=0o755), b""),
        (_info("o/old", data=b"x"), b"x"),
        (_info("f", data=b"file"), b"file"),
    ]
    link = _info("a/hard", tarfile.LNKTYPE)
    link.linkname = "a/keep"
    sym = _info("s", tarfile.SYMTYPE, mode=0o777)
    sym.linkname = "a/keep"
    upper = [
        (_info("a/.wh.gone"), b""),
        (link, b""),
        (_info("o/.wh..wh..opq"), b""),
        (_info("o/new", data=b"n"), b"n"),
        (_info("f", d, mode=0o700), b""),  # a directory replaces a file
        (sym, b""),
    ]
    image = _image(tmp_path, [lower, upper])
    assert set(image.files) == {"a", "a/keep", "a/hard", "o", "o/new", "f", "s"}
    assert (
        image.files["a/hard"].type == "file" and image.files["a/hard"].sha256 == image.files["a/keep"].sha256
    )
    assert image.files["f"] == Entry("dir", 0o700, 0, 0)
    assert image.files["s"].link == "a/keep"
    assert "a/.wh.gone" in image.layer_members[1] and "o/.wh..wh..opq" in image.layer_members[1]
    assert image.config["Cmd"] == ["sh"] and image.config["os"] == "linux"


def test_flatten_agrees_with_umoci_on_the_busybox_image(tmp_path: Path) -> None:
    if shutil.which("umoci") is None:
        pytest.skip("umoci not installed")
    store = Store.open(tmp_path / "home")
    add_busybox_image(store)
    _, image, contents = load_layout_image(store.root, BASE_REFS[0])
    layout = tmp_path / "plain"
    subprocess.run(
        ["skopeo", "copy", "-q", f"oci:{store.root}:{BASE_REFS[0]}", f"oci:{layout}:bb"], check=True
    )
    bundle = tmp_path / "bundle"
    subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:bb", str(bundle)], check=True, capture_output=True
    )
    rootfs = bundle / "rootfs"
    seen = {}
    for p in rootfs.rglob("*"):
        st = p.lstat()
        kind = "symlink" if stat.S_ISLNK(st.st_mode) else "dir" if stat.S_ISDIR(st.st_mode) else "file"
        seen[str(p.relative_to(rootfs))] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    flat = {p: (e.type, e.mode, e.uid, e.gid) for p, e in image.files.items()}
    # umoci gives symlinks mode 0777 (the kernel's); compare their other fields
    for p, (kind, _mode, uid, gid) in seen.items():
        if kind == "symlink":
            seen[p] = (kind, flat.get(p, (None, 0))[1], uid, gid)
    assert flat == seen
    assert contents["etc/group"].startswith(b"root:x:0:")
    assert (rootfs / "bin" / "sh").resolve().name == "busybox"


def test_busybox_image_has_upstream_users_and_a_working_adduser(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "home")
    desc = add_busybox_image(store)
    assert {n for n, _ in store.refs()} == set(BASE_REFS)
    assert all(d.digest == desc.digest for _, d in store.refs())
    again = Store.open(tmp_path / "home2")
    assert add_busybox_image(again).digest == desc.digest  # deterministic
    layout = tmp_path / "plain"
    subprocess.run(
        ["skopeo", "copy", "-q", f"oci:{store.root}:{BASE_REFS[1]}", f"oci:{layout}:bb"], check=True
    )
    inspect = json.loads(
        subprocess.run(["skopeo", "inspect", f"oci:{layout}:bb"], check=True, capture_output=True).stdout
    )
    assert inspect["Architecture"] and inspect["Os"] == "linux"
    bundle = tmp_path / "bundle"
    subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:bb", str(bundle)], check=True, capture_output=True
    )
    root = str(bundle / "rootfs")

    def sh(cmd: str) -> str:
        env = {"PATH": "/bin"}
        return subprocess.run(
            [shutil.which("chroot") or "/usr/sbin/chroot", root, "/bin/sh", "-c", cmd],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    assert sh("id root").strip() == "uid=0(root) gid=0(root) groups=0(root),10(wheel)"
    assert sh("id daemon").strip() == "uid=1(daemon) gid=1(daemon) groups=1(daemon)"
    sh("adduser -D user && adduser -D user01")
    assert sh("id user").strip() == "uid=1000(user) gid=1000(user) groups=1000(user)"
    assert sh("stat -c '%U %G %a' /home/user01").strip() == "user01 user01 2755"


def _flat(files: dict[str, Entry], **config: object) -> FlatImage:
    return FlatImage(config_summary({"config": config, "os": "linux", "architecture": "amd64"}), files, [])


def test_compare_reports_real_differences_and_ignores_known_noise() -> None:
    f = Entry("file", 0o644, 0, 0, 3, "ab")
    ours = _flat(
        {"x": f, "l": Entry("symlink", 0o755, 0, 0, link="x"), "etc/hosts": Entry("file", 0o644, 0, 0)},
        WorkingDir="/",
    )
    theirs = _flat(
        {"x": f, "l": Entry("symlink", 0o777, 0, 0, link="x")}, Labels={"io.buildah.version": "1.28"}
    )
    assert compare_images(ours, theirs) == []
    changed = _flat({"x": Entry("file", 0o600, 0, 0, 3, "ab")}, WorkingDir="/app", Cmd=["sh"])
    diffs = compare_images(changed, theirs)
    assert any("WorkingDir" in d for d in diffs) and any("Cmd" in d for d in diffs)
    assert any(d.startswith("/x: ours file 0600") for d in diffs)
    assert any(d.startswith("/l: only in buildah") for d in diffs)
    assert compare_images(changed, theirs, ignore_config=("WorkingDir", "Cmd"), ignore_paths=("x", "l")) == []


def test_expect_checks_files_owners_modes_and_config() -> None:
    image = _flat(
        {"out": Entry("file", 0o644, 100, 200, 2, "h"), "d": Entry("dir", 0o755, 0, 0)}, Entrypoint=["ls"]
    )
    good = Expect(
        files={"out": "hi"}, owners={"out": "100:200"}, types={"d": "dir"}, config={"Entrypoint": ["ls"]}
    )
    assert good.check({}, image, {"out": b"hi"}) == []
    bad = Expect(
        files={"out": "no"}, absent=("d",), modes={"d": 0o700}, config={"Cmd": ["x"]}, contains={"gone": "x"}
    )
    problems = bad.check({}, image, {"out": b"hi"})
    assert len(problems) == 5


def test_judge_needs_both_builders_to_fail_and_a_clear_message() -> None:
    spec = BuildSpec(fail=("boom",))
    case = CaseSpec(builds=(spec,))
    failed = BuildOutcome(False, 0.1, "Error: boom")
    assert judge_build(spec, case, failed, failed) is None
    assert "ours succeeded" in str(judge_build(spec, case, BuildOutcome(True, 0.1), failed))
    assert "clear message" in str(
        judge_build(spec, case, BuildOutcome(False, 0.1, "UNCLEAR (traceback): x"), failed)
    )
    assert "oracle" in str(judge_build(spec, case, failed, BuildOutcome(True, 0.1)))


def test_repair_context_restores_symlinks_and_sockets(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "sub").mkdir(parents=True)
    (ctx / "link").write_text("sub")
    (ctx / "sub" / "f").write_text("data")
    spec = CaseSpec(symlinks=(("link", "sub"),), sockets=("s.sock",))
    before = content_hash(ctx)
    assert repair_context(ctx, spec) == ["link", "s.sock"]
    assert os.readlink(ctx / "link") == "sub" and (ctx / "link" / "f").read_text() == "data"
    assert stat.S_ISSOCK((ctx / "s.sock").lstat().st_mode)
    assert content_hash(ctx) != before
    assert repair_context(ctx, spec) == []  # idempotent
    (ctx / "other").write_text("something else")
    with pytest.raises(RuntimeError, match="cannot repair"):
        repair_context(ctx, CaseSpec(symlinks=(("other", "sub"),)))


def test_serve_runs_the_case_server_and_frees_the_port(tmp_path: Path) -> None:
    if not port_free(HTTP_PORT):
        pytest.skip(f"port {HTTP_PORT} is in use")
    (tmp_path / "serve.py").write_text(
        "import http.server\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.send_header('Content-Length', '2'); self.end_headers(); self.wfile.write(b'ok')\n"
        "http.server.HTTPServer(('127.0.0.1', 8000), H).serve_forever()\n"
    )
    with serve(tmp_path):
        with socket.create_connection(("127.0.0.1", HTTP_PORT), 2) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.0 200")
    assert port_free(HTTP_PORT)
