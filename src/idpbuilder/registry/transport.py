"""HTTP for one registry: urllib3 (imported on first use) with the registry's TLS trust.

One pool per scheme; the SSL context (system CAs) is built only when https is used. Requests return a
:class:`Response` whose body reads raise ``TransientError`` when the connection breaks. File bodies with
Content-Length in 1 MiB blocks, redacted debug traces.

Network failures become ``TransientError`` (retried by the caller), certificate failures ``TLSError``
with a hint. Connection refused and DNS failures become ``UnreachableError``, marked ``first_contact``
while no request to that host has been answered through this transport (the retry loop then gives up
after two quick attempts instead of the full backoff). Redirects are never followed automatically: GET/HEAD
follow them here, uploads handle 307/308 in the client (urllib3 issue: bodies are not rewound).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import re
import socket
import sys
import threading
import time
import weakref
from collections.abc import Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, Protocol
from urllib.parse import urljoin, urlsplit

from idpbuilder.credentials.tls import TrustConfig
from idpbuilder.errors import RegistryError, TLSError, TransientError
from idpbuilder.registry.retry import DEFAULT_TIMEOUT, StallError, UnreachableError

if TYPE_CHECKING:
    import urllib3

__all__ = [
    "BLOCK_SIZE",
    "NoAnswerError",
    "PlainHTTPError",
    "Response",
    "Transport",
    "redact_headers",
    "redact_url",
]

log = logging.getLogger("idpbuilder.registry.http")

BLOCK_SIZE = 1 << 20
# request bodies go out in slices this big, each with the stall timeout: a slow upload that keeps moving
# (a slice per timeout, ~2 KiB/s at 30 s) never times out, a peer that takes nothing does
SEND_SLICE = 64 * 1024
# a string: compiled (and cached by re) on first use, not at start-up
_SECRET_PARAMS = (
    r"(?i)([?&](?:token|access_token|refresh_token|password|client_secret|x-amz-signature|signature)=)[^&#]*"
)
_SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-registry-auth"}
_MAX_REDIRECTS = 5
_UNREACHABLE_ERRNOS = frozenset({errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH})


def redact_url(url: str) -> str:
    """The URL with credentials in userinfo and token-like query values replaced by ``***``."""
    url = re.sub(r"://[^/@\s]+@", "://***@", url)
    return re.sub(_SECRET_PARAMS, r"\1***", url)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers safe to log: auth values reduced to their scheme."""
    out: dict[str, str] = {}
    for k, v in headers.items():
        if k.lower() in _SECRET_HEADERS:
            scheme = v.split(" ", 1)[0] if " " in v else ""
            out[k] = f"{scheme} ***".strip()
        elif k.lower() == "location":
            out[k] = redact_url(v)
        else:
            out[k] = v
    return out


def _is_cert_error(e: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        ssl = sys.modules.get("ssl")  # only https requests can fail this way, and they loaded ssl
        if ssl is not None and isinstance(cur, ssl.SSLCertVerificationError):
            return True
        if "CERTIFICATE_VERIFY_FAILED" in str(cur) or "certificate verify failed" in str(cur):
            return True
        cur = (
            cur.__cause__
            or cur.__context__
            or (cur.args[0] if cur.args and isinstance(cur.args[0], BaseException) else None)
        )
    return False


def _is_plain_http_answer(e: BaseException) -> bool:
    """A TLS handshake that met a plain-HTTP server (``wrong version number``)."""
    text = str(e).lower()
    return "wrong version number" in text or "record layer failure" in text or "http request" in text


class _Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class Response(Protocol):
    """What both backends return: urllib3's response surface, body reads raising ``TransientError``."""

    @property
    def status(self) -> int: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def data(self) -> bytes: ...
    def read(self, amt: int | None = None, decode_content: bool | None = None) -> bytes: ...
    def stream(self, amt: int = 65536, decode_content: bool | None = None) -> Iterator[bytes]: ...
    def release_conn(self) -> None: ...
    def drain_conn(self) -> None: ...


class _Urllib3Response:
    """A urllib3 response whose body reads raise ``TransientError`` instead of urllib3's errors."""

    def __init__(self, resp: urllib3.BaseHTTPResponse, host: str, timeout: float) -> None:
        self._resp = resp
        self._host = host
        self._timeout = timeout
        self.status = resp.status
        self.reason = resp.reason
        self.headers: Mapping[str, str] = resp.headers

    def _broken(self, e: Exception) -> TransientError:
        if _is_timeout(e):
            return StallError(self._host, self._timeout)
        return TransientError(f"connection to {self._host} failed: {_reason(e)} ({type(e).__name__})")

    @property
    def data(self) -> bytes:
        try:
            return self._resp.data
        except Exception as e:
            if not _is_io_error(e):
                raise
            raise self._broken(e) from None

    def read(self, amt: int | None = None, decode_content: bool | None = None) -> bytes:
        try:
            return self._resp.read(amt, decode_content=decode_content)
        except Exception as e:
            if not _is_io_error(e):
                raise
            raise self._broken(e) from None

    def stream(self, amt: int = 65536, decode_content: bool | None = None) -> Iterator[bytes]:
        try:
            yield from self._resp.stream(amt, decode_content=decode_content)
        except Exception as e:
            if not _is_io_error(e):
                raise
            raise self._broken(e) from None

    def release_conn(self) -> None:
        self._resp.release_conn()

    def drain_conn(self) -> None:
        self._resp.drain_conn()


class Transport:
    """A thread-safe connection pool for one registry host (and its token realm)."""

    def __init__(
        self,
        registry: str,
        *,
        trust: TrustConfig,
        maxsize: int = 4,
        connect_timeout: float = 15.0,
        read_timeout: float = DEFAULT_TIMEOUT,
        user_agent: str = "idpbuilder",
    ) -> None:
        self.registry = registry
        self.trust = trust
        self.user_agent = user_agent
        self._connect_timeout = min(connect_timeout, read_timeout)
        self._read_timeout = read_timeout
        self._maxsize = max(maxsize, 1)
        self._pools: dict[str, urllib3.PoolManager] = {}
        self._lock = threading.Lock()
        self._reached: set[str] = set()  # hosts (netloc) that answered at least one request
        self._conns: weakref.WeakSet[Any] = weakref.WeakSet()  # every connection opened, for close()

    def reached(self, url_or_host: str) -> bool:
        """Whether any request to this URL's host (or ``host[:port]``) has been answered."""
        netloc = urlsplit(url_or_host).netloc if "://" in url_or_host else url_or_host
        return netloc.lower() in self._reached

    def _pool(self, scheme: str) -> urllib3.PoolManager:
        """The pool for ``scheme``; the SSL context (system CAs: ~0.1 s to load) only when https is used."""
        import urllib3

        with self._lock:
            pool = self._pools.get(scheme)
            if pool is None:
                kw: dict[str, Any] = {}
                if scheme == "https":
                    kw["ssl_context"] = self.trust.ssl_context(self.registry)
                    if self.trust.insecure:
                        kw["assert_hostname"] = False
                        kw["cert_reqs"] = "CERT_NONE"
                        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
                pool = urllib3.PoolManager(
                    num_pools=4, maxsize=self._maxsize, block=False, blocksize=BLOCK_SIZE, retries=False, **kw
                )
                pool.pool_classes_by_scheme = _tracking_pool_classes(self._conns, self._read_timeout)  # type: ignore[assignment]
                self._pools[scheme] = pool
            return pool

    def close(self) -> None:
        """Close every connection, also those with a request in flight (a cancelled transfer stops at once).

        Other threads blocked on such a request (sending a body the kernel buffered, or waiting for the answer)
        get a connection error right away instead of after the transfer or the read timeout.
        """
        with self._lock:
            conns = list(self._conns)
            for pool in self._pools.values():
                pool.clear()
        for conn in conns:
            sock = getattr(conn, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | IO[bytes] | _Readable | None = None,
        stream: bool = False,
        follow_redirects: bool | None = None,
    ) -> Response:
        """Send one request; GET/HEAD follow redirects (dropping Authorization across hosts)."""
        hdrs = {"User-Agent": self.user_agent, **(headers or {})}
        follow = method in ("GET", "HEAD") if follow_redirects is None else follow_redirects
        for _ in range(_MAX_REDIRECTS + 1):
            resp = self._send(method, url, hdrs, body, stream)
            if follow and resp.status in (301, 302, 303, 307, 308) and resp.headers.get("Location"):
                resp.drain_conn()
                resp.release_conn()
                new = urljoin(url, resp.headers["Location"])
                if urlsplit(new).netloc != urlsplit(url).netloc:
                    hdrs = {k: v for k, v in hdrs.items() if k.lower() != "authorization"}
                url = new
                continue
            return resp
        raise RegistryError(f"{method} {redact_url(url)}: too many redirects")

    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | IO[bytes] | _Readable | None,
        stream: bool,
    ) -> Response:
        start = time.monotonic()
        debug = log.isEnabledFor(logging.DEBUG)
        resp: Response
        try:
            resp = self._urllib3_request(method, url, headers, body, stream)
        except Exception as e:
            if debug:
                log.debug("HTTP %s %s -> %s", method, redact_url(url), type(e).__name__)
            raise self._map_error(e, method, url) from None
        self._reached.add(urlsplit(url).netloc.lower())
        if debug:
            log.debug(
                "HTTP %s %s -> %d (%.0f ms) request=%s response=%s",
                method,
                redact_url(url),
                resp.status,
                (time.monotonic() - start) * 1000,
                redact_headers(headers),
                redact_headers(dict(resp.headers)),
            )
        return resp

    def _urllib3_request(
        self, method: str, url: str, headers: dict[str, str], body: object, stream: bool
    ) -> Response:
        import urllib3

        pool = self._pool("https" if url[:6].lower() == "https:" else "http")
        raw = pool.urlopen(
            method,
            url,
            body=body,
            headers=headers,
            redirect=False,
            retries=False,
            preload_content=not stream,
            timeout=urllib3.Timeout(connect=self._connect_timeout, read=self._read_timeout),
            assert_same_host=False,
        )
        return _Urllib3Response(raw, urlsplit(url).netloc, self._read_timeout)

    def _map_error(self, e: BaseException, method: str, url: str) -> Exception:
        if isinstance(e, RegistryError):
            return e
        if type(e).__module__.startswith("urllib3"):
            return self._map_urllib3_error(e, method, url)
        host = urlsplit(url).netloc
        if isinstance(e, ValueError):  # a port that is not a number, a malformed URL
            return RegistryError(f"invalid registry URL {redact_url(url)}")
        first = host.lower() not in self._reached
        if isinstance(e, socket.gaierror):
            return UnreachableError(f"cannot resolve registry host {host}", host=host, first_contact=first)
        if isinstance(e, OSError) and e.errno in _UNREACHABLE_ERRNOS:
            return UnreachableError(f"cannot connect to {host}: {_reason(e)}", host=host, first_contact=first)
        if isinstance(e, TimeoutError):
            return StallError(host, self._read_timeout)
        if isinstance(e, OSError):
            return TransientError(f"connection to {host} failed: {_reason(e)}")
        return e if isinstance(e, Exception) else RuntimeError(str(e))

    def _map_urllib3_error(self, e: BaseException, method: str, url: str) -> Exception:
        import ssl

        from urllib3.exceptions import (
            ConnectTimeoutError,
            HTTPError,
            LocationParseError,
            NameResolutionError,
            NewConnectionError,
            ProtocolError,
            SSLError,
        )
        from urllib3.exceptions import TimeoutError as Urllib3Timeout

        host = urlsplit(url).netloc
        where = f"{method} {redact_url(url)}"
        if isinstance(e, SSLError) or isinstance(e, ssl.SSLError):
            if _is_cert_error(e):
                return TLSError(
                    f"cannot verify the TLS certificate of {host}: certificate signed by unknown authority",
                    hint=f"pass --ca-file FILE (or set IDPBUILDER_CA_FILE) with the CA that signed {host}'s "
                    "certificate, or --insecure to skip verification; for an idpbuilder cluster the CA is read "
                    "from it (check --kubeconfig/--context) and `idpbuilder cert export -o ca.pem` saves it",
                )
            if _is_plain_http_answer(e):
                return PlainHTTPError(f"{host} does not speak TLS ({where})")
            return TransientError(f"TLS error talking to {host}: {_reason(e)}")
        first = host.lower() not in self._reached
        if isinstance(e, NameResolutionError):
            return UnreachableError(f"cannot resolve registry host {host}", host=host, first_contact=first)
        if isinstance(e, NewConnectionError):
            if _errno(e) in _UNREACHABLE_ERRNOS:
                return UnreachableError(
                    f"cannot connect to {host}: {_reason(e)}", host=host, first_contact=first
                )
            return TransientError(f"cannot connect to {host}: {_reason(e)}")
        if isinstance(e, ConnectTimeoutError):
            return TransientError(f"cannot connect to {host}: timed out after {self._connect_timeout:g} s")
        if isinstance(e, Urllib3Timeout) or (isinstance(e, ProtocolError) and _is_timeout(e)):
            return StallError(host, self._read_timeout)
        if isinstance(e, ProtocolError):
            if _no_answer(e):
                return NoAnswerError(f"connection to {host} failed: {_reason(e)}")
            return TransientError(f"connection to {host} failed: {_reason(e)}")
        if isinstance(e, LocationParseError):
            return RegistryError(f"invalid registry URL {redact_url(url)}")
        if isinstance(e, HTTPError | OSError):
            return TransientError(f"{where} failed: {_reason(e)}")
        return e if isinstance(e, Exception) else RuntimeError(str(e))

    @staticmethod
    def join(base: str, location: str) -> str:
        """Resolve a (possibly relative) ``Location`` against ``base``."""
        return urljoin(base, location)


def _tracking_pool_classes(conns: weakref.WeakSet[Any], stall_timeout: float) -> dict[str, type]:
    """urllib3 pool classes whose connections add themselves to ``conns`` when they connect, and send request
    bodies in slices that each get ``stall_timeout`` (progress-aware: only a peer that takes nothing stalls)."""
    import urllib3
    from urllib3.connection import HTTPConnection, HTTPSConnection

    def send_sliced(conn: HTTPConnection, data: Any, send: Any) -> None:
        sock = conn.sock
        if sock is not None:
            sock.settimeout(stall_timeout)
        if isinstance(data, bytes | bytearray | memoryview) and len(data) > SEND_SLICE:
            view = memoryview(data)
            for i in range(0, len(view), SEND_SLICE):
                send(view[i : i + SEND_SLICE])
        else:
            send(data)

    class _Conn(HTTPConnection):
        def connect(self) -> None:
            super().connect()
            conns.add(self)

        def send(self, data: Any) -> None:
            send_sliced(self, data, super().send)

        def getresponse(self) -> Any:
            _await_answer(self.sock, stall_timeout)
            return super().getresponse()

    class _TLSConn(HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            conns.add(self)

        def send(self, data: Any) -> None:
            send_sliced(self, data, super().send)

        def getresponse(self) -> Any:
            _await_answer(self.sock, stall_timeout)
            return super().getresponse()

    class _Pool(urllib3.HTTPConnectionPool):
        ConnectionCls = _Conn

    class _TLSPool(urllib3.HTTPSConnectionPool):
        ConnectionCls = _TLSConn

    return {"http": _Pool, "https": _TLSPool}


class PlainHTTPError(RegistryError):
    """An https:// request reached a server that answers plain HTTP."""


class NoAnswerError(TransientError):
    """The peer closed or reset the connection before sending a single byte of an answer."""


def _no_answer(e: BaseException) -> bool:
    """Whether the chain of ``e`` says the connection ended before any byte of the answer arrived."""
    import http.client

    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError):
            return True
        cur = (
            cur.__cause__
            or cur.__context__
            or next((a for a in cur.args if isinstance(a, BaseException)), None)
        )
    return False


def _is_io_error(e: BaseException) -> bool:
    """An error of the connection (socket or urllib3), not of the caller's code."""
    return isinstance(e, OSError) or type(e).__module__.startswith("urllib3")


def _await_answer(sock: socket.socket | None, timeout: float) -> None:
    """Before the read timeout starts: wait while the request body still drains from the send queue.

    The last ``send`` returns once the kernel has the bytes; on a slow link megabytes may still be on their way.
    While the unacknowledged queue (``SIOCOUTQ``) keeps shrinking the upload is moving, so the stall clock
    starts only when it is empty or stuck for ``timeout`` seconds, or when the answer begins to arrive.
    """
    if sock is None:
        return
    import fcntl
    import select
    import struct
    import termios

    poller = select.poll()
    try:
        poller.register(sock.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    except (OSError, ValueError):
        return
    last: int | None = None
    since = time.monotonic()
    while True:
        if poller.poll(min(timeout, 1.0) * 1000):
            return
        try:
            queued = int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0])
        except (OSError, ValueError):
            return
        now = time.monotonic()
        if queued <= 0:
            return
        if last is None or queued < last:
            last, since = queued, now
        elif now - since >= timeout:
            return


def _is_timeout(e: BaseException) -> bool:
    """A socket timeout anywhere in the chain of ``e`` (urllib3 wraps a timed-out send in ProtocolError)."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, TimeoutError) or type(cur).__name__ in ("ReadTimeoutError", "TimeoutError"):
            return True
        cur = (
            cur.__cause__
            or cur.__context__
            or next((a for a in cur.args if isinstance(a, BaseException)), None)
        )
    return False


def _errno(e: BaseException) -> int | None:
    """The errno of the OS error behind a urllib3 connection error, if any."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno is not None:
            return cur.errno
        cur = cur.__cause__ or cur.__context__
    return None


def _reason(e: BaseException) -> str:
    # urllib3 wraps the interesting bit; keep the message short and free of URLs with secrets
    inner: Any = e
    for attr in ("reason", "__cause__", "__context__"):
        nxt = getattr(inner, attr, None)
        if isinstance(nxt, BaseException):
            inner = nxt
    text = str(inner) or type(inner).__name__
    if "Connection refused" in text:
        return "connection refused"
    if "Connection reset" in text:
        return "connection reset by peer"
    if "Remote end closed" in text or "RemoteDisconnected" in text:
        return "the server closed the connection"
    text = re.sub(r"<urllib3[^>]*>:?\s*", "", text)
    return redact_url(text)[:200]
