"""The distribution API's messages: manifests and JSON pages as fetched, ``Link`` pagination, OCI error
bodies, Gitea's ``reqPackageAccess`` answer, bounded body reads. Pure helpers of ``client`` and ``upload``."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

from idpbuilder._records import dataclass
from idpbuilder.credentials.credential import Credential
from idpbuilder.digest import Digest
from idpbuilder.errors import AuthError, RegistryError, TransientError
from idpbuilder.oci import MT_DOCKER_MANIFEST_LIST, MT_OCI_INDEX, MT_OCI_MANIFEST
from idpbuilder.registry.transport import Response

__all__ = [
    "CATALOG_PAGE_SIZE",
    "MANIFEST_ACCEPT",
    "TAGS_PAGE_SIZE",
    "JsonPage",
    "ManifestData",
    "error_detail",
    "next_link",
    "package_access_denied",
    "read_bounded",
    "short_digest",
    "with_query",
]

MiB = 1 << 20
MANIFEST_ACCEPT = ", ".join(
    [
        MT_OCI_MANIFEST,
        MT_OCI_INDEX,
        "application/vnd.docker.distribution.manifest.v2+json",
        MT_DOCKER_MANIFEST_LIST,
    ]
)
CATALOG_PAGE_SIZE = 100  # Gitea caps n at 100
TAGS_PAGE_SIZE = 1000


def short_digest(d: Digest) -> str:
    """``sha256:ab12cd34ef56…`` for messages."""
    return f"{d.algorithm}:{d.hex[:12]}…"


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


def package_access_denied(what: str, url: str, credential: Credential) -> AuthError:
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


def with_query(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` added to its query."""
    parts = urlsplit(url)
    extra = urlencode(list(params.items()))
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def error_detail(body: bytes) -> tuple[str | None, str]:
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


def read_bounded(resp: Response, limit: int, what: str) -> bytes:
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
