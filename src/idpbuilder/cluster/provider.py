"""Plugs the cluster into the registry client: a Keychain provider and per-host CA trust."""

from __future__ import annotations

from typing import TYPE_CHECKING

from idpbuilder.cluster.discovery import CREDENTIAL_SECRET, IdpCluster

if TYPE_CHECKING:
    from idpbuilder.credentials.keychain import Credential
    from idpbuilder.credentials.tls import TrustConfig

__all__ = ["ClusterKeychain", "with_cluster_ca"]


class ClusterKeychain:
    """Credentials from secret ``gitea/gitea-credential``, answered only for the idpbuilder registry.

    Belongs after the docker config and before anonymous in the chain (``default_keychain(plugins=…)``).
    """

    def __init__(self, cluster: IdpCluster) -> None:
        self._cluster = cluster

    def resolve(self, registry: str) -> Credential | None:
        """The Gitea admin account for the idpbuilder registry; None for any other registry or no cluster."""
        from idpbuilder.credentials.keychain import Credential

        creds = self._cluster.credentials(registry)
        if creds is None:
            return None
        return Credential(
            username=creds.username,
            password=creds.password or None,
            token=creds.token or None,
            source=f"cluster secret {CREDENTIAL_SECRET[0]}/{CREDENTIAL_SECRET[1]}",
        )


def with_cluster_ca(trust: TrustConfig, cluster: IdpCluster, registry: str) -> TrustConfig:
    """``trust`` plus the idpbuilder CA for ``registry`` when it is the idpbuilder registry (else unchanged)."""
    if trust.insecure:
        return trust
    path = cluster.ca_file(registry)
    return trust.with_host_ca(registry, path) if path is not None else trust
