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
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from idpbuilder._records import replace
from idpbuilder.credentials.credential import Credential
from idpbuilder.credentials.tls import is_loopback
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
from idpbuilder.oci import INDEX_TYPES, MANIFEST_TYPES
from idpbuilder.registry.auth import Authenticator, authorization, scope_for
from idpbuilder.registry.retry import RETRYABLE_CODES, RETRYABLE_STATUS, ThrottledError, UnreachableError
from idpbuilder.registry.settings import RegistrySettings, endpoint_host
from idpbuilder.registry.transport import BLOCK_SIZE, NoAnswerError, PlainHTTPError, Response, Transport
from idpbuilder.registry.upload import FileSlice, damaged, send_upload, upload_once
from idpbuilder.registry.wire import (
    CATALOG_PAGE_SIZE,
    MANIFEST_ACCEPT,
    TAGS_PAGE_SIZE,
    JsonPage,
    ManifestData,
    error_detail,
    next_link,
    package_access_denied,
    read_bounded,
    short_digest,
)

__all__ = ["BlobSink", "RegistryClient"]

log = logging.getLogger("idpbuilder.registry")

MiB = 1 << 20
_MAX_MANIFEST = 10 * MiB
_MAX_JSON = 64 * MiB
_MAX_PAGES = 10_000


class BlobSink(Protocol):
    """Where a downloaded blob goes (e.g. a store ``BlobWriter``)."""

    def write(self, data: bytes) -> int: ...
    def commit(self) -> Digest: ...
    def abort(self) -> None: ...


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
        self.transport = Transport(
            self.host, trust=settings.trust, maxsize=settings.jobs + 1, read_timeout=self.retry.timeout
        )
        cred = credential if credential is not None else settings.keychain.resolve(registry)
        self.credential = cred if cred is not None else Credential()
        self.auth = Authenticator(self.registry, self.credential, self.transport)
        self._scheme = scheme
        self._spoke_http = False  # a loopback peer answered the plain-HTTP probe (even if garbled): stay HTTP
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
        elif self._spoke_http:
            schemes = ["http"]
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
                if scheme == "http" and not last and not isinstance(e, NoAnswerError | UnreachableError):
                    # the peer took the plain-HTTP request and stalled or sent a broken answer: an HTTPS
                    # server would have refused it at once, so retry over HTTP (not TLS on a plain port)
                    self._spoke_http = True
                    raise
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
            self.raise_for(resp, f"connecting to {self.registry}")
        raise RegistryError(f"cannot talk to {self.registry} over {' or '.join(schemes)}")

    def repo_url(self, repo: str, tail: str) -> str:
        """``base_url/v2/<repo>/<tail>``."""
        return f"{self.base_url}/v2/{repo}/{tail}"

    def request(
        self,
        method: str,
        url: str,
        *,
        scopes: tuple[str, ...],
        what: str,
        headers: Mapping[str, str] | None = None,
        body: Callable[[], bytes | FileSlice | None] | None = None,
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
                if isinstance(b, FileSlice):
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
                raise package_access_denied(what, url, self.credential)
            sent = self.auth.on_unauthorized(www, scopes, sent, what=what)
        raise AuthError(f"{what}: {self.registry} keeps asking for authentication", status=401)

    def raise_for(self, resp: Response, what: str, *, not_found: str | None = None) -> None:
        """Turn an unexpected response into the right error (transient ones are retried by the caller)."""
        try:
            body = resp.read(64 * 1024) if resp.status != 204 else b""
        except Exception:
            body = b""
        finally:
            resp.release_conn()
        code, detail = error_detail(body or b"")
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
            raise NotFoundError(
                f"{what}: {not_found or 'not found'} ({detail or status_text})",
                hint="check the repository and tag (or digest) of the name; `idpbuilder images --remote` lists "
                "the idpbuilder registry's images",
            )
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
            resp = self.request("HEAD", self.repo_url(repo, f"blobs/{digest}"), scopes=scopes, what=what)
            resp.release_conn()
            if resp.status == 200:
                return True
            if resp.status == 404:
                return False
            self.raise_for(resp, what)
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
            raise damaged(what, path, e.strerror or "unreadable") from None
        if actual != size:
            raise damaged(what, path, f"{actual} bytes, the manifest says {size}")

        def once() -> str:
            if progress is not None:
                progress(0)
            return upload_once(self, repo, digest, size, path, sources, progress, what)

        return self.retry.run(once, what=what)

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
            resp = self.request(
                "GET", self.repo_url(repo, f"blobs/{digest}"), scopes=scopes, what=what, stream=True
            )
            if resp.status != 200:
                self.raise_for(resp, what, not_found="blob not found")
            w = sink()
            done = 0
            try:
                # bytes as stored: the digest covers them
                for chunk in resp.stream(BLOCK_SIZE, decode_content=False):
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
            resp = self.request(
                "HEAD",
                self.repo_url(repo, f"manifests/{reference}"),
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
            self.raise_for(resp, what)
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
            resp = self.request(
                "GET",
                self.repo_url(repo, f"manifests/{reference}"),
                scopes=scopes,
                what=what,
                headers={"Accept": MANIFEST_ACCEPT},
                stream=True,
            )
            if resp.status != 200:
                self.raise_for(resp, what, not_found="no such image in the registry")
            data = read_bounded(resp, _MAX_MANIFEST, f"{what}: manifest")
            actual = sha256_bytes(data)
            tampered = (
                "nothing was stored; the registry (or a proxy in between) sent a manifest that does not match "
                "its digest: try again, and if it persists push the image to the registry again"
            )
            if reference.startswith("sha256:") and str(actual) != reference:
                raise DigestMismatchError(f"{what}: content has digest {actual}", hint=tampered)
            header = resp.headers.get("Docker-Content-Digest")
            if header and header.startswith("sha256:") and header != str(actual):
                raise DigestMismatchError(
                    f"{what}: registry says {header}, content has digest {actual}", hint=tampered
                )
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
            resp = send_upload(
                self,
                "PUT",
                self.repo_url(repo, f"manifests/{reference}"),
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
            resp = self.request("GET", full, scopes=scopes, what=what, headers=hdrs, stream=True)
            if resp.status != 200:
                self.raise_for(resp, what, not_found=not_found)
            body = read_bounded(resp, _MAX_JSON, f"{what}: answer")
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
