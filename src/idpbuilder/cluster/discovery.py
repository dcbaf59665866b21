"""Discovery of the idpbuilder registry, its credentials and its CA, each optional and each with a fallback.

Registry: ``--registry`` > ``IDPBUILDER_REGISTRY_URL`` > the cluster's ``localbuilds.idpbuilder.cnoe.io``
resource > ``https://gitea.cnoe.localtest.me:8443``. Credentials: secret ``gitea/gitea-credential``.
CA: secret ``default/idpbuilder-cert`` key ``ca.crt``, cached as ``$IDPBUILDER_HOME/certs/<host>.pem``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from idpbuilder._records import dataclass, field
from idpbuilder.cluster.kube import ClusterUnreachable, KubeClient, KubeOptions
from idpbuilder.errors import ClusterError, UsageError
from idpbuilder.owner import stamped
from idpbuilder.registry.target import DEFAULT_REGISTRY_URL, ENV_REGISTRY_URL
from idpbuilder.store.private_dirs import private_mkdir

__all__ = [
    "CA_SECRET",
    "CREDENTIAL_SECRET",
    "DEFAULT_REGISTRY_URL",
    "ENV_REGISTRY_URL",
    "ClusterCredentials",
    "IdpCluster",
    "LocalBuild",
    "RegistryEndpoint",
    "ca_cache_path",
    "parse_localbuild",
    "parse_registry_url",
]

CREDENTIAL_SECRET = ("gitea", "gitea-credential")
CA_SECRET = ("default", "idpbuilder-cert")
CA_KEY = "ca.crt"
_DOCKER_HUB = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

_log = logging.getLogger("idpbuilder.cluster")


@dataclass(frozen=True)
class RegistryEndpoint:
    """The idpbuilder (Gitea) registry: ``host`` as written in image references, ``url`` as Gitea's base URL."""

    scheme: str
    host: str
    url: str
    source: str  # "flag" | "env" | "cluster" | "default"
    scheme_given: bool = True  # False for a bare host[:port]: https, or plain http where allowed

    @property
    def api_url(self) -> str:
        """Gitea's REST API base (``…/api/v1``), which follows path routing (``/gitea``)."""
        return f"{self.url.rstrip('/')}/api/v1"


def parse_registry_url(text: str, *, source: str) -> RegistryEndpoint:
    """Parse ``[scheme://]host[:port][/path]`` (scheme defaults to https); UsageError when malformed."""
    raw = text.strip()
    url = raw if "://" in raw else f"https://{raw}"
    parts = urlsplit(url)
    if "@" in raw:  # checked first (a password may hold '#', '/' or '?'): never echoed
        raise UsageError(
            "the registry URL must not carry credentials", hint="use --username/--password or --token instead"
        )
    from idpbuilder.registry.transport import redact_url

    shown = redact_url(text)
    try:
        port = parts.port
    except ValueError as e:
        raise UsageError(
            f"invalid registry URL {shown!r}: bad port", hint="use e.g. https://gitea.example:8443"
        ) from e
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise UsageError(
            f"invalid registry URL {shown!r}", hint="use e.g. https://gitea.cnoe.localtest.me:8443"
        )
    host = parts.netloc.lower()
    if port is None and ":" in host.rsplit("]", 1)[-1]:
        host = host.rstrip(":")
    path = parts.path.rstrip("/")
    return RegistryEndpoint(
        scheme=parts.scheme,
        host=host,
        url=f"{parts.scheme}://{host}{path}",
        source=source,
        scheme_given="://" in raw,
    )


@dataclass(frozen=True)
class LocalBuild:
    """What the ``localbuilds`` resource says about how the cluster was created."""

    protocol: str
    host: str
    port: str
    use_path_routing: bool
    external_url: str | None = None

    @property
    def registry_host(self) -> str:
        """Domain routing gives ``gitea.<host>:<port>``, path routing ``<host>:<port>``."""
        base = self.host if self.use_path_routing else f"gitea.{self.host}"
        return f"{base}:{self.port}" if self.port else base

    @property
    def gitea_url(self) -> str:
        """Gitea's base URL: ``status.gitea.externalURL``, else computed as idpbuilder does (GiteaURLTempl)."""
        if self.external_url:
            return self.external_url.rstrip("/")
        suffix = "/gitea" if self.use_path_routing else ""
        return f"{self.protocol}://{self.registry_host}{suffix}"

    def endpoint(self) -> RegistryEndpoint:
        """This build's registry as an endpoint (source ``cluster``)."""
        return RegistryEndpoint(
            scheme=self.protocol, host=self.registry_host.lower(), url=self.gitea_url, source="cluster"
        )


def parse_localbuild(obj: Mapping[str, Any]) -> LocalBuild:
    """Read ``spec.buildCustomization`` and ``status.gitea.externalURL``; ClusterError when unusable."""
    name = (obj.get("metadata") or {}).get("name", "?") if isinstance(obj.get("metadata"), dict) else "?"
    spec = obj.get("spec")
    custom = spec.get("buildCustomization") if isinstance(spec, dict) else None
    status = obj.get("status")
    gitea = status.get("gitea") if isinstance(status, dict) else None
    external = gitea.get("externalURL") if isinstance(gitea, dict) else None
    if external is not None and (not isinstance(external, str) or "://" not in external):
        external = None
    if not isinstance(custom, dict):
        raise ClusterError(f"localbuild {name!r} has no spec.buildCustomization")
    protocol = custom.get("protocol") or "https"
    host = custom.get("host") or ""
    port = custom.get("port")
    routing = custom.get("usePathRouting", False)
    if protocol not in ("http", "https"):
        raise ClusterError(f"localbuild {name!r}: unsupported protocol {protocol!r}")
    if not isinstance(host, str) or not host or any(c in host for c in "/:@ "):
        raise ClusterError(f"localbuild {name!r}: invalid host {host!r}")
    port_s = str(port) if port not in (None, "") else ("8443" if protocol == "https" else "8080")
    if not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise ClusterError(f"localbuild {name!r}: invalid port {port!r}")
    if not isinstance(routing, bool):
        raise ClusterError(f"localbuild {name!r}: usePathRouting is not a boolean")
    return LocalBuild(protocol, host.lower(), port_s, routing, external)


@dataclass(frozen=True)
class ClusterCredentials:
    """The Gitea admin account from ``gitea/gitea-credential``; ``repr`` never shows the secrets."""

    username: str
    password: str = field(repr=False)
    token: str = field(repr=False, default="")

    @property
    def secret(self) -> str:
        """What to send as the Basic-auth password: the password, else the token (Gitea accepts both)."""
        return self.password or self.token


def ca_cache_path(home: Path, host: str) -> Path:
    """Where the CA for registry ``host`` is cached: ``$IDPBUILDER_HOME/certs/<host>.pem``."""
    safe = host.replace("/", "_")
    return home / "certs" / f"{safe}.pem"


def _check_pem(pem: str, what: str) -> None:
    import ssl  # only when a CA is read from the cluster (a plain-HTTP push never loads ssl for it)

    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise ClusterError(f"{what}: not a PEM certificate")
    try:
        ssl.create_default_context(cadata=pem)
    except (ssl.SSLError, ValueError) as e:
        raise ClusterError(f"{what}: not a usable CA certificate ({e})") from e


def _write_atomic(path: Path, data: bytes) -> None:
    import tempfile

    private_mkdir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=stamped(f".{path.name}."))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class IdpCluster:
    """Everything the tool reads from an idpbuilder cluster, each lookup memoised and optional.

    The first time the cluster proves unusable (no kubeconfig, no context, unreachable) one debug line says
    why, and no further request is made, so a missing cluster costs at most one short timeout.
    """

    def __init__(
        self,
        opts: KubeOptions | None = None,
        *,
        home: Path,
        registry: str | None = None,
        env: Mapping[str, str] | None = None,
        client: KubeClient | None = None,
    ) -> None:
        self._env = dict(os.environ) if env is None else dict(env)
        self._opts = opts or KubeOptions()
        self._home = home
        self._registry_flag = registry
        self._client = client or KubeClient(self._opts, env=self._env)
        self._down: str | None = None
        self._memo: dict[str, Any] = {}

    @property
    def unavailable_reason(self) -> str | None:
        """Why the cluster is not used (None while it is, or before it was first asked)."""
        return self._down

    def _read(self, key: str, fn: Any) -> Any:
        """Run one cluster read, memoised; ClusterError (also the cached one) when it cannot be answered."""
        if key in self._memo:
            value = self._memo[key]
            if isinstance(value, ClusterError):
                raise value
            return value
        if self._down is not None:
            raise ClusterUnreachable(self._down)
        try:
            value = fn()
        except ClusterUnreachable as e:
            self._down = e.message
            # a cluster the user named (--kubeconfig/--context) that cannot be used deserves a warning;
            # the default one is optional, so its absence is only a debug line
            named = self._opts.kubeconfig is not None or self._opts.context is not None
            _log.log(
                logging.WARNING if named else logging.DEBUG, "not using the idpbuilder cluster: %s", e.message
            )
            raise
        except ClusterError as e:
            self._memo[key] = e
            raise
        self._memo[key] = value
        return value

    def registry(self) -> RegistryEndpoint:
        """The idpbuilder registry: ``--registry`` > ``IDPBUILDER_REGISTRY_URL`` > cluster > default."""
        if "registry" in self._memo:
            reg: RegistryEndpoint = self._memo["registry"]
            return reg
        if self._registry_flag:
            reg = parse_registry_url(self._registry_flag, source="flag")
        elif self._env.get(ENV_REGISTRY_URL, "").strip():
            reg = parse_registry_url(self._env[ENV_REGISTRY_URL], source="env")
        else:
            reg = self._registry_from_cluster() or parse_registry_url(DEFAULT_REGISTRY_URL, source="default")
        _log.debug("idpbuilder registry %s (from %s)", reg.url, reg.source)
        self._memo["registry"] = reg
        return reg

    def _registry_from_cluster(self) -> RegistryEndpoint | None:
        try:
            items = self._read("localbuilds", self._client.list_localbuilds)
        except ClusterUnreachable:
            return None
        except ClusterError as e:
            _log.debug("registry not discovered from the cluster: %s", e.message)
            return None
        if not items:
            _log.debug("registry not discovered from the cluster: no localbuilds resource")
            return None
        try:
            # idpbuilder itself reads Items[0] (pkg/util/idp.go GetConfig)
            return parse_localbuild(items[0]).endpoint()
        except (ClusterError, UsageError) as e:
            _log.debug("registry not discovered from the cluster: %s", e.message)
            return None

    def is_idp_registry(self, host: str) -> bool:
        """Whether ``host`` (as in an image reference) is the idpbuilder registry (never Docker Hub: no cluster read)."""
        h = host.lower()
        if h in _DOCKER_HUB:
            return False
        return h == self.registry().host

    def credentials(self, host: str | None = None) -> ClusterCredentials | None:
        """The Gitea admin credentials, only for the idpbuilder registry; None when unavailable."""
        if host is not None and not self.is_idp_registry(host):
            return None
        try:
            data = self._read("credentials", lambda: self._client.get_secret(*CREDENTIAL_SECRET))
        except ClusterError as e:
            if not isinstance(e, ClusterUnreachable):
                _log.debug("no credentials from the cluster: %s", e.message)
            return None
        username = data.get("username", "")
        password = data.get("password", "")
        token = data.get("token", "")
        if not username or not (password or token):
            _log.debug(
                "no credentials from the cluster: secret %s/%s lacks username or password", *CREDENTIAL_SECRET
            )
            return None
        _log.debug("using credentials of %r from secret %s/%s", username, *CREDENTIAL_SECRET)
        return ClusterCredentials(username, password, token)

    def ca_pem(self) -> str:
        """The idpbuilder CA (PEM) from secret ``default/idpbuilder-cert``; ClusterError when unavailable."""
        what = f"secret {CA_SECRET[0]}/{CA_SECRET[1]}"

        def read() -> str:
            data = self._client.get_secret(*CA_SECRET)
            pem = data.get(CA_KEY, "")
            if not pem:
                raise ClusterError(f"{what} has no key {CA_KEY!r}")
            _check_pem(pem, f"{what} key {CA_KEY}")
            return pem

        pem: str = self._read("ca", read)
        return pem

    def ca_file(self, host: str | None = None) -> Path | None:
        """The idpbuilder CA for ``host`` (default: the idpbuilder registry) as a file, refreshed from the cluster.

        Falls back to the cached copy when the cluster cannot be read; None for other registries or when
        there is no CA at all.
        """
        reg_host = self.registry().host
        if host is not None and host.lower() != reg_host:
            return None
        path = ca_cache_path(self._home, reg_host)
        try:
            pem = self.ca_pem()
        except ClusterError as e:
            if not isinstance(e, ClusterUnreachable):
                _log.debug("no CA from the cluster: %s", e.message)
            if path.is_file():
                _log.debug("using the cached CA %s", path)
                return path
            return None
        data = pem.encode()
        try:
            current = path.read_bytes() if path.is_file() else None
            if current != data:
                _write_atomic(path, data)
                _log.debug("cached the cluster CA as %s", path)
        except OSError as e:
            _log.debug("could not cache the cluster CA at %s: %s", path, e)
            return None
        return path

    def close(self) -> None:
        """Release the cluster connection."""
        self._client.close()
