"""A small HTTP/1.1 client on plain sockets, used by ``Transport`` for ``http://`` URLs.

Why not urllib3 for these too: importing urllib3 loads ``http.client``, the ``email`` package, ``ssl`` and
``importlib.metadata`` — about a third of a warm push's start-up — while a plain-HTTP (loopback) registry
needs none of it. This module needs only ``socket`` and ``select``. It implements what the registry client
uses: keep-alive connections per host (idle ones checked before reuse), ``Content-Length`` and chunked
request bodies streamed from file-like objects, ``Content-Length`` / chunked / read-until-close response
bodies, and urllib3's response surface (``status``, ``reason``, ``headers``, ``data``, ``read``, ``stream``,
``release_conn``, ``drain_conn``). Content is never decoded: requests say ``Accept-Encoding: identity``.

Connection failures surface as the builtin ``OSError`` family (``socket.gaierror``, ``ConnectionRefusedError``,
``TimeoutError`` …) for ``Transport`` to map; a connection that breaks while a response body is read raises
``TransientError`` from ``read``/``stream``/``data``.
"""

from __future__ import annotations

import io
import select
import socket
import threading
from collections.abc import Iterator, Mapping
from typing import IO, Any, Protocol, cast
from urllib.parse import urlsplit

from idpbuilder.errors import RegistryError, TransientError

__all__ = ["Headers", "PlainHTTPPool", "PlainResponse"]

_MAX_LINE = 65536
_MAX_HEADERS = 200
_DRAIN_LIMIT = 1 << 20
_NO_BODY_STATUS = frozenset({204, 304})


class Headers(Mapping[str, str]):
    """Case-insensitive response headers; repeated fields are joined with ``", "`` (as urllib3 does)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._map: dict[str, tuple[str, str]] = {}
        for name, value in pairs:
            key = name.lower()
            if key in self._map:
                first, old = self._map[key]
                self._map[key] = (first, f"{old}, {value}")
            else:
                self._map[key] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._map[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._map.values())

    def __len__(self) -> int:
        return len(self._map)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._map

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


class _Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class _Conn:
    """One socket with a buffered reader, for one host:port."""

    def __init__(self, sock: socket.socket, key: tuple[str, int]) -> None:
        self.sock = sock
        self.key = key
        self.rfile = cast(io.BufferedReader, sock.makefile("rb", buffering=1 << 16))
        self.reused = False

    def dropped(self) -> bool:
        """True when an idle connection was closed by the server (readable = EOF or stray bytes)."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        try:
            self.rfile.close()
        finally:
            self.sock.close()


class PlainResponse:
    """A response whose body is read on demand from its connection (or preloaded)."""

    def __init__(
        self,
        pool: PlainHTTPPool,
        conn: _Conn,
        *,
        status: int,
        reason: str,
        headers: Headers,
        keep_alive: bool,
        length: int | None,
        chunked: bool,
        host: str,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self._pool = pool
        self._conn: _Conn | None = conn
        self._keep_alive = keep_alive
        self._left = length  # bytes left (Content-Length); None: chunked or until close
        self._chunked = chunked
        self._chunk_left = 0
        self._done = length == 0
        self._host = host
        self._data: bytes | None = None

    # ---- body --------------------------------------------------------------------------------------------
    def _fail(self, what: str) -> TransientError:
        self._close()
        return TransientError(f"connection to {self._host} failed: {what}")

    def _read_raw(self, n: int) -> bytes:
        """Up to ``n`` (> 0) body bytes; b"" at the end of the body."""
        if self._done or self._conn is None:
            return b""
        rfile = self._conn.rfile
        try:
            if self._chunked:
                if self._chunk_left == 0:
                    line = rfile.readline(_MAX_LINE)
                    if not line:
                        raise self._fail("the server closed the connection")
                    try:
                        size = int(line.split(b";", 1)[0].strip(), 16)
                    except ValueError:
                        raise self._fail("invalid chunked encoding") from None
                    if size == 0:
                        while True:  # trailers up to the empty line
                            t = rfile.readline(_MAX_LINE)
                            if not t or t in (b"\r\n", b"\n"):
                                break
                        self._finish()
                        return b""
                    self._chunk_left = size
                data = rfile.read1(min(n, self._chunk_left)) if n > 0 else b""
                if not data:
                    raise self._fail("the server closed the connection")
                self._chunk_left -= len(data)
                if self._chunk_left == 0 and rfile.readline(_MAX_LINE) not in (b"\r\n", b"\n"):
                    raise self._fail("invalid chunked encoding")
                return data
            if self._left is not None:
                data = rfile.read1(min(n, self._left))
                if not data:
                    raise self._fail(f"the server closed the connection ({self._left} bytes missing)")
                self._left -= len(data)
                if self._left == 0:
                    self._finish()
                return data
            data = rfile.read1(n)  # until close
            if not data:
                self._keep_alive = False
                self._finish()
            return data
        except TransientError:
            raise
        except OSError as e:
            raise self._fail(_os_reason(e)) from None

    def read(self, amt: int | None = None, decode_content: bool | None = None) -> bytes:
        """Up to ``amt`` bytes of the body (everything when None/negative)."""
        if self._data is not None:
            data, self._data = (
                (self._data, b"") if amt is None or amt < 0 else (self._data[:amt], self._data[amt:])
            )
            return data
        parts: list[bytes] = []
        want = -1 if amt is None or amt < 0 else amt
        got = 0
        while want < 0 or got < want:
            chunk = self._read_raw((1 << 20) if want < 0 else want - got)
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def stream(self, amt: int = 1 << 16, decode_content: bool | None = None) -> Iterator[bytes]:
        """The body in pieces of at most ``amt`` bytes."""
        if self._data is not None:
            data, self._data = self._data, b""
            for i in range(0, len(data), amt):
                yield data[i : i + amt]
            return
        while True:
            chunk = self._read_raw(amt)
            if not chunk:
                return
            yield chunk

    def preload(self) -> None:
        """Read the whole body now and give the connection back."""
        self._data = self.read()
        self.release_conn()

    @property
    def data(self) -> bytes:
        """The whole body (read now if it was not preloaded)."""
        if self._data is None:
            self._data = self.read()
            self.release_conn()
        return self._data

    # ---- connection --------------------------------------------------------------------------------------
    def _finish(self) -> None:
        self._done = True
        conn, self._conn = self._conn, None
        if conn is not None:
            if self._keep_alive:
                self._pool._put(conn)
            else:
                conn.close()

    def _close(self) -> None:
        self._done = True
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def release_conn(self) -> None:
        """Return the connection to the pool when the body was read completely, else close it."""
        if self._conn is None:
            return
        if self._done:
            self._finish()
        else:
            self._close()

    def drain_conn(self) -> None:
        """Read and discard what is left of a short body so the connection can be reused."""
        try:
            left = _DRAIN_LIMIT
            while self._conn is not None and not self._done and left > 0:
                chunk = self._read_raw(min(left, 1 << 16))
                if not chunk:
                    break
                left -= len(chunk)
        except TransientError:
            pass
        self.release_conn()


class PlainHTTPPool:
    """Keep-alive ``http://`` connections per host:port, thread-safe, at most ``maxsize`` idle per host."""

    def __init__(
        self,
        *,
        maxsize: int = 4,
        connect_timeout: float = 15.0,
        read_timeout: float = 300.0,
        blocksize: int = 1 << 20,
    ) -> None:
        self._maxsize = max(maxsize, 1)
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._blocksize = blocksize
        self._idle: dict[tuple[str, int], list[_Conn]] = {}
        self._lock = threading.Lock()

    def _get(self, key: tuple[str, int]) -> _Conn:
        while True:
            with self._lock:
                idle = self._idle.get(key)
                conn = idle.pop() if idle else None
            if conn is None:
                break
            if conn.dropped():
                conn.close()
                continue
            conn.reused = True
            return conn
        sock = socket.create_connection(key, timeout=self._connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self._read_timeout)
        except OSError:
            sock.close()
            raise
        return _Conn(sock, key)

    def _put(self, conn: _Conn) -> None:
        with self._lock:
            idle = self._idle.setdefault(conn.key, [])
            if len(idle) < self._maxsize:
                idle.append(conn)
                return
        conn.close()

    def clear(self) -> None:
        """Close every idle connection."""
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for c in conns:
            c.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes | IO[bytes] | Any | None = None,
        preload_content: bool = True,
    ) -> PlainResponse:
        """Send one request and read the status and headers (and the body when ``preload_content``)."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise RegistryError(f"not a plain-HTTP URL: {parts.scheme}://{parts.netloc}")
        key = (parts.hostname, parts.port or 80)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        head, chunked_body = self._head(method, target, parts.netloc, headers, body)
        resendable = body is None or isinstance(body, bytes)
        for attempt in (1, 2):
            conn = self._get(key)
            try:
                try:
                    self._send(conn, head, body, chunked_body)
                except (BrokenPipeError, ConnectionResetError):
                    # the server may have answered before taking the whole body (413, 401): read that answer
                    # (as urllib3 does); without one, the send error stands
                    try:
                        resp = self._read_head(conn, method, parts.netloc)
                    except (OSError, _EmptyReply):
                        raise ConnectionResetError(
                            "the server closed the connection during the upload"
                        ) from None
                    resp._keep_alive = False
                else:
                    resp = self._read_head(conn, method, parts.netloc)
            except (ConnectionError, _EmptyReply) as e:
                conn.close()
                # a kept-alive connection the server closed just as it was reused: once more on a new one
                if attempt == 1 and conn.reused and resendable:
                    continue
                if isinstance(e, _EmptyReply):
                    raise ConnectionAbortedError(
                        "the server closed the connection without answering"
                    ) from None
                raise
            except BaseException:
                conn.close()
                raise
            if preload_content:
                resp.preload()
            return resp
        raise AssertionError("unreachable")

    # ---- wire --------------------------------------------------------------------------------------------
    @staticmethod
    def _head(
        method: str, target: str, netloc: str, headers: Mapping[str, str], body: object
    ) -> tuple[bytes, bool]:
        names = {k.lower() for k in headers}
        lines = [f"{method} {target} HTTP/1.1"]
        if "host" not in names:
            lines.append(f"Host: {netloc}")
        if "accept-encoding" not in names:
            lines.append("Accept-Encoding: identity")
        chunked = False
        if "content-length" not in names and "transfer-encoding" not in names:
            if isinstance(body, bytes):
                lines.append(f"Content-Length: {len(body)}")
            elif body is not None:
                lines.append("Transfer-Encoding: chunked")
                chunked = True
            elif method in ("POST", "PUT", "PATCH"):
                lines.append("Content-Length: 0")
        for k, v in headers.items():
            if any(c in k or c in v for c in "\r\n\0"):
                raise RegistryError(f"invalid character in HTTP header {k!r}")
            lines.append(f"{k}: {v}")
        text = "\r\n".join(lines) + "\r\n\r\n"
        try:
            return text.encode("latin-1"), chunked
        except UnicodeEncodeError:
            raise RegistryError(f"{method} {target}: request line or header is not Latin-1 text") from None

    def _send(self, conn: _Conn, head: bytes, body: object, chunked: bool) -> None:
        sock = conn.sock
        if body is None:
            sock.sendall(head)
        elif isinstance(body, bytes):
            sock.sendall(head + body if len(body) <= 1 << 16 else head)
            if len(body) > 1 << 16:
                sock.sendall(body)
        else:
            sock.sendall(head)
            reader = cast(_Readable, body)
            while True:
                block = reader.read(self._blocksize)
                if not block:
                    break
                if chunked:
                    sock.sendall(b"%x\r\n" % len(block) + block + b"\r\n")
                else:
                    sock.sendall(block)
            if chunked:
                sock.sendall(b"0\r\n\r\n")

    def _read_head(self, conn: _Conn, method: str, host: str) -> PlainResponse:
        rfile = conn.rfile
        while True:
            line = rfile.readline(_MAX_LINE + 1)
            if not line:
                raise _EmptyReply()
            if len(line) > _MAX_LINE:
                raise ConnectionAbortedError("status line too long")
            try:
                version, status_text, *rest = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
                status = int(status_text)
            except ValueError:
                raise ConnectionAbortedError(f"invalid HTTP status line {line[:60]!r}") from None
            if not version.startswith("HTTP/"):
                raise ConnectionAbortedError(f"invalid HTTP status line {line[:60]!r}")
            pairs: list[tuple[str, str]] = []
            while True:
                h = rfile.readline(_MAX_LINE + 1)
                if not h:
                    raise ConnectionAbortedError("the server closed the connection in the headers")
                if h in (b"\r\n", b"\n"):
                    break
                if len(pairs) >= _MAX_HEADERS or len(h) > _MAX_LINE:
                    raise ConnectionAbortedError("too many or too long response headers")
                name, sep, value = h.decode("latin-1").partition(":")
                if sep:
                    pairs.append((name.strip(), value.strip()))
            if 100 <= status < 200 and status != 101:
                continue  # 100 Continue and other interim answers
            break
        headers = Headers(pairs)
        conn_hdr = (headers.get("Connection") or "").lower()
        keep_alive = "close" not in conn_hdr and (version != "HTTP/1.0" or "keep-alive" in conn_hdr)
        chunked = "chunked" in (headers.get("Transfer-Encoding") or "").lower()
        length: int | None = None
        if method == "HEAD" or status in _NO_BODY_STATUS:
            length, chunked = 0, False
        elif not chunked and headers.get("Content-Length") is not None:
            try:
                length = int(headers["Content-Length"].split(",")[0].strip())
            except ValueError:
                raise ConnectionAbortedError("invalid Content-Length") from None
            if length < 0:
                raise ConnectionAbortedError("invalid Content-Length")
        elif not chunked:
            keep_alive = False  # the body ends when the server closes the connection
        return PlainResponse(
            self,
            conn,
            status=status,
            reason=rest[0] if rest else "",
            headers=headers,
            keep_alive=keep_alive,
            length=length,
            chunked=chunked,
            host=host,
        )


class _EmptyReply(Exception):
    """The connection closed before any byte of a status line arrived."""


def _os_reason(e: OSError) -> str:
    if isinstance(e, TimeoutError):
        return "timed out"
    if isinstance(e, ConnectionResetError):
        return "connection reset by peer"
    return e.strerror or type(e).__name__
