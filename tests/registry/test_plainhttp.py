"""The socket HTTP/1.1 client behind ``http://`` registries: framing, keep-alive, faults, start-up imports.

Most behaviour is covered end to end by the push/pull/fault tests against docker-registry (plain registries
go through this client); the cases here need a server that misbehaves on purpose (a scripted raw-socket
server), and one checks that a plain-HTTP push never imports urllib3, http.client, email or ssl.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from regkit import make_image, unique

from fixtures.cli import hermetic_env
from fixtures.registry import RegistryInfo
from idpbuilder.credentials.tls import TrustConfig
from idpbuilder.errors import RegistryError, TransientError
from idpbuilder.registry.plainhttp import Headers, PlainHTTPPool
from idpbuilder.registry.transport import Transport

Script = Callable[[socket.socket, int], None]


class RawServer:
    """Accepts connections on 127.0.0.1 and runs ``script(conn, index)`` for each (index counts connections)."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.requests: list[bytes] = []
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            n = self.connections
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, n), daemon=True).start()

    def _serve(self, conn: socket.socket, n: int) -> None:
        try:
            self.script(conn, n)
        except OSError:
            pass
        finally:
            conn.close()

    def read_request(self, conn: socket.socket) -> bytes:
        """Read one request head (and a Content-Length body) from ``conn``."""
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = conn.recv(65536)
            if not chunk:
                return buf
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        m = re.search(rb"(?i)content-length: *(\d+)", head)
        need = int(m.group(1)) if m else 0
        while len(rest) < need:
            rest += conn.recv(65536)
        self.requests.append(head + b"\r\n\r\n" + rest)
        return head

    def stop(self) -> None:
        self.sock.close()


@pytest.fixture
def raw_server() -> Iterator[Callable[[Script], RawServer]]:
    servers: list[RawServer] = []

    def make(script: Script) -> RawServer:
        s = RawServer(script)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def test_chunked_and_until_close_bodies_and_interim_answers(
    raw_server: Callable[[Script], RawServer],
) -> None:
    def script(conn: socket.socket, n: int) -> None:
        srv.read_request(conn)
        conn.sendall(
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nLink: <a>; rel=x\r\nlink: <b>; rel=next\r\n\r\n"
            b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n"
        )
        srv.read_request(conn)  # kept alive: the second request comes on the same connection
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nuntil close")

    srv = raw_server(script)
    pool = PlainHTTPPool()
    r = pool.request("GET", f"{srv.url}/a", headers={})
    assert (r.status, r.reason, r.data) == (200, "OK", b"hello world")
    assert r.headers["LINK"] == "<a>; rel=x, <b>; rel=next"
    r2 = pool.request("GET", f"{srv.url}/b", headers={}, preload_content=False)
    assert b"".join(r2.stream(3)) == b"until close"
    r2.release_conn()
    assert srv.connections == 1
    assert srv.requests[0].startswith(b"GET /a HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"Accept-Encoding: identity" in srv.requests[0]
    pool.clear()


def test_a_body_cut_short_raises_transient_error(raw_server: Callable[[Script], RawServer]) -> None:
    def script(conn: socket.socket, n: int) -> None:
        srv.read_request(conn)
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly forty bytes of the hundred promised."
        )

    srv = raw_server(script)
    r = PlainHTTPPool().request("GET", f"{srv.url}/blob", headers={}, preload_content=False)
    with pytest.raises(TransientError, match=r"closed the connection \(59 bytes missing\)"):
        b"".join(r.stream(1 << 20))


def test_stale_keep_alive_connection_is_replaced(raw_server: Callable[[Script], RawServer]) -> None:
    def script(conn: socket.socket, n: int) -> None:
        srv.read_request(conn)
        conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
        if n == 0:
            # read the next request, then close without answering (the keep-alive race)
            srv.read_request(conn)
            return
        srv.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    srv = raw_server(script)
    pool = PlainHTTPPool()
    assert pool.request("PUT", f"{srv.url}/x", headers={}, body=b"abc").status == 204
    r = pool.request("GET", f"{srv.url}/y", headers={})  # reused, dropped, resent on a new connection
    assert (r.status, r.data) == (204, b"")
    assert pool.request("GET", f"{srv.url}/z", headers={}).data == b"ok"
    assert srv.connections == 2
    assert b"Content-Length: 3\r\n" in srv.requests[0] and srv.requests[0].endswith(b"abc")


def test_streamed_body_without_length_is_chunked(raw_server: Callable[[Script], RawServer]) -> None:
    got: list[bytes] = []

    def script(conn: socket.socket, n: int) -> None:
        buf = b""
        while not buf.endswith(b"0\r\n\r\n"):
            buf += conn.recv(65536)
        got.append(buf)
        conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")

    srv = raw_server(script)

    class Body:
        def __init__(self) -> None:
            self.parts = [b"abc", b"defg"]

        def read(self, n: int = -1) -> bytes:
            return self.parts.pop(0) if self.parts else b""

    r = PlainHTTPPool(blocksize=4).request("PATCH", f"{srv.url}/u", headers={}, body=Body())
    assert r.status == 201
    assert got[0].endswith(b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")


def test_header_injection_and_headers_mapping() -> None:
    with pytest.raises(RegistryError, match="invalid character"):
        PlainHTTPPool().request("GET", "http://127.0.0.1:9/x", headers={"X": "a\r\nEvil: 1"})
    h = Headers([("Content-Type", "a"), ("X-A", "1"), ("x-a", "2")])
    assert dict(h) == {"Content-Type": "a", "X-A": "1, 2"} and "content-type" in h and h.get("nope") is None


def test_transport_maps_socket_failures(raw_server: Callable[[Script], RawServer]) -> None:
    def script(conn: socket.socket, n: int) -> None:
        srv.read_request(conn)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST

    srv = raw_server(script)
    t = Transport(f"127.0.0.1:{srv.port}", trust=TrustConfig())
    with pytest.raises(TransientError, match=r"connection to 127\.0\.0\.1:\d+ failed: "):
        t.request("GET", f"{srv.url}/v2/")
    with pytest.raises(RegistryError, match="invalid registry URL"):
        t.request("GET", "http://127.0.0.1:notaport/v2/")
    t.close()


def test_plain_http_push_imports_no_urllib3_ssl_or_email(
    registry_plain: RegistryInfo, idp_home: Path
) -> None:
    src = "example.com/src/imports:v1"
    make_image(idp_home, src, [2000])
    dest = registry_plain.ref(f"{unique('imports')}/app:v1")
    env = hermetic_env(idp_home)
    for run in range(2):  # cold push, then warm push
        p = subprocess.run(
            [
                sys.executable,
                "-X",
                "importtime",
                "-m",
                "idpbuilder",
                "push",
                "--progress",
                "quiet",
                src,
                dest,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert p.returncode == 0, p.stderr[-3000:]
        imported = {line.rsplit("|", 1)[-1].strip() for line in p.stderr.splitlines() if "|" in line}
        assert "idpbuilder.registry.plainhttp" in imported
        heavy = {"urllib3", "ssl", "http.client", "email", "importlib.metadata", "rich", "lightkube", "yaml"}
        assert not heavy & imported, (run, heavy & imported)


def test_an_answer_before_the_whole_body_is_read(raw_server: Callable[[Script], RawServer]) -> None:
    def script(conn: socket.socket, n: int) -> None:
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += conn.recv(65536)
        # answer and close at once (a reset: the body is unread), as a proxy enforcing a size limit may
        conn.sendall(b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 4\r\n\r\nbig!")

    srv = raw_server(script)
    pool = PlainHTTPPool()
    for _ in range(3):  # the upload breaks off (EPIPE / ECONNRESET); the answer is still read
        r = pool.request("PUT", f"{srv.url}/big", headers={}, body=b"x" * (64 << 20))
        assert (r.status, r.data) == (413, b"big!")
