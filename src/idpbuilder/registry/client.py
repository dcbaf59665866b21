"""A thin OCI distribution client for one registry: ping, blobs (HEAD/GET/mount/upload), manifests, tags,
the repository catalog, and authenticated JSON GETs (``get_json``) with ``Link`` pagination.

Every public operation runs inside ``RetryPolicy.run`` (one retry loop, one predicate); a blob
upload or download that fails transiently restarts from the first byte with a new session.
Uploads stream from disk with ``Content-Length`` (no chunked transfer encoding), monolithic
``POST`` + ``PUT`` up to ``monolithic_threshold`` and ``PATCH`` chunks with ``Content-Range`` above it
(chunks stay well under the 1 GiB body limit of the idpbuilder ingress). A chunk answered with 416 or a
transient failure re-syncs: ``GET`` on the session says how many bytes the registry holds and the upload
goes on from there (a session the registry dropped starts the blob over). Every uploaded byte is hashed on
the way out, so a damaged local blob fails before the registry completes it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

from idpbuilder.credentials.keychain import AnonymousKeychain, Credential, Keychain
from idpbuilder.credentials.tls import TrustConfig, is_loopback
from idpbuilder.digest import Digest, sha256_bytes
from idpbuilder.errors import (
    AuthError,
    DigestMismatchError,
    Interrupted,
    NotFoundError,
    RegistryError,
    TLSError,
    TransientError,
    UsageError,
)
from idpbuilder.oci import INDEX_TYPES, MANIFEST_TYPES, MT_DOCKER_MANIFEST_LIST, MT_OCI_INDEX, MT_OCI_MANIFEST
from idpbuilder.registry.auth import Authenticator, authorization, scope_for
from idpbuilder.registry.retry import (
    RETRYABLE_CODES,
    RETRYABLE_STATUS,
    RetriesExhausted,
    RetryPolicy,
    ThrottledError,
)
from idpbuilder.registry.transport import BLOCK_SIZE, PlainHTTPError, Response, Transport

__all__ = [
    "CATALOG_PAGE_SIZE",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MONOLITHIC_THRESHOLD",
    "JsonPage",
    "ManifestData",
    "RegistryClient",
    "RegistrySettings",
    "BlobSink",
    "endpoint_host",
    "next_link",
    "short_digest",
]

log = logging.getLogger("idpbuilder.registry")

MiB = 1 << 20
DEFAULT_CHUNK_SIZE = 256 * MiB
DEFAULT_MONOLITHIC_THRESHOLD = 64 * MiB
MAX_CHUNK_SIZE = 1000 * MiB  # the idpbuilder ingress rejects bodies over 1 GiB with 413
MANIFEST_ACCEPT = ", ".join(
    [
        MT_OCI_MANIFEST,
        MT_OCI_INDEX,
        "application/vnd.docker.distribution.manifest.v2+json",
        MT_DOCKER_MANIFEST_LIST,
    ]
)
_MAX_MANIFEST = 10 * MiB
_MAX_RESYNCS = 3  # upload status checks in a row that gain nothing before the blob restarts from scratch
_MAX_JSON = 64 * MiB
_MAX_PAGES = 10_000
CATALOG_PAGE_SIZE = 100  # Gitea caps n at 100
TAGS_PAGE_SIZE = 1000


def endpoint_host(registry: str) -> str:
    """The host to talk to for a registry name (Docker Hub → ``registry-1.docker.io``)."""
    return "registry-1.docker.io" if registry in ("docker.io", "index.docker.io") else registry


def short_digest(d: Digest) -> str:
    """``sha256:ab12cd34ef56…`` for messages."""
    return f"{d.algorithm}:{d.hex[:12]}…"


@dataclass(frozen=True)
class RegistrySettings:
    """What every registry operation needs: credentials, TLS trust, retry policy and upload tuning."""

    keychain: Keychain = field(default_factory=AnonymousKeychain)
    trust: TrustConfig = field(default_factory=TrustConfig)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    jobs: int = 4
    chunk_size: int = DEFAULT_CHUNK_SIZE
    monolithic_threshold: int = DEFAULT_MONOLITHIC_THRESHOLD
    cancel: threading.Event = field(default_factory=threading.Event, compare=False)

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise UsageError("--jobs must be at least 1")
        if not (1 <= self.chunk_size <= MAX_CHUNK_SIZE):
            raise UsageError(
                f"the chunk size must be between 1 byte and {MAX_CHUNK_SIZE // MiB} MiB",
                hint="use e.g. --chunk-size 256M (proxies such as the idpbuilder ingress reject bodies over 1 GiB)",
            )


@dataclass(frozen=True)
class ManifestData:
    """A manifest or index as fetched: exact bytes, media type and digest."""

    data: bytes
    media_type: str
    digest: Digest

    def json(self) -> dict[str, Any]:
        """The parsed document."""
        try:
            obj = json.loads(self.data)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RegistryError(f"manifest {self.digest} is not valid JSON") from None
        if not isinstance(obj, dict):
            raise RegistryError(f"manifest {self.digest} is not a JSON object")
        return obj


@dataclass(frozen=True)
class JsonPage:
    """One JSON answer and the absolute URL of the next page (``Link: <…>; rel="next"``), if any."""

    data: Any
    next_url: str | None = None


# patterns stay strings: re compiles (and caches) them on first use, not at start-up
_LINK = r"<([^>]*)>((?:\s*;\s*[^;,<]*)*)"
_REL = r"""(?i)\brel\s*=\s*(?:"([^"]*)"|([^\s;,"]+))"""


def next_link(url: str, link: str | None) -> str | None:
    """The ``rel="next"`` target of a ``Link`` header, resolved against ``url`` (None when there is none)."""
    for m in re.finditer(_LINK, link or ""):
        for rel in re.finditer(_REL, m.group(2)):
            if "next" in (rel.group(1) or rel.group(2) or "").lower().split():
                return urljoin(url, str(m.group(1)).strip())
    return None


class BlobSink(Protocol):
    """Where a downloaded blob goes (e.g. a store ``BlobWriter``)."""

    def write(self, data: bytes) -> int: ...
    def commit(self) -> Digest: ...
    def abort(self) -> None: ...


def _damaged(what: str, path: Path, detail: str) -> DigestMismatchError:
    return DigestMismatchError(
        f"{what}: the local copy is damaged ({detail})",
        hint=f"delete {path} and build or pull the image again; nothing damaged was stored in the registry",
    )


class _BlobCheck:
    """Hashes a blob's bytes as they are read for upload; a wrong digest raises before the last byte goes out.

    An upload that restarts or resumes at another offset re-hashes the file up to that offset.
    """

    def __init__(self, digest: Digest, size: int, path: Path, what: str) -> None:
        self.digest = digest
        self.size = size
        self.path = path
        self.what = what
        self._hash = digest.hasher()
        self._pos = 0

    def _rehash(self, offset: int) -> None:
        """Hash the file's first ``offset`` bytes again (an upload restarted or resumed elsewhere)."""
        self._hash = self.digest.hasher()
        with open(self.path, "rb") as f:
            left = offset
            while left > 0 and (block := f.read(min(left, BLOCK_SIZE))):
                self._hash.update(block)
                left -= len(block)
        self._pos = offset

    def feed(self, offset: int, data: bytes) -> None:
        """Account for ``data`` read at ``offset``; DigestMismatchError once the whole blob hashed wrong."""
        if self._pos != offset:
            self._rehash(offset)
        self._hash.update(data)
        self._pos += len(data)
        if self._pos == self.size:
            got = Digest.from_hasher(self._hash)
            if got != self.digest:
                raise _damaged(self.what, self.path, f"its content has digest {got}")


class _FileSlice:
    """``length`` bytes of a file from ``offset``, read in 1 MiB blocks, reporting progress, cancellable."""

    def __init__(
        self,
        path: Path,
        offset: int,
        length: int,
        progress: Callable[[int], None] | None,
        cancel: threading.Event,
        check: _BlobCheck | None = None,
    ) -> None:
        self._f: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed by the caller / at EOF
        if offset:
            self._f.seek(offset)
        self._offset = offset
        self._left = length
        self._progress = progress
        self._cancel = cancel
        self._check = check

    def read(self, n: int = -1) -> bytes:
        if self._cancel.is_set():
            raise Interrupted("interrupted")
        want = self._left if n is None or n < 0 else min(n, self._left)
        if want <= 0:
            return b""
        data = self._f.read(want)
        if not data:
            if self._check is not None:
                raise _damaged(
                    self._check.what, self._check.path, "the file is shorter than the manifest says"
                )
            raise DigestMismatchError("a blob file in the source shrank while it was being pushed")
        if self._check is not None:
            self._check.feed(self._offset, data)
        self._left -= len(data)
        self._offset += len(data)
        if self._progress is not None:
            self._progress(self._offset)
        return data

    def close(self) -> None:
        self._f.close()


def _package_access_denied(what: str, url: str, credential: Credential) -> AuthError:
    """Gitea's ``reqPackageAccess``: authenticated, but no package write access to the owner in ``url``."""
    parts = urlsplit(url).path.split("/")
    owner = parts[2] if len(parts) > 2 and parts[1] == "v2" else "?"
    user = credential.username or "the token's user"
    mine = credential.username.lower() if credential.username else "your user name"
    return AuthError(
        f"{what}: access denied: {user} may not write packages of owner {owner!r} (Gitea: reqPackageAccess)",
        hint=f"push to {mine}/<name> or to an organisation {user} can write to (owner names are lower case); "
        "a token needs the write:package scope",
        status=401,
        code="reqPackageAccess",
    )


def _with_query(url: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    extra = urlencode(list(params.items()))
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _error_detail(body: bytes) -> tuple[str | None, str]:
    """(first error code, 'CODE: message; …') from an OCI error body."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, ""
    errs = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errs, list) or not errs:
        return None, ""
    parts: list[str] = []
    code: str | None = None
    for e in errs[:3]:
        if isinstance(e, dict):
            c = str(e.get("code") or "")
            code = code or c or None
            msg = str(e.get("message") or "")
            parts.append(f"{c.lower()}: {msg}" if c and msg else (c or msg))
    return code, "; ".join(p for p in parts if p)


class RegistryClient:
    """Talks to one registry; thread-safe once ``ping`` has run (it does so lazily)."""

    def __init__(
        self,
        registry: str,
        settings: RegistrySettings,
        *,
        scheme: str | None = None,
        credential: Credential | None = None,
    ) -> None:
        if scheme not in (None, "http", "https"):
            raise UsageError(f"unsupported registry URL scheme {scheme!r}", hint="use https:// or http://")
        self.registry = registry
        self.host = endpoint_host(registry)
        self.settings = settings
        # retry sleeps end early when the operation is cancelled (Ctrl-C, a sibling blob failed)
        self.retry = (
            settings.retry
            if settings.retry.cancel is not None
            else replace(settings.retry, cancel=settings.cancel)
        )
        self.transport = Transport(self.host, trust=settings.trust, maxsize=settings.jobs + 1)
        cred = credential if credential is not None else settings.keychain.resolve(registry)
        self.credential = cred if cred is not None else Credential()
        self.auth = Authenticator(self.registry, self.credential, self.transport)
        self._scheme = scheme
        self._pinged = False
        self._ping_lock = threading.Lock()
        log.debug("registry %s: credentials %r", registry, self.credential)

    # ---------------------------------------------------------------- plumbing
    @property
    def base_url(self) -> str:
        """``scheme://host`` once known (pings when needed)."""
        self.ping()
        return f"{self._scheme}://{self.host}"

    def close(self) -> None:
        """Release pooled connections."""
        self.transport.close()

    def ping(self) -> None:
        """Find the scheme (https, else http where allowed) and learn the auth challenge via ``GET /v2/``."""
        with self._ping_lock:
            if self._pinged:
                return
            self.retry.run(self._ping_once, what=f"connecting to {self.registry}")
            self._pinged = True

    def _ping_once(self) -> None:
        if self._scheme:
            schemes = [self._scheme]
        elif self.settings.trust.allows_plain_http(self.host):
            # loopback: plain HTTP first (no TLS set-up; an HTTPS server answers it with 400), else https first
            schemes = ["http", "https"] if is_loopback(self.host) else ["https", "http"]
        else:
            schemes = ["https"]
        errors: list[Exception] = []
        for i, scheme in enumerate(schemes):
            last = i == len(schemes) - 1
            url = f"{scheme}://{self.host}/v2/"
            try:
                resp = self.transport.request("GET", url, headers=self.auth.ping_headers())
            except TLSError:
                raise
            except (PlainHTTPError, TransientError) as e:
                errors.append(e)
                if not last:
                    continue
                if any(isinstance(x, PlainHTTPError) for x in errors):
                    if not any(isinstance(x, TransientError) for x in errors) or len(schemes) == 1:
                        raise RegistryError(
                            f"{self.registry} speaks plain HTTP, not HTTPS",
                            hint="pass --insecure (or a http:// --registry URL) to allow plain HTTP",
                        ) from None
                raise next((x for x in errors if isinstance(x, TransientError)), e) from None
            if resp.status == 400 and scheme == "http" and not last:
                resp.release_conn()  # "Client sent an HTTP request to an HTTPS server"
                continue
            self._scheme = scheme
            if resp.status == 401:
                self.auth.learn(resp.headers.get("WWW-Authenticate"))
                resp.release_conn()
                return
            if resp.status in (200, 204):
                resp.release_conn()
                return
            if resp.status == 404:
                raise RegistryError(
                    f"{self.registry} is not an OCI registry (GET /v2/ answered 404)",
                    hint="check the registry host and port",
                )
            self._raise_for(resp, f"connecting to {self.registry}")
        raise RegistryError(f"cannot talk to {self.registry} over {' or '.join(schemes)}")

    def _url(self, repo: str, tail: str) -> str:
        return f"{self.base_url}/v2/{repo}/{tail}"

    def _request(
        self,
        method: str,
        url: str,
        *,
        scopes: tuple[str, ...],
        what: str,
        headers: Mapping[str, str] | None = None,
        body: Callable[[], bytes | _FileSlice | None] | None = None,
        stream: bool = False,
        follow_redirects: bool | None = None,
    ) -> Response:
        """One request with auth: pre-emptive credentials, a new token/credentials after a 401."""
        self.ping()
        sent = self.auth.header_for(scopes)
        for _ in range(3):
            hdrs = {**(headers or {}), **authorization(sent)}
            b = body() if body is not None else None
            try:
                resp = self.transport.request(
                    method, url, headers=hdrs, body=b, stream=stream, follow_redirects=follow_redirects
                )
            finally:
                if isinstance(b, _FileSlice):
                    b.close()
            if resp.status != 401:
                return resp
            www = resp.headers.get("WWW-Authenticate")
            try:
                answer = resp.data[:4096] if method != "HEAD" else b""  # a 401's body is small
            except TransientError:
                answer = b""
            resp.drain_conn()
            resp.release_conn()
            if sent and b"reqPackageAccess" in answer:
                # Gitea: the credentials are fine, the user may not write this owner's packages
                raise _package_access_denied(what, url, self.credential)
            sent = self.auth.on_unauthorized(www, scopes, sent, what=what)
        raise AuthError(f"{what}: {self.registry} keeps asking for authentication", status=401)

    def _raise_for(self, resp: Response, what: str, *, not_found: str | None = None) -> None:
        """Turn an unexpected response into the right error (transient ones are retried by the caller)."""
        try:
            body = resp.read(64 * 1024) if resp.status != 204 else b""
        except Exception:
            body = b""
        finally:
            resp.release_conn()
        code, detail = _error_detail(body or b"")
        status_text = f"{resp.status} {resp.reason or ''}".strip()
        msg = f"{status_text} ({detail})" if detail else status_text
        if resp.status in RETRYABLE_STATUS or (code in RETRYABLE_CODES):
            retry_after: float | None = None
            ra = resp.headers.get("Retry-After")
            if ra and ra.strip().isdigit():
                retry_after = float(ra.strip())
            # "503 Service Unavailable": the retry loop adds what was being done and the attempt count
            short = status_text if resp.status in RETRYABLE_STATUS else msg
            raise ThrottledError(short, status=resp.status, code=code, retry_after=retry_after)
        if resp.status == 404:
            raise NotFoundError(f"{what}: {not_found or 'not found'} ({detail or status_text})")
        if resp.status in (401, 403):
            raise AuthError(
                f"{what}: access denied ({detail or status_text})",
                hint="check that these credentials may access the repository (for Gitea: the owner must be "
                "the lower-cased user name or one of its organisations, and a token needs write:package)",
                status=resp.status,
                code=code,
            )
        if resp.status == 413:
            raise RegistryError(
                f"{what}: {msg}: the registry (or a proxy in front of it) rejected the request size",
                hint="push with a smaller --chunk-size (the idpbuilder ingress allows at most 1 GiB per request)",
                status=413,
                code=code,
            )
        raise RegistryError(f"{what}: {msg}", status=resp.status, code=code)

    # ---------------------------------------------------------------- blobs
    def blob_exists(self, repo: str, digest: Digest, *, push: bool = False) -> bool:
        """``HEAD`` the blob; True when the registry has it in ``repo``."""
        what = f"checking blob {short_digest(digest)} in {self.registry}/{repo}"
        scopes = (scope_for(repo, "pull", "push") if push else scope_for(repo, "pull"),)

        def once() -> bool:
            resp = self._request("HEAD", self._url(repo, f"blobs/{digest}"), scopes=scopes, what=what)
            resp.release_conn()
            if resp.status == 200:
                return True
            if resp.status == 404:
                return False
            self._raise_for(resp, what)
            return False

        return self.retry.run(once, what=what)

    def upload_blob(
        self,
        repo: str,
        digest: Digest,
        size: int,
        path: Path,
        *,
        mount_from: tuple[str, ...] = (),
        progress: Callable[[int], None] | None = None,
    ) -> str:
        """Upload a blob file (or mount it from another repo); returns ``"mounted"`` or ``"pushed"``."""
        what = f"pushing blob {short_digest(digest)} to {self.registry}/{repo}"
        sources = tuple(r for r in mount_from if r != repo)

        try:
            actual = path.stat().st_size
        except OSError as e:
            raise _damaged(what, path, e.strerror or "unreadable") from None
        if actual != size:
            raise _damaged(what, path, f"{actual} bytes, the manifest says {size}")

        def once() -> str:
            if progress is not None:
                progress(0)
            return self._upload_once(repo, digest, size, path, sources, progress, what)

        return self.retry.run(once, what=what)

    def _start_upload(
        self, repo: str, digest: Digest, sources: tuple[str, ...], what: str
    ) -> tuple[str | None, str]:
        """POST an upload session (trying a cross-repo mount first): (location or None if mounted, outcome)."""
        base = self._url(repo, "blobs/uploads/")
        for src in sources[:3]:
            scopes = (scope_for(repo, "pull", "push"), scope_for(src, "pull"))
            url = _with_query(base, {"mount": str(digest), "from": src})
            try:
                resp = self._request("POST", url, scopes=scopes, what=what, follow_redirects=False)
            except AuthError:
                # no pull access to the source repo: fall back to a plain upload
                continue
            if resp.status == 201:
                resp.release_conn()
                return None, "mounted"
            if resp.status == 202 and resp.headers.get("Location"):
                # the registry opened a normal session instead of mounting: use it
                resp.release_conn()
                return self.transport.join(base, resp.headers["Location"]), "pushed"
            self._raise_for(resp, what)
        resp = self._request(
            "POST", base, scopes=(scope_for(repo, "pull", "push"),), what=what, follow_redirects=False
        )
        if resp.status == 202 and resp.headers.get("Location"):
            resp.release_conn()
            return self.transport.join(base, resp.headers["Location"]), "pushed"
        if resp.status == 202:
            raise RegistryError(f"{what}: the registry opened an upload without a Location header")
        self._raise_for(resp, what)
        raise AssertionError("unreachable")

    def _send_upload(
        self,
        method: str,
        url: str,
        *,
        scopes: tuple[str, ...],
        what: str,
        headers: dict[str, str],
        body: Callable[[], bytes | _FileSlice | None],
        ok: tuple[int, ...],
    ) -> Response:
        """An upload request that follows 307/308 by re-sending the body itself."""
        for _ in range(5):
            resp = self._request(
                method, url, scopes=scopes, what=what, headers=headers, body=body, follow_redirects=False
            )
            if resp.status in (307, 308) and resp.headers.get("Location"):
                resp.drain_conn()
                resp.release_conn()
                url = self.transport.join(url, resp.headers["Location"])
                continue
            if resp.status in ok:
                return resp
            self._raise_for(resp, what)
        raise RegistryError(f"{what}: too many redirects")

    def _upload_once(
        self,
        repo: str,
        digest: Digest,
        size: int,
        path: Path,
        sources: tuple[str, ...],
        progress: Callable[[int], None] | None,
        what: str,
    ) -> str:
        location, outcome = self._start_upload(repo, digest, sources, what)
        if location is None:
            return outcome
        try:
            self._upload_to(location, digest, size, path, progress, repo, what)
        except NotFoundError as e:
            # the session expired, or the registry dropped it after a broken request (docker-registry does
            # when a PATCH breaks off): the blob starts over in a new session
            raise TransientError(
                f"{what}: the registry dropped the upload session; starting the blob again ({e.message})"
            ) from None
        return outcome

    def _upload_to(
        self,
        location: str,
        digest: Digest,
        size: int,
        path: Path,
        progress: Callable[[int], None] | None,
        repo: str,
        what: str,
    ) -> None:
        """Send the blob's bytes into the upload session at ``location`` and close it with its digest."""
        scopes = (scope_for(repo, "pull", "push"),)
        cancel = self.settings.cancel
        check = _BlobCheck(digest, size, path, what)
        octet = {"Content-Type": "application/octet-stream"}
        if size <= self.settings.monolithic_threshold:
            resp = self._send_upload(
                "PUT",
                _with_query(location, {"digest": str(digest)}),
                scopes=scopes,
                what=what,
                headers={**octet, "Content-Length": str(size)},
                body=lambda: _FileSlice(path, 0, size, progress, cancel, check) if size else b"",
                ok=(201, 204),
            )
        else:
            offset = 0
            best = 0  # the furthest the registry has confirmed
            stalls = 0  # re-syncs since the upload last got further
            while offset < size:
                n = min(self.settings.chunk_size, size - offset)
                start = offset
                try:
                    resp = self._send_upload(
                        "PATCH",
                        location,
                        scopes=scopes,
                        what=what,
                        headers={
                            **octet,
                            "Content-Length": str(n),
                            "Content-Range": f"{start}-{start + n - 1}",
                        },
                        body=lambda start=start, n=n: _FileSlice(path, start, n, progress, cancel, check),  # type: ignore[misc]
                        ok=(202, 204, 416),
                    )
                except TransientError as e:
                    # the chunk may have arrived in part or whole: ask the registry and go on from there
                    if isinstance(e, RetriesExhausted) or stalls >= _MAX_RESYNCS:
                        raise
                    log.warning("%s: %s; resuming the upload", what, e.message)
                else:
                    resp.release_conn()
                    if resp.headers.get("Location"):
                        location = self.transport.join(location, resp.headers["Location"])
                    if resp.status != 416:
                        offset += n
                        best, stalls = max(best, offset), 0
                        continue
                    if stalls >= _MAX_RESYNCS:
                        raise TransientError(
                            f"{what}: the registry keeps rejecting the chunk range (416); restarting the upload"
                        )
                    log.debug(
                        "%s: 416 for bytes %d-%d; asking the registry where the upload stands",
                        what,
                        start,
                        start + n - 1,
                    )
                stalls += 1
                location, offset = self._upload_status(location, scopes, what)
                if offset > size:
                    raise TransientError(f"{what}: the registry holds {offset} bytes of a {size}-byte blob")
                if offset > best:
                    best, stalls = offset, 0
            resp = self._send_upload(
                "PUT",
                _with_query(location, {"digest": str(digest)}),
                scopes=scopes,
                what=what,
                headers={"Content-Length": "0"},
                body=lambda: b"",
                ok=(201, 204),
            )
        got = resp.headers.get("Docker-Content-Digest")
        resp.release_conn()
        if got and got != str(digest):
            raise RegistryError(
                f"{what}: the registry stored it as {got}", hint="the source blob may be corrupt"
            )

    def _upload_status(self, location: str, scopes: tuple[str, ...], what: str) -> tuple[str, int]:
        """``GET`` an upload session: (its location, the number of bytes the registry holds)."""
        resp = self._request("GET", location, scopes=scopes, what=what, follow_redirects=False)
        if resp.status not in (200, 204):
            self._raise_for(resp, what)
        resp.drain_conn()
        resp.release_conn()
        if resp.headers.get("Location"):
            location = self.transport.join(location, resp.headers["Location"])
        m = re.fullmatch(r"\s*(?:bytes=)?0-(\d+)\s*", resp.headers.get("Range") or "")
        if m is None:
            raise TransientError(f"{what}: the registry did not say how much of the upload it holds")
        end = int(m.group(1))
        # "0-0" is what registries answer for an empty session (distribution, Gitea)
        return location, end + 1 if end > 0 else 0

    def download_blob(
        self,
        repo: str,
        digest: Digest,
        size: int | None,
        sink: Callable[[], BlobSink],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> Digest:
        """Stream a blob into a fresh ``sink()`` per attempt; the sink verifies digest and size on commit."""
        what = f"pulling blob {short_digest(digest)} from {self.registry}/{repo}"
        scopes = (scope_for(repo, "pull"),)
        cancel = self.settings.cancel

        def once() -> Digest:
            resp = self._request(
                "GET", self._url(repo, f"blobs/{digest}"), scopes=scopes, what=what, stream=True
            )
            if resp.status != 200:
                self._raise_for(resp, what, not_found="blob not found")
            w = sink()
            done = 0
            try:
                for chunk in resp.stream(
                    BLOCK_SIZE, decode_content=False
                ):  # bytes as stored: the digest covers them
                    if cancel.is_set():
                        raise Interrupted("interrupted")
                    w.write(chunk)
                    done += len(chunk)
                    if size is not None and done > size:
                        raise DigestMismatchError(f"{what}: more than the expected {size} bytes")
                    if progress is not None:
                        progress(done)
                return w.commit()
            except DigestMismatchError as e:
                w.abort()
                raise DigestMismatchError(
                    f"{what}: the registry sent wrong data ({e.message.split(': ', 1)[-1]})",
                    hint="nothing was stored; try again, and if it persists the registry's copy of the blob "
                    "is corrupt (push the image again)",
                ) from None
            except TransientError as e:  # the connection broke mid-body
                w.abort()
                raise TransientError(f"download interrupted after {done} bytes ({e.message})") from None
            except BaseException:
                w.abort()
                raise
            finally:
                resp.release_conn()

        return self.retry.run(once, what=what)

    # ---------------------------------------------------------------- manifests
    def head_manifest(self, repo: str, reference: str, *, push: bool = False) -> Digest | None:
        """The digest the registry has for tag/digest ``reference``, or None."""
        what = f"checking manifest {self.registry}/{repo}:{reference}"
        scopes = (scope_for(repo, "pull", "push") if push else scope_for(repo, "pull"),)

        def once() -> Digest | None:
            resp = self._request(
                "HEAD",
                self._url(repo, f"manifests/{reference}"),
                scopes=scopes,
                what=what,
                headers={"Accept": MANIFEST_ACCEPT},
            )
            resp.release_conn()
            if resp.status == 404:
                return None
            if resp.status == 200:
                d = resp.headers.get("Docker-Content-Digest")
                try:
                    return Digest.parse(d) if d else None
                except UsageError:
                    return None
            self._raise_for(resp, what)
            return None

        return self.retry.run(once, what=what)

    def get_manifest(self, repo: str, reference: str) -> ManifestData:
        """Fetch a manifest or index by tag or digest, verifying the digest when it is known."""
        what = (
            f"pulling manifest {self.registry}/{repo}:{reference}"
            if not reference.startswith("sha256:")
            else (f"pulling manifest {self.registry}/{repo}@{reference}")
        )
        scopes = (scope_for(repo, "pull"),)

        def once() -> ManifestData:
            resp = self._request(
                "GET",
                self._url(repo, f"manifests/{reference}"),
                scopes=scopes,
                what=what,
                headers={"Accept": MANIFEST_ACCEPT},
                stream=True,
            )
            if resp.status != 200:
                self._raise_for(resp, what, not_found="no such image in the registry")
            data = _read_bounded(resp, _MAX_MANIFEST, f"{what}: manifest")
            actual = sha256_bytes(data)
            if reference.startswith("sha256:") and str(actual) != reference:
                raise DigestMismatchError(f"{what}: content has digest {actual}")
            header = resp.headers.get("Docker-Content-Digest")
            if header and header.startswith("sha256:") and header != str(actual):
                raise DigestMismatchError(f"{what}: registry says {header}, content has digest {actual}")
            mt = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
            if mt not in MANIFEST_TYPES | INDEX_TYPES:
                try:
                    body_mt = json.loads(data).get("mediaType")
                except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
                    body_mt = None
                if body_mt in MANIFEST_TYPES | INDEX_TYPES:
                    mt = str(body_mt)
                else:
                    raise RegistryError(
                        f"{what}: unsupported manifest type {mt or 'unknown'}",
                        hint="only OCI and Docker schema 2 images are supported",
                    )
            return ManifestData(data, mt, actual)

        return self.retry.run(once, what=what)

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> Digest:
        """``PUT`` a manifest under a tag or digest; returns the digest the registry reports."""
        sep = "@" if reference.startswith("sha256:") else ":"
        what = f"pushing manifest {self.registry}/{repo}{sep}{reference}"
        scopes = (scope_for(repo, "pull", "push"),)
        expected = sha256_bytes(data)

        def once() -> Digest:
            resp = self._send_upload(
                "PUT",
                self._url(repo, f"manifests/{reference}"),
                scopes=scopes,
                what=what,
                headers={"Content-Type": media_type, "Content-Length": str(len(data))},
                body=lambda: data,
                ok=(200, 201, 202, 204),
            )
            resp.release_conn()
            got = resp.headers.get("Docker-Content-Digest")
            if got and got != str(expected):
                log.warning("%s: the registry reports digest %s, expected %s", what, got, expected)
            return expected

        return self.retry.run(once, what=what)

    # ---------------------------------------------------------------- listing
    def get_json(
        self,
        url: str,
        *,
        scopes: tuple[str, ...],
        what: str,
        not_found: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> JsonPage:
        """GET a JSON document (absolute URL, or a path such as ``/v2/_catalog``) with auth and retries.

        The answer's ``Link: <…>; rel="next"`` becomes ``next_url``; 404 raises NotFoundError (``not_found``
        says what is missing), other failures the usual registry errors.
        """
        full = url if "://" in url else f"{self.base_url}/{url.lstrip('/')}"
        hdrs = {"Accept": "application/json", **(headers or {})}

        def once() -> JsonPage:
            resp = self._request("GET", full, scopes=scopes, what=what, headers=hdrs, stream=True)
            if resp.status != 200:
                self._raise_for(resp, what, not_found=not_found)
            body = _read_bounded(resp, _MAX_JSON, f"{what}: answer")
            try:
                data = json.loads(body)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise RegistryError(f"{what}: the registry did not answer with JSON") from None
            return JsonPage(data, next_link(full, resp.headers.get("Link")))

        return self.retry.run(once, what=what)

    def _paged_names(
        self, url: str, key: str, *, scopes: tuple[str, ...], what: str, not_found: str
    ) -> list[str]:
        """Concatenate ``doc[key]`` (a list of strings, or null) over every page, following ``Link``."""
        names: list[str] = []
        seen: set[str] = set()
        next_url: str | None = url
        while next_url and next_url not in seen and len(seen) < _MAX_PAGES:
            seen.add(next_url)
            page = self.get_json(next_url, scopes=scopes, what=what, not_found=not_found)
            items = page.data.get(key) if isinstance(page.data, dict) else None
            if items is not None and not isinstance(items, list):
                raise RegistryError(f"{what}: {key!r} in the answer is not a list")
            names.extend(str(n) for n in items or [])
            next_url = page.next_url
        return names

    def list_repositories(self, *, page_size: int = CATALOG_PAGE_SIZE) -> list[str]:
        """Every repository in ``/v2/_catalog`` (following ``Link`` pagination); NotFoundError without a catalog."""
        return self._paged_names(
            f"/v2/_catalog?n={page_size}",
            "repositories",
            scopes=("registry:catalog:*",),
            what=f"listing repositories of {self.registry}",
            not_found="the registry does not offer a catalog",
        )

    def list_tags(self, repo: str, *, page_size: int = TAGS_PAGE_SIZE) -> list[str]:
        """Every tag of ``repo`` (following ``Link`` pagination); NotFoundError when the repository is unknown."""
        return self._paged_names(
            f"/v2/{repo}/tags/list?n={page_size}",
            "tags",
            scopes=(scope_for(repo, "pull"),),
            what=f"listing tags of {self.registry}/{repo}",
            not_found="no such repository",
        )

    def __repr__(self) -> str:
        return f"RegistryClient({self.registry!r}, scheme={self._scheme!r})"


def _read_bounded(resp: Response, limit: int, what: str) -> bytes:
    """The whole body of ``resp`` (released afterwards); RegistryError when it exceeds ``limit`` bytes."""
    try:
        data = resp.read(limit + 1)
    except TransientError as e:
        raise TransientError(f"{what}: reading it failed ({e.message})") from None
    finally:
        resp.release_conn()
    if len(data) > limit:
        raise RegistryError(f"{what} larger than {limit // MiB} MiB")
    return data
