"""The one way into a registry: registry options plus the idpbuilder cluster give a ready ``RegistryClient``.

Every command that talks to a registry (push, pull, build's FROM and --push, ``images --remote``) opens it
with :func:`open_registry`. Credentials, first found wins: flags > ``IDPBUILDER_REGISTRY_*`` > docker
config > the cluster secret ``gitea/gitea-credential`` (idpbuilder registry only) > anonymous. TLS: system
CAs + ``--ca-file`` + cached ``certs/<host>.pem`` + the cluster CA (idpbuilder registry only). The cluster is
read while the connection is opened and closed before any transfer starts.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from idpbuilder import _records
from idpbuilder._records import dataclass

if TYPE_CHECKING:
    from idpbuilder.cluster.discovery import IdpCluster, RegistryEndpoint
    from idpbuilder.reference import Reference
    from idpbuilder.registry.client import RegistryClient
    from idpbuilder.registry.settings import RegistrySettings

__all__ = ["RegistryConnection", "RegistryOptions", "open_cluster", "open_registry", "registry_settings"]


@dataclass(frozen=True)
class RegistryOptions:
    """Registry, credential, TLS, transfer and cluster options of push, pull, build and ``images --remote``."""

    registry: str | None = None  # the idpbuilder registry URL (else env, the cluster's, the default)
    username: str | None = None
    password: str | None = None
    token: str | None = None
    insecure: bool = False
    ca_file: Path | None = None
    retries: int | None = None
    timeout: float | None = None  # seconds without a byte before a request counts as stalled (None: env/30)
    jobs: int = 4
    chunk_size: int | None = None  # bytes per PATCH for big blobs (None: the default)
    kubeconfig: Path | None = None  # the idpbuilder cluster (registry, credentials and CA discovery)
    kube_context: str | None = None
    mirrors: tuple[str, ...] = ()  # Docker Hub mirrors tried before Docker Hub (--registry-mirror)

    @classmethod
    def from_kwargs(cls, kw: dict[str, Any]) -> RegistryOptions:
        """Pick the option values out of a mapping of option names (unknown names and None are skipped)."""
        names = {f.name for f in _records.fields(cls)}
        return cls(**{k: v for k, v in kw.items() if k in names and v is not None})


def open_cluster(
    home: Path,
    *,
    kubeconfig: Path | None = None,
    kube_context: str | None = None,
    registry: str | None = None,
) -> IdpCluster:
    """The idpbuilder cluster of ``--kubeconfig``/``--context``/``--registry`` (nothing is read until asked)."""
    from idpbuilder.cluster.discovery import IdpCluster
    from idpbuilder.cluster.kube import KubeOptions

    return IdpCluster(KubeOptions(kubeconfig=kubeconfig, context=kube_context), home=home, registry=registry)


def registry_settings(
    home: Path, opts: RegistryOptions, *, cluster: IdpCluster | None = None
) -> RegistrySettings:
    """Keychain (the cluster secret last before anonymous when ``cluster`` is given), TLS, retry and upload
    tuning from ``opts``; the cluster's CA is added per registry by :func:`open_registry`."""
    from idpbuilder.credentials.keychain import Keychain, default_keychain
    from idpbuilder.credentials.tls import TrustConfig
    from idpbuilder.registry.retry import RetryPolicy
    from idpbuilder.registry.settings import (
        DEFAULT_CHUNK_SIZE,
        DEFAULT_MONOLITHIC_THRESHOLD,
        RegistrySettings,
    )

    plugins: tuple[Keychain, ...] = ()
    if cluster is not None:
        from idpbuilder.cluster.provider import ClusterKeychain

        plugins = (ClusterKeychain(cluster),)
    keychain = default_keychain(
        username=opts.username, password=opts.password, token=opts.token, plugins=plugins
    )
    trust = TrustConfig.from_options(
        ca_file=opts.ca_file, insecure=opts.insecure, cert_dirs=(home / "certs",)
    )
    chunk = opts.chunk_size if opts.chunk_size is not None else DEFAULT_CHUNK_SIZE
    return RegistrySettings(
        keychain=keychain,
        trust=trust,
        retry=RetryPolicy.from_options(retries=opts.retries, timeout=opts.timeout),
        jobs=opts.jobs,
        chunk_size=chunk,
        monolithic_threshold=min(DEFAULT_MONOLITHIC_THRESHOLD, chunk),
    )


@dataclass(frozen=True)
class RegistryConnection:
    """An open registry client and what it was opened for; close it (or use it as a context manager)."""

    client: RegistryClient
    settings: RegistrySettings
    reference: Reference | None  # the push target / the normalised pull reference; None for the registry
    endpoint: RegistryEndpoint | None  # the idpbuilder registry, when opened for it (no reference)

    def close(self) -> None:
        """Release the client's connections."""
        self.client.close()

    def __enter__(self) -> RegistryConnection:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_registry(
    home: Path, opts: RegistryOptions, reference: Reference | None = None, *, push: bool = False
) -> RegistryConnection:
    """A client for the registry of ``reference``, credentials resolved and CA trusted.

    ``push``: ``reference`` is resolved as a push target (no host → the idpbuilder registry, Gitea owner
    inserted); else it is normalised for pulling (Docker Hub). No ``reference``: the idpbuilder registry itself.
    """
    from idpbuilder.cluster.provider import with_cluster_ca
    from idpbuilder.cluster.target import idp_push_target
    from idpbuilder.registry.client import RegistryClient

    cluster = open_cluster(
        home, kubeconfig=opts.kubeconfig, kube_context=opts.kube_context, registry=opts.registry
    )
    try:
        settings = registry_settings(home, opts, cluster=cluster)
        scheme: str | None = None
        endpoint: RegistryEndpoint | None = None
        if reference is None:
            endpoint = cluster.registry()
            host = endpoint.host
            scheme = endpoint.scheme if endpoint.scheme_given else None
        elif push:
            target = idp_push_target(reference, cluster, keychain=settings.keychain)
            reference, scheme = target.reference, target.scheme
            assert reference.registry is not None
            host = reference.registry
        else:
            reference = reference.for_pull()
            assert reference.registry is not None
            host = reference.registry
        trust = with_cluster_ca(settings.trust, cluster, host)
        if trust is not settings.trust:
            settings = _records.replace(settings, trust=trust)
        # resolve the credentials now: the cluster is read here, and closed before any transfer
        credential = settings.keychain.resolve(host)
    finally:
        cluster.close()
    client = RegistryClient(host, settings, scheme=scheme, credential=credential)
    return RegistryConnection(client, settings, reference, endpoint)
