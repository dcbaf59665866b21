"""HTTP quirks: uploads follow 307/308 re-sending the whole body; tokens via GET, `access_token` accepted."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from idpbuilder.credentials.keychain import AnonymousKeychain
from idpbuilder.digest import sha256_bytes
from idpbuilder.registry.client import RegistryClient
from idpbuilder.registry.retry import RetryPolicy
from idpbuilder.registry.settings import RegistrySettings


class _Handler(BaseHTTPRequestHandler):
    received: list[tuple[str, str, int]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self._reply(200)

    def do_POST(self) -> None:
        self._reply(202, {"Location": "/v2/r/blobs/uploads/u1"})

    def _body(self) -> int:
        n = int(self.headers.get("Content-Length", "0"))
        return len(self.rfile.read(n)) if n else 0

    def do_PUT(self) -> None:
        got = self._body()
        _Handler.received.append(("PUT", self.path, got))
        if self.path.startswith("/v2/r/blobs/uploads/u1"):
            # like a registry handing the upload to its storage backend
            self._reply(307, {"Location": "/storage/u1?" + self.path.split("?", 1)[1]})
        elif self.path.startswith("/storage/"):
            self._reply(201, {"Docker-Content-Digest": self.path.split("digest=", 1)[1].replace("%3A", ":")})
        else:
            self._reply(404)


@pytest.fixture
def redirecting_server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_put_follows_307_with_the_full_body(redirecting_server: str, tmp_path: Path) -> None:
    data = b"x" * 300_000
    blob = tmp_path / "blob"
    blob.write_bytes(data)
    d = sha256_bytes(data)
    settings = RegistrySettings(keychain=AnonymousKeychain(), retry=RetryPolicy(attempts=1))
    client = RegistryClient(redirecting_server, settings)
    _Handler.received.clear()
    seen: list[int] = []
    assert client.upload_blob("r", d, len(data), blob, progress=seen.append) == "pushed"
    puts = _Handler.received
    assert [(m, p.split("?")[0], n) for m, p, n in puts] == [
        ("PUT", "/v2/r/blobs/uploads/u1", len(data)),
        ("PUT", "/storage/u1", len(data)),  # the body went out again, complete
    ]
    assert seen[-1] == len(data)
    client.close()


class _OAuthHandler(BaseHTTPRequestHandler):
    """A registry whose token service answers only GET, with ``access_token`` (no ``token``)."""

    log: list[tuple[str, str, str | None]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization")
        _OAuthHandler.log.append(("GET", self.path, auth))
        host = self.headers["Host"]
        if self.path.startswith("/token"):
            self._reply(
                200, b'{"access_token":"at-123","expires_in":300}', {"Content-Type": "application/json"}
            )
        elif auth == "Bearer at-123":
            self._reply(200, b'{"name":"r","tags":["a","b"]}', {"Content-Type": "application/json"})
        else:
            self._reply(401, b"", {"WWW-Authenticate": f'Bearer realm="http://{host}/token",service="svc"'})

    def do_POST(self) -> None:
        _OAuthHandler.log.append(("POST", self.path, None))
        self._reply(404)  # like Gitea (gitea#29118)


def test_bearer_token_via_get_with_access_token() -> None:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _OAuthHandler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        host = f"127.0.0.1:{srv.server_address[1]}"
        client = RegistryClient(
            host, RegistrySettings(keychain=AnonymousKeychain(), retry=RetryPolicy(attempts=1))
        )
        _OAuthHandler.log.clear()
        assert client.list_tags("r") == ["a", "b"]
        assert client.list_tags("r") == ["a", "b"]  # cached token, sent pre-emptively
        log = _OAuthHandler.log
        assert [m for m, _, _ in log] == ["GET"] * len(log)  # never POST to the realm
        assert [p.split("?")[0] for _, p, _ in log] == [
            "/v2/",
            "/token",
            "/v2/r/tags/list",
            "/v2/r/tags/list",
        ]
        assert "scope=repository%3Ar%3Apull" in log[1][1] and "service=svc" in log[1][1]
        assert log[2][2] == log[3][2] == "Bearer at-123"
        client.close()
    finally:
        srv.shutdown()
        srv.server_close()
