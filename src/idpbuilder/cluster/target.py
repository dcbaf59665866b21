"""Push targets on the idpbuilder registry: discovered default registry plus the Gitea owner fix-up."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from idpbuilder._records import replace
from idpbuilder.cluster.discovery import IdpCluster
from idpbuilder.cluster.gitea import gitea_owner, gitea_target
from idpbuilder.errors import UsageError
from idpbuilder.reference import Reference
from idpbuilder.registry.target import PushTarget

if TYPE_CHECKING:
    from idpbuilder.credentials.keychain import Keychain

__all__ = ["idp_push_target"]

log = logging.getLogger("idpbuilder.cluster")

_SOURCES = {"flag": "flag", "env": "environment", "cluster": "cluster", "default": "default"}


def idp_push_target(ref: Reference, cluster: IdpCluster, *, keychain: Keychain | None = None) -> PushTarget:
    """Where ``ref`` goes: no host → the idpbuilder registry; on it, ``owner/`` is inserted for a one-part name.

    The owner is the lower-cased user name the push will use (from ``keychain``), else ``giteaadmin``.
    A registry URL path other than Gitea's ``/gitea`` prefix becomes a namespace, as for other registries.
    Names are checked against Gitea's rules (UsageError before any upload); references to other registries
    are returned unchanged.
    """
    if ref.registry is not None and not cluster.is_idp_registry(ref.registry):
        return PushTarget(ref.with_default_tag() if ref.digest is None else ref, None, "reference")
    ep = cluster.registry()
    if ref.registry is None:
        path = urlsplit(ep.url).path.strip("/")
        if path and path != "gitea":  # path routing serves /v2 at the root too: no prefix needed
            try:
                ref = replace(ref, repository=Reference.parse(f"{path}/{ref.repository}").repository)
            except UsageError as e:
                raise UsageError(f"cannot push {ref} to {ep.url}: {e.message}", hint=e.hint) from None
    username = None
    if keychain is not None:
        cred = keychain.resolve(ep.host)
        username = cred.username if cred is not None else None
    t = gitea_target(ref, registry_host=ep.host, owner=gitea_owner(username))
    target = t.reference if t.reference.digest is not None else t.reference.with_default_tag()
    if t.owner_inserted:
        log.info(
            "pushing to %s (Gitea needs an owner: added %s/)", target, target.repository.split("/", 1)[0]
        )
    source = "reference" if ref.registry is not None else _SOURCES[ep.source]
    return PushTarget(target, ep.scheme if ep.scheme_given else None, source)
