"""Blob uploads: one session per attempt, monolithic ``PUT`` or ``PATCH`` chunks with ``Content-Range``,
416 / transient re-sync from the session's ``Range``, every byte hashed on the way out (``BlobCheck``).

Used by :meth:`RegistryClient.upload_blob` and ``put_manifest``; they run inside the client's retry loop.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Protocol

from idpbuilder.digest import Digest
from idpbuilder.errors import (
    AuthError,
    DigestMismatchError,
    Interrupted,
    NotFoundError,
    RegistryError,
    TransientError,
)
from idpbuilder.registry.auth import scope_for
from idpbuilder.registry.retry import RetriesExhausted
from idpbuilder.registry.settings import RegistrySettings
from idpbuilder.registry.transport import BLOCK_SIZE, Response, Transport
from idpbuilder.registry.wire import with_query

__all__ = ["BlobCheck", "FileSlice", "UploadClient", "damaged", "send_upload", "upload_once"]

log = logging.getLogger("idpbuilder.registry")

_MAX_RESYNCS = 3  # upload status checks in a row that gain nothing before the blob restarts from scratch


class UploadClient(Protocol):
    """What an upload needs of the registry client (``RegistryClient``): authenticated requests and errors."""

    @property
    def settings(self) -> RegistrySettings: ...
    @property
    def transport(self) -> Transport: ...
    def repo_url(self, repo: str, tail: str) -> str: ...
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
    ) -> Response: ...
    def raise_for(self, resp: Response, what: str, *, not_found: str | None = None) -> None: ...


def damaged(what: str, path: Path, detail: str) -> DigestMismatchError:
    """The error for a local blob file that is not what its descriptor says."""
    return DigestMismatchError(
        f"{what}: the local copy is damaged ({detail})",
        hint="pull or build the image again (a pull replaces damaged blobs; `idpbuilder prune --verify` checks "
        f"the whole store; the file is {path}); nothing damaged was stored in the registry",
    )


class BlobCheck:
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
                raise damaged(self.what, self.path, f"its content has digest {got}")


class FileSlice:
    """``length`` bytes of a file from ``offset``, read in 1 MiB blocks, reporting progress, cancellable."""

    def __init__(
        self,
        path: Path,
        offset: int,
        length: int,
        progress: Callable[[int], None] | None,
        cancel: threading.Event,
        check: BlobCheck | None = None,
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
                raise damaged(
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


def _start_upload(
    client: UploadClient, repo: str, digest: Digest, sources: tuple[str, ...], what: str
) -> tuple[str | None, str]:
    """POST an upload session (trying a cross-repo mount first): (location or None if mounted, outcome)."""
    base = client.repo_url(repo, "blobs/uploads/")
    for src in sources[:3]:
        scopes = (scope_for(repo, "pull", "push"), scope_for(src, "pull"))
        url = with_query(base, {"mount": str(digest), "from": src})
        try:
            resp = client.request("POST", url, scopes=scopes, what=what, follow_redirects=False)
        except AuthError:
            # no pull access to the source repo: fall back to a plain upload
            continue
        if resp.status == 201:
            resp.release_conn()
            return None, "mounted"
        if resp.status == 202 and resp.headers.get("Location"):
            # the registry opened a normal session instead of mounting: use it
            resp.release_conn()
            return client.transport.join(base, resp.headers["Location"]), "pushed"
        client.raise_for(resp, what)
    resp = client.request(
        "POST", base, scopes=(scope_for(repo, "pull", "push"),), what=what, follow_redirects=False
    )
    if resp.status == 202 and resp.headers.get("Location"):
        resp.release_conn()
        return client.transport.join(base, resp.headers["Location"]), "pushed"
    if resp.status == 202:
        raise RegistryError(f"{what}: the registry opened an upload without a Location header")
    client.raise_for(resp, what)
    raise AssertionError("unreachable")


def send_upload(
    client: UploadClient,
    method: str,
    url: str,
    *,
    scopes: tuple[str, ...],
    what: str,
    headers: dict[str, str],
    body: Callable[[], bytes | FileSlice | None],
    ok: tuple[int, ...],
) -> Response:
    """An upload request that follows 307/308 by re-sending the body itself."""
    for _ in range(5):
        resp = client.request(
            method, url, scopes=scopes, what=what, headers=headers, body=body, follow_redirects=False
        )
        if resp.status in (307, 308) and resp.headers.get("Location"):
            resp.drain_conn()
            resp.release_conn()
            url = client.transport.join(url, resp.headers["Location"])
            continue
        if resp.status in ok:
            return resp
        client.raise_for(resp, what)
    raise RegistryError(f"{what}: too many redirects")


def upload_once(
    client: UploadClient,
    repo: str,
    digest: Digest,
    size: int,
    path: Path,
    sources: tuple[str, ...],
    progress: Callable[[int], None] | None,
    what: str,
) -> str:
    location, outcome = _start_upload(client, repo, digest, sources, what)
    if location is None:
        return outcome
    try:
        _upload_to(client, location, digest, size, path, progress, repo, what)
    except NotFoundError as e:
        # the session expired, or the registry dropped it after a broken request (docker-registry does
        # when a PATCH breaks off): the blob starts over in a new session
        raise TransientError(
            f"{what}: the registry dropped the upload session; starting the blob again ({e.message})"
        ) from None
    return outcome


def _upload_to(
    client: UploadClient,
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
    cancel = client.settings.cancel
    check = BlobCheck(digest, size, path, what)
    octet = {"Content-Type": "application/octet-stream"}
    if size <= client.settings.monolithic_threshold:
        resp = send_upload(
            client,
            "PUT",
            with_query(location, {"digest": str(digest)}),
            scopes=scopes,
            what=what,
            headers={**octet, "Content-Length": str(size)},
            body=lambda: FileSlice(path, 0, size, progress, cancel, check) if size else b"",
            ok=(201, 204),
        )
    else:
        offset = 0
        best = 0  # the furthest the registry has confirmed
        stalls = 0  # re-syncs since the upload last got further
        while offset < size:
            n = min(client.settings.chunk_size, size - offset)
            start = offset
            try:
                resp = send_upload(
                    client,
                    "PATCH",
                    location,
                    scopes=scopes,
                    what=what,
                    headers={
                        **octet,
                        "Content-Length": str(n),
                        "Content-Range": f"{start}-{start + n - 1}",
                    },
                    body=lambda start=start, n=n: FileSlice(path, start, n, progress, cancel, check),  # type: ignore[misc]
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
                    location = client.transport.join(location, resp.headers["Location"])
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
            location, offset = _upload_status(client, location, scopes, what)
            if offset > size:
                raise TransientError(f"{what}: the registry holds {offset} bytes of a {size}-byte blob")
            if offset > best:
                best, stalls = offset, 0
        resp = send_upload(
            client,
            "PUT",
            with_query(location, {"digest": str(digest)}),
            scopes=scopes,
            what=what,
            headers={"Content-Length": "0"},
            body=lambda: b"",
            ok=(201, 204),
        )
    got = resp.headers.get("Docker-Content-Digest")
    resp.release_conn()
    if got and got != str(digest):
        raise RegistryError(f"{what}: the registry stored it as {got}", hint="the source blob may be corrupt")


def _upload_status(
    client: UploadClient, location: str, scopes: tuple[str, ...], what: str
) -> tuple[str, int]:
    """``GET`` an upload session: (its location, the number of bytes the registry holds)."""
    resp = client.request("GET", location, scopes=scopes, what=what, follow_redirects=False)
    if resp.status not in (200, 204):
        client.raise_for(resp, what)
    resp.drain_conn()
    resp.release_conn()
    if resp.headers.get("Location"):
        location = client.transport.join(location, resp.headers["Location"])
    m = re.fullmatch(r"\s*(?:bytes=)?0-(\d+)\s*", resp.headers.get("Range") or "")
    if m is None:
        raise TransientError(f"{what}: the registry did not say how much of the upload it holds")
    end = int(m.group(1))
    # "0-0" is what registries answer for an empty session (distribution, Gitea)
    return location, end + 1 if end > 0 else 0
