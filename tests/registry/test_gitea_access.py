"""Gitea's ``reqPackageAccess``: valid credentials, but no write access to the owner's packages. The error must say
so (and how to fix it) instead of blaming the password (Gitea answers 401 with a Basic challenge, so a naive client
retries with Basic and reports "rejected the credentials")."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fixtures.cli import CliRunner


class _Gitea(BaseHTTPRequestHandler):
    """Gitea 1.24's container routes, as far as a push to someone else's owner gets."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _authed(self) -> bool:
        return (self.headers.get("Authorization") or "").startswith(("Basic ", "Bearer jwt"))

    def _challenge(self) -> None:
        host = self.headers["Host"]
        realm = f'Bearer realm="http://{host}/v2/token",service="container_registry",scope="*"'
        self._send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":""}]}', {"WWW-Authenticate": realm})

    def do_GET(self) -> None:
        if self.path.startswith("/v2/token"):
            if not (self.headers.get("Authorization") or "").startswith("Basic "):
                return self._send(401)
            return self._send(200, b'{"token":"jwt-for-giteaadmin"}', {"Content-Type": "application/json"})
        if not self._authed():
            return self._challenge()
        if self.path == "/v2/":
            return self._send(200, b"{}")
        self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')

    do_HEAD = do_GET

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self._authed():
            return self._challenge()
        # reqPackageAccess(perm.AccessModeWrite) in routers/api/packages/api.go
        self._send(
            401,
            b"reqPackageAccess\n",
            {"WWW-Authenticate": 'Basic realm="Gitea Package API"', "Content-Type": "text/plain"},
        )


@pytest.fixture
def gitea() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Gitea)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def test_req_package_access_names_the_owner_and_the_fix(
    gitea: str, busybox_image: Any, cli: CliRunner, idp_home: Path
) -> None:
    busybox_image.install(idp_home)
    code, out, err = cli.main(
        "push",
        "--progress",
        "quiet",
        "-u",
        "giteaAdmin",
        "-p",
        "s3cret!",
        "busybox",
        f"{gitea}/someoneelse/app:v1",
    )
    assert code == 1 and out == ""
    assert "Traceback" not in err and "s3cret" not in err
    error, hint = err.rstrip("\n").splitlines()[-2:]
    assert "giteaAdmin may not write packages of owner 'someoneelse' (Gitea: reqPackageAccess)" in error
    assert "rejected the credentials" not in err
    assert hint.startswith("Hint: push to giteaadmin/<name>") and "write:package" in hint
