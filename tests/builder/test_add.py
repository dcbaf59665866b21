"""ADD: local archives (tar, gz, bz2, xz) auto-extracted, --unpack, COPY never extracts, URLs with --checksum."""

from __future__ import annotations

import email.utils
import hashlib
import io
import os
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from idpbuilder.errors import BuildError

BuildFn = Callable[..., Any]


def _tar(path: Path, members: dict[str, str], *, mode: str = "w", dirs: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:  # type: ignore[call-overload]
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tf.addfile(info)
        for name, content in members.items():
            data = content.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


@pytest.mark.parametrize(
    "mode,name", [("w", "t.tar"), ("w:gz", "t.tar.gz"), ("w:bz2", "t.tar.bz2"), ("w:xz", "t.txz")]
)
def test_add_extracts_local_archives(build: BuildFn, tmp_path: Path, mode: str, name: str) -> None:
    ctx = tmp_path / f"ctx-{name}"
    ctx.mkdir()
    _tar(ctx / name, {"foo": "content0"}, mode=mode)
    b = build(
        f"FROM scratch\nADD {name} /\nCOPY {name} /copied/\nADD --unpack=false {name} /kept/\n", context=ctx
    )
    root = b.unpack(tmp_path / "u")
    assert (root / "foo").read_text() == "content0"
    assert (root / "copied" / name).read_bytes() == (ctx / name).read_bytes()
    assert (root / "kept" / name).read_bytes() == (ctx / name).read_bytes()


def test_add_archive_wildcard_implied_parents_and_chown(build: BuildFn, tmp_path: Path) -> None:
    ctx = tmp_path / "arch"
    ctx.mkdir()
    _tar(ctx / "a.tar", {"foo": "content0"})
    _tar(ctx / "b.tar", {"bar": "content1"})
    _tar(ctx / "dnf.tar", {"etc/dnf/dnf.conf": "content0"}, dirs=("etc/dnf/",))
    b = build(
        "FROM scratch\nADD [ab].tar /dest\nADD dnf.tar /\nADD --chown=100:200 a.tar /out/\n", context=ctx
    )
    root = b.unpack(tmp_path / "u")
    assert (root / "dest/foo").read_text() == "content0"
    assert (root / "dest/bar").read_text() == "content1"
    assert (root / "etc/dnf/dnf.conf").read_text() == "content0"
    assert (os.lstat(root / "out/foo").st_uid, os.lstat(root / "out/foo").st_gid) == (100, 200)
    assert (os.lstat(root / "out").st_uid, os.lstat(root / "out").st_gid) == (100, 200)


def test_add_archive_through_absolute_symlink(build: BuildFn, tmp_path: Path) -> None:
    ctx = tmp_path / "abs"
    ctx.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for d in ("run", "var"):
            i = tarfile.TarInfo(d)
            i.type = tarfile.DIRTYPE
            i.mode = 0o755
            tf.addfile(i)
        i = tarfile.TarInfo("var/run")
        i.type = tarfile.SYMTYPE
        i.linkname = "/run"
        tf.addfile(i)
    (ctx / "rootfs.tar").write_bytes(buf.getvalue())
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = b"ref: refs/heads/main\n"
        i = tarfile.TarInfo("var/run/act/HEAD")
        i.size = len(data)
        tf.addfile(i, io.BytesIO(data))
        i = tarfile.TarInfo("var/run/act/HEAD.link")
        i.type = tarfile.LNKTYPE
        i.linkname = "var/run/act/HEAD"
        tf.addfile(i)
    (ctx / "payload.tar").write_bytes(buf.getvalue())
    b = build("FROM scratch\nADD rootfs.tar /\nADD payload.tar /\n", context=ctx)
    root = b.unpack(tmp_path / "u")
    assert (root / "run/act/HEAD").read_text() == "ref: refs/heads/main\n"
    assert (root / "run/act/HEAD.link").read_text() == "ref: refs/heads/main\n"
    assert os.readlink(root / "var/run") == "/run"


class _Handler(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    last_modified = email.utils.formatdate(time.time() - 86400, usegmt=True)

    def do_GET(self) -> None:  # noqa: N802
        data = self.files.get(self.path)
        if data is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Last-Modified", self.last_modified)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    tarbytes = _tar(tmp_path / "served.tar.gz", {"foo": "content0"}, mode="w:gz")
    _Handler.files = {"/foo": b"content1", "/": b"content2", "/t.tar.gz": tarbytes}
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_add_url(build: BuildFn, http_server: str, tmp_path: Path) -> None:
    good = "sha256:" + hashlib.sha256(b"content1").hexdigest()
    b = build(
        f"FROM scratch\nADD {http_server}/foo /dest/\nADD {http_server}/ /unnamed/\n"
        f"ADD --checksum={good} {http_server}/foo /checked\nADD {http_server}/t.tar.gz /\n"
        f"ADD --unpack=true {http_server}/t.tar.gz /x/\nADD {http_server}/t.tar.gz /newname.tar.gz\n",
        {},
    )
    root = b.unpack(tmp_path / "u")
    assert (root / "dest/foo").read_text() == "content1"
    unnamed = root / "unnamed/__unnamed__"
    assert unnamed.read_text() == "content2"
    expected = email.utils.parsedate_to_datetime(_Handler.last_modified).timestamp()
    assert abs(unnamed.stat().st_mtime - expected) < 1
    assert (root / "checked").read_text() == "content1"
    assert (root / "t.tar.gz").read_bytes() == _Handler.files["/t.tar.gz"]  # URLs are not extracted
    assert (root / "x/foo").read_text() == "content0"
    assert (root / "newname.tar.gz").is_file()


@pytest.mark.parametrize(
    "checksum,message",
    [
        ("sha256:" + "0" * 64, "digest mismatch"),
        ("md5:" + "0" * 32, "unsupported digest algorithm"),
        ("0" * 64, "invalid checksum digest format"),
    ],
)
def test_add_url_checksum_errors(build: BuildFn, http_server: str, checksum: str, message: str) -> None:
    with pytest.raises(BuildError, match=message):
        build(f"FROM scratch\nADD --checksum={checksum} {http_server}/foo /x\n", {})


def test_checksum_needs_remote_source_and_copy_rejects_urls(build: BuildFn, http_server: str) -> None:
    with pytest.raises(BuildError, match="checksum requires HTTP"):
        build("FROM scratch\nADD --checksum=sha256:" + "0" * 64 + " foo /x\n", {"foo": "x"})
    with pytest.raises(BuildError, match="can't be a URL"):
        build(f"FROM scratch\nCOPY {http_server}/foo /x\n", {})
