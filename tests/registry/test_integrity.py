"""Damaged bytes are caught on both sides: a corrupt local blob on push and inspect, and a registry that
sends garbage manifests or wrong blob bytes on pull. Every case is one error line and a hint."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fixtures.cli import CliRunner
from fixtures.registry import RegistryInfo
from idpbuilder.digest import Digest
from idpbuilder.store.layout import Store

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _layer_path(home: Path) -> Path:
    store = Store.open(home)
    try:
        (_, desc), *_ = store.refs()
        manifest = store.read_json(desc.digest)
        return store.blob_path(Digest.parse(manifest["layers"][0]["digest"]))
    finally:
        store.close()


def _one_error(err: str) -> list[str]:
    assert "Traceback" not in err and "internal error" not in err, err
    lines = err.rstrip("\n").splitlines()
    assert lines[-2].startswith("Error: ") and lines[-1].startswith("Hint: "), err
    return lines[-2:]


@pytest.fixture
def damaged_home(busybox_image: Any, idp_home: Path) -> Path:
    busybox_image.install(idp_home)
    return idp_home


def test_push_of_a_flipped_byte_fails_before_the_registry_stores_it(
    damaged_home: Path, registry_plain: RegistryInfo, cli: CliRunner
) -> None:
    layer = _layer_path(damaged_home)
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0xFF
    layer.write_bytes(bytes(data))
    code, out, err = cli("push", "busybox", registry_plain.ref("integrity/flip:v1"))
    assert code == 1, err
    assert out == ""
    error, hint = _one_error(err)  # and nothing printed after it by transfers still winding down
    assert "the local copy is damaged (its content has digest sha256:" in error
    assert str(layer) in hint
    # the registry has neither the blob nor the tag
    from urllib.request import Request, urlopen

    digest = "sha256:" + layer.name
    with pytest.raises(Exception, match="404"):
        urlopen(Request(f"{registry_plain.url}/v2/integrity/flip/blobs/{digest}", method="HEAD"))
    with pytest.raises(Exception, match="404"):
        urlopen(Request(f"{registry_plain.url}/v2/integrity/flip/manifests/v1", method="HEAD"))


def test_truncated_layer_is_caught_by_push_and_inspect(
    damaged_home: Path, registry_plain: RegistryInfo, cli: CliRunner
) -> None:
    layer = _layer_path(damaged_home)
    with open(layer, "r+b") as f:
        f.truncate(1000)
    code, _, err = cli("push", "--progress", "quiet", "busybox", registry_plain.ref("integrity/short:v1"))
    assert code == 1
    error, _ = _one_error(err)
    assert "the local copy is damaged (1000 bytes, the manifest says" in error
    code, out, err = cli("inspect", "busybox")
    assert code == 1 and out == ""
    error, hint = _one_error(err)
    assert f"layer sha256:{layer.name} in the store is damaged" in error
    assert str(layer) in hint
    layer.unlink()
    code, _, err = cli("inspect", "busybox")
    assert code == 1
    assert "is missing from the store" in _one_error(err)[0]


def test_writing_a_blob_again_repairs_a_damaged_copy(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    try:
        with store.blob_writer() as w:
            w.write(b"hello world")
        assert w.digest is not None
        path = store.blob_path(w.digest)
        path.write_bytes(b"hello wOrld")
        with store.blob_writer(expected=w.digest) as w2:
            w2.write(b"hello world")
        assert path.read_bytes() == b"hello world"
    finally:
        store.close()


# ------------------------------------------------------------------ a registry sending bad data
_CONFIG = b"{}"
_CONFIG_DIGEST = "sha256:" + hashlib.sha256(_CONFIG).hexdigest()
_GOOD_LAYER = b"0123456789"
_LAYER_DIGEST = "sha256:" + hashlib.sha256(_GOOD_LAYER).hexdigest()
_MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": _CONFIG_DIGEST,
            "size": 2,
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": _LAYER_DIGEST, "size": 10}
        ],
    }
).encode()
_MANIFESTS: dict[str, tuple[str, bytes]] = {
    "garbage": (MT_MANIFEST, b"\x00\x01garbage"),
    "array": (MT_MANIFEST, b"[1, 2]"),
    "baddigest": (MT_MANIFEST, b'{"schemaVersion":2,"config":{"digest":"nope","size":2},"layers":[]}'),
    "nosize": (MT_MANIFEST, b'{"schemaVersion":2,"config":{"digest":"' + _CONFIG_DIGEST.encode() + b'"}}'),
    "badindex": ("application/vnd.oci.image.index.v1+json", b'{"schemaVersion":2,"manifests":[{"size":1}]}'),
}
_LAYERS = {"flipped": b"0123456789"[::-1], "short": b"01234", "long": b"0123456789abcdef"}


class _BadRegistry(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = None  # type: ignore[assignment]

    def do_GET(self) -> None:
        parts = self.path.split("/")  # /v2/bad/<case>/manifests/v1
        if self.path == "/v2/":
            return self._send(200, b"{}")
        case = parts[3] if len(parts) > 4 else ""
        if "/manifests/" in self.path:
            if case in _MANIFESTS:
                return self._send(200, _MANIFESTS[case][1], _MANIFESTS[case][0])
            return self._send(200, _MANIFEST, MT_MANIFEST)
        if self.path.endswith(_CONFIG_DIGEST):
            return self._send(200, _CONFIG, "application/octet-stream")
        if "/blobs/" in self.path and case in _LAYERS:
            return self._send(200, _LAYERS[case], "application/octet-stream")
        return self._send(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"unknown"}]}')


@pytest.fixture(scope="module")
def bad_registry() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _BadRegistry)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("garbage", "invalid manifest sha256:"),
        ("array", "(not a JSON object)"),
        ("baddigest", "(invalid digest 'nope')"),
        ("nosize", "(a descriptor has no 'size')"),
        ("badindex", "(a descriptor has no 'digest')"),
        ("flipped", "the registry sent wrong data (content has digest sha256:"),
        ("short", "the registry sent wrong data (got 5 bytes, expected 10)"),
        ("long", "the registry sent wrong data (more than the expected 10 bytes)"),
    ],
)
def test_pull_of_bad_registry_data_is_one_line_and_stores_nothing(
    bad_registry: str, cli: CliRunner, idp_home: Path, case: str, message: str
) -> None:
    code, out, err = cli.main(
        "pull", "--progress", "quiet", "--retries", "1", f"{bad_registry}/bad/{case}:v1"
    )
    assert code == 1, err
    assert out == ""
    error, _ = _one_error(err)
    assert message in error, error
    assert f"bad/{case}" in error
    store = Store.open(idp_home)
    try:
        assert store.refs() == []
        assert not store.has_blob(Digest.parse(_LAYER_DIGEST))
    finally:
        store.close()
    assert list((idp_home / "tmp").iterdir()) == []
