"""A small fake of Gitea's package REST API (``GET /api/v1/packages/{owner}?type=container``).

Fault-free fake territory: it only serves JSON the way Gitea 1.24 does (paged with ``page``/``limit``,
one entry per package version, untagged manifests listed by digest), requires Basic auth, and answers
``GET /v2/`` with Gitea's Bearer challenge so registry clients accept it as a registry.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["FakeGitea"]


class FakeGitea:
    """Plain-HTTP fake on 127.0.0.1; ``prefix`` is ``""`` (domain routing) or ``"/gitea"`` (path routing)."""

    def __init__(self, *, username: str, password: str, prefix: str = "") -> None:
        self.username = username
        self._password = password
        self.prefix = prefix
        self.packages: list[dict[str, Any]] = []
        self.log: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                auth = self.headers.get("Authorization", "")
                if not auth.startswith("Basic "):
                    return False
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                return user.lower() == fake.username.lower() and pw == fake._password

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                fake.log.append(self.path)
                if parts.path == "/v2/":
                    realm = f"http://127.0.0.1:{fake.port}{fake.prefix}/v2/token"
                    if self._authorized():
                        self._send(200, {})
                    else:
                        self._send(
                            401,
                            {"errors": [{"code": "UNAUTHORIZED"}]},
                            {
                                "WWW-Authenticate": f'Bearer realm="{realm}",service="container_registry",'
                                'scope="*"'
                            },
                        )
                    return
                api = f"{fake.prefix}/api/v1/packages/"
                if not parts.path.startswith(api):
                    self._send(404, {"message": "not found"})
                    return
                if not self._authorized():
                    self._send(401, {"message": "token is required"})
                    return
                owner = unquote(parts.path[len(api) :])
                q = parse_qs(parts.query)
                page = int(q.get("page", ["1"])[0])
                limit = int(q.get("limit", ["30"])[0])
                items = [
                    p
                    for p in fake.packages
                    if p["owner"]["login"].lower() == owner and p["type"] == q.get("type", ["container"])[0]
                ]
                chunk = items[(page - 1) * limit : page * limit]
                self._send(200, chunk, {"X-Total-Count": str(len(items))})

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    def add(
        self,
        owner: str,
        name: str,
        version: str,
        *,
        created: str = "2026-01-02T03:04:05Z",
        type: str = "container",
    ) -> None:
        """One package version as Gitea lists it."""
        self.packages.append(
            {
                "id": len(self.packages) + 1,
                "owner": {"id": 1, "login": owner, "username": owner},
                "repository": None,
                "creator": {"login": owner},
                "type": type,
                "name": name,
                "version": version,
                "html_url": f"http://{self.host}/{owner}/-/packages/{type}/{name}/{version}",
                "created_at": created,
            }
        )

    def stop(self) -> None:
        """Stop serving."""
        self._httpd.shutdown()
        self._thread.join(5)
        self._httpd.server_close()
