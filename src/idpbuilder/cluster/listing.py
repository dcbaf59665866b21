"""What a registry holds: Gitea's package API (``/api/v1/packages/{owner}?type=container``), else ``/v2``.

Gitea lists every package version of an owner in one paged call; any other registry is walked with
``/v2/_catalog`` and ``/v2/<repo>/tags/list``, both following ``Link: <…>; rel="next"`` pagination.
"""

from __future__ import annotations

import fnmatch
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from idpbuilder._records import dataclass
from idpbuilder.errors import AuthError, NotFoundError, RegistryError
from idpbuilder.registry.client import RegistryClient
from idpbuilder.registry.wire import CATALOG_PAGE_SIZE

if TYPE_CHECKING:
    from idpbuilder.cluster.session import RegistryOptions

__all__ = [
    "GITEA_PAGE_SIZE",
    "RemoteTag",
    "list_gitea_packages",
    "list_registry",
    "list_remote",
    "list_v2",
    "matches",
]

log = logging.getLogger("idpbuilder.registry")

GITEA_PAGE_SIZE = 50
_MAX_PAGES = 10_000


@dataclass(frozen=True)
class RemoteTag:
    """One tag of one repository in a registry."""

    registry: str
    repository: str
    tag: str
    created: str | None = None  # RFC 3339, when the registry says (Gitea does)

    @property
    def name(self) -> str:
        """``registry/repository``."""
        return f"{self.registry}/{self.repository}"

    def to_json(self) -> dict[str, Any]:
        """Machine-readable form (keys as in ``images --format json``)."""
        return {
            "Name": f"{self.name}:{self.tag}",
            "Repository": self.name,
            "Tag": self.tag,
            "Created": self.created,
        }


def matches(registry: str, repository: str, tag: str | None, pattern: str | None) -> bool:
    """``REPO[:TAG]`` filter with shell wildcards against ``repository`` or ``registry/repository``."""
    if not pattern:
        return True
    repo_pat, tag_pat = pattern, None
    slash, colon = pattern.rfind("/"), pattern.rfind(":")
    if colon > slash:
        repo_pat, tag_pat = pattern[:colon], pattern[colon + 1 :]
    if tag_pat is not None and tag is not None and not fnmatch.fnmatchcase(tag, tag_pat):
        return False
    # "myapp" finds giteaadmin/myapp too: the owner is usually implied
    names = (repository, f"{registry}/{repository}", repository.split("/", 1)[-1])
    return any(fnmatch.fnmatchcase(n, repo_pat) for n in names)


def list_gitea_packages(
    client: RegistryClient, api_url: str, owner: str, *, page_size: int = GITEA_PAGE_SIZE
) -> list[RemoteTag] | None:
    """Every tagged container package version of ``owner`` via Gitea's REST API; None when it is not Gitea."""
    what = f"listing packages of {owner} in {client.registry}"
    out: list[RemoteTag] = []
    headers = {"Accept": "application/json", **client.auth.api_headers()}
    for page in range(1, _MAX_PAGES):
        query = urlencode({"type": "container", "page": page, "limit": page_size})
        url = f"{api_url.rstrip('/')}/packages/{quote(owner, safe='')}?{query}"

        def once(u: str = url) -> tuple[int, bytes]:
            resp = client.transport.request("GET", u, headers=headers)
            return resp.status, resp.data

        status, body = client.retry.run(once, what=what)
        if status == 404:
            log.debug("%s: %s answered 404: not a Gitea package API", what, api_url)
            return None
        if status in (401, 403):
            raise AuthError(
                f"{what}: access denied ({status})",
                hint="Gitea's package API needs the owner's credentials (--username/--password or --token)",
                status=status,
            )
        if status != 200:
            raise RegistryError(f"{what}: HTTP {status}", status=status)
        try:
            items = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            log.debug("%s: answer is not JSON: not a Gitea package API", what)
            return None
        if not isinstance(items, list):
            return None
        for it in items:
            if not isinstance(it, dict) or it.get("type", "container") != "container":
                continue
            name, version = it.get("name"), it.get("version")
            if not isinstance(name, str) or not isinstance(version, str) or version.startswith("sha256:"):
                continue  # untagged manifests are listed by digest
            login = (it.get("owner") or {}).get("login") if isinstance(it.get("owner"), dict) else None
            repo_owner = login.lower() if isinstance(login, str) and login else owner
            created = it.get("created_at") if isinstance(it.get("created_at"), str) else None
            out.append(RemoteTag(client.registry, f"{repo_owner}/{name}", version, created))
        if len(items) < page_size:
            break
    return out


def list_v2(
    client: RegistryClient,
    *,
    pattern: str | None = None,
    repositories: list[str] | None = None,
    on_missing: Callable[[str], None] | None = None,
    page_size: int = CATALOG_PAGE_SIZE,
) -> list[RemoteTag]:
    """Tags of every repository in ``/v2/_catalog`` (or of ``repositories``) matching ``pattern``."""
    repos = repositories if repositories is not None else client.list_repositories(page_size=page_size)
    out: list[RemoteTag] = []
    for repo in sorted(set(repos)):
        if not matches(client.registry, repo, None, pattern):
            continue
        try:
            tags = client.list_tags(repo)
        except NotFoundError:
            if on_missing is not None:
                on_missing(repo)
            continue
        out.extend(
            RemoteTag(client.registry, repo, t) for t in tags if matches(client.registry, repo, t, pattern)
        )
    return out


def list_registry(
    client: RegistryClient, *, api_url: str | None, owner: str | None, pattern: str | None = None
) -> list[RemoteTag]:
    """Gitea's package API when ``api_url`` is given and answers, else the ``/v2`` catalog; sorted."""
    rows: list[RemoteTag] | None = None
    if api_url is not None and owner:
        rows = list_gitea_packages(client, api_url, owner)
        if rows is not None:
            rows = [r for r in rows if matches(r.registry, r.repository, r.tag, pattern)]
    if rows is None:
        rows = list_v2(client, pattern=pattern)
    return sorted(rows, key=lambda r: (r.repository, r.tag))


def list_remote(home: Path, opts: RegistryOptions, pattern: str | None = None) -> list[RemoteTag]:
    """The tags in the idpbuilder registry (Gitea package API, else ``/v2``), filtered by ``pattern``."""
    from idpbuilder.cluster.gitea import gitea_owner
    from idpbuilder.cluster.session import open_registry

    with open_registry(home, opts) as conn:
        ep, client = conn.endpoint, conn.client
        assert ep is not None
        client.ping()
        scheme = client.base_url.split("://", 1)[0]
        api_url = ep.api_url if scheme == ep.scheme else f"{scheme}://{ep.api_url.split('://', 1)[1]}"
        return list_registry(
            client, api_url=api_url, owner=gitea_owner(client.credential.username), pattern=pattern
        )
