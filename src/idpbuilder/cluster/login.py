"""``login`` / ``logout``: check credentials against a registry, then keep them in the docker config.

As ``docker login``: the credentials are tried with an authenticated ``GET /v2/`` (through the registry client's
challenge flow: Basic, or a token from the realm) and saved only when the registry accepts them, in the docker
config or through its credential helper (:mod:`idpbuilder.credentials.authfile`). With no registry named, the
idpbuilder registry is the target (``--registry``, ``IDPBUILDER_REGISTRY_URL``, the cluster's, the default)
and, when no credentials are given, the cluster's Gitea account is the one logged in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from idpbuilder._records import dataclass
from idpbuilder.cluster.session import RegistryOptions, open_cluster, registry_settings
from idpbuilder.credentials.authfile import AuthFile, SavedLogin
from idpbuilder.credentials.credential import Credential
from idpbuilder.errors import UsageError

__all__ = ["LoginResult", "login", "logout", "registry_host"]


@dataclass(frozen=True)
class LoginResult:
    """Who logged in where, and where the credentials were saved."""

    registry: str
    username: str
    saved: SavedLogin
    source: str  # where the credentials came from: "flags", "stdin", "prompt", the cluster secret…


def registry_host(text: str) -> tuple[str, str | None]:
    """``https://host:port/v2/`` → (``host:port``, ``https``); a bare host → (host, None). Docker Hub → docker.io."""
    t = text.strip()
    scheme: str | None = None
    if "://" in t:
        scheme, t = t.split("://", 1)
        scheme = scheme.lower()
        if scheme not in ("http", "https"):
            raise UsageError(f"unsupported registry URL scheme {scheme!r}", hint="use https:// or http://")
    host = t.split("/", 1)[0].lower()
    if not host or any(c in host for c in " @?#"):
        raise UsageError(
            f"invalid registry {text!r}", hint="give a registry host[:port], e.g. localhost:5000"
        )
    if host in ("index.docker.io", "registry-1.docker.io"):
        host = "docker.io"
    return host, scheme


def login(
    home: Path,
    registry: str | None,
    opts: RegistryOptions,
    *,
    source: str = "flags",
    environ: Mapping[str, str] | None = None,
) -> LoginResult:
    """Verify the credentials of ``opts`` (else the keychain's: environment, docker config, cluster secret) for
    ``registry`` (None: the idpbuilder registry) with ``GET /v2/`` and store them."""
    from idpbuilder.cluster.provider import with_cluster_ca
    from idpbuilder.registry.client import RegistryClient

    env = os.environ if environ is None else environ
    cluster = open_cluster(
        home, kubeconfig=opts.kubeconfig, kube_context=opts.kube_context, registry=opts.registry
    )
    try:
        if registry is None:
            endpoint = cluster.registry()
            host, scheme = endpoint.host, (endpoint.scheme if endpoint.scheme_given else None)
        else:
            host, scheme = registry_host(registry)
        settings = registry_settings(home, opts, cluster=cluster)
        trust = with_cluster_ca(settings.trust, cluster, host)
        cred = settings.keychain.resolve(host) or Credential()
        if opts.username or opts.password or opts.token:
            cred = Credential(cred.username, cred.password, cred.token, source=source)
    finally:
        cluster.close()
    if cred.anonymous or not cred.username:
        raise UsageError(
            f"no credentials to log in to {host} with",
            hint="pass --username and --password-stdin (the idpbuilder cluster's account is used only for its "
            "Gitea registry)",
        )
    from idpbuilder import _records

    settings = _records.replace(settings, trust=trust)
    secret = cred.password or cred.token
    assert secret is not None
    client = RegistryClient(host, settings, scheme=scheme, credential=cred)
    try:
        what = f"logging in to {host} as {cred.username}"
        resp = client.request("GET", f"{client.base_url}/v2/", scopes=(), what=what)
        if resp.status not in (200, 204):
            client.raise_for(resp, what)
        resp.release_conn()
    finally:
        client.close()
    saved = AuthFile.from_env(env).store(host, cred.username, secret)
    return LoginResult(host, cred.username, saved, cred.source)


def logout(
    home: Path, registry: str | None, opts: RegistryOptions, *, environ: Mapping[str, str] | None = None
) -> tuple[str, bool]:
    """Remove the stored credentials of ``registry`` (None: the idpbuilder registry); (host, whether any were)."""
    env = os.environ if environ is None else environ
    if registry is None:
        cluster = open_cluster(
            home, kubeconfig=opts.kubeconfig, kube_context=opts.kube_context, registry=opts.registry
        )
        try:
            host = cluster.registry().host
        finally:
            cluster.close()
    else:
        host, _ = registry_host(registry)
    return host, AuthFile.from_env(env).erase(host)
