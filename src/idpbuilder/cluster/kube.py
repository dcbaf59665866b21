"""Read-only access to the idpbuilder Kubernetes cluster through a kubeconfig (lightkube, imported lazily)."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from idpbuilder._records import dataclass
from idpbuilder.errors import ClusterError

__all__ = [
    "ClusterUnreachable",
    "DEFAULT_CONTEXT",
    "DEFAULT_TIMEOUT",
    "KubeClient",
    "KubeOptions",
    "kubeconfig_paths",
    "load_kubeconfig",
]

DEFAULT_CONTEXT = "kind-localdev"  # `idpbuilder create` writes context kind-<name>, name defaults to localdev
DEFAULT_TIMEOUT = 2.5  # seconds per request: the cluster is optional, never make the user wait for it

LOCALBUILD_GROUP = "idpbuilder.cnoe.io"
LOCALBUILD_VERSION = "v1alpha1"
LOCALBUILD_KIND = "Localbuild"
LOCALBUILD_PLURAL = "localbuilds"

# kubeconfig fields holding file paths, resolved relative to the file that names them (as kubectl does)
_PATH_FIELDS = {
    "clusters": ("cluster", ("certificate-authority",)),
    "users": ("user", ("client-certificate", "client-key", "tokenFile")),
}


class ClusterUnreachable(ClusterError):
    """No usable cluster at all (no kubeconfig, no context, connection failed): stop asking it."""


@dataclass(frozen=True)
class KubeOptions:
    """Where to find the cluster: ``--kubeconfig`` and ``--context`` (None = environment / defaults)."""

    kubeconfig: Path | None = None
    context: str | None = None
    timeout: float = DEFAULT_TIMEOUT


def kubeconfig_paths(opts: KubeOptions, env: Mapping[str, str], home: Path | None = None) -> list[Path]:
    """The kubeconfig files to read: ``--kubeconfig`` > ``KUBECONFIG`` (colon-separated) > ``~/.kube/config``."""
    if opts.kubeconfig is not None:
        return [opts.kubeconfig.expanduser()]
    value = env.get("KUBECONFIG", "")
    if value.strip():
        return [Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]
    base = home if home is not None else Path(env.get("HOME") or Path.home())
    return [base / ".kube" / "config"]


def _absolutize(doc: dict[str, Any], base: Path) -> None:
    for section, (inner, fields) in _PATH_FIELDS.items():
        for entry in doc.get(section) or []:
            body = entry.get(inner) if isinstance(entry, dict) else None
            if not isinstance(body, dict):
                continue
            for f in fields:
                value = body.get(f)
                if isinstance(value, str) and value and not Path(value).is_absolute():
                    body[f] = str(base / value)


def load_kubeconfig(paths: list[Path]) -> dict[str, Any]:
    """Merge kubeconfig files the way kubectl does (first file wins per name); ClusterError if none is usable."""
    merged: dict[str, Any] = {"clusters": [], "contexts": [], "users": [], "current-context": None}
    seen: dict[str, set[str]] = {"clusters": set(), "contexts": set(), "users": set()}
    found = False
    for path in paths:
        if not path.is_file():
            continue
        import yaml  # lightkube's dependency; imported only when a kubeconfig exists (push start-up)

        try:
            doc = yaml.safe_load(path.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise ClusterUnreachable(
                f"reading kubeconfig {path}: {type(e).__name__}: {e}".splitlines()[0]
            ) from e
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ClusterUnreachable(
                f"reading kubeconfig {path}: not a kubeconfig (top level is not a mapping)"
            )
        found = True
        _absolutize(doc, path.parent.absolute())
        for section in ("clusters", "contexts", "users"):
            for entry in doc.get(section) or []:
                if (
                    isinstance(entry, dict)
                    and isinstance(entry.get("name"), str)
                    and entry["name"] not in seen[section]
                ):
                    seen[section].add(entry["name"])
                    merged[section].append(entry)
        if not merged["current-context"] and isinstance(doc.get("current-context"), str):
            merged["current-context"] = doc["current-context"]
    if not found:
        shown = os.pathsep.join(str(p) for p in paths)
        raise ClusterUnreachable(f"no kubeconfig found at {shown}")
    return merged


def _lightkube_reason(e: BaseException) -> str:
    """A one-line, secret-free description of a failure inside lightkube/httpx2."""
    text = str(e).splitlines()[0] if str(e) else ""
    name = type(e).__name__
    return f"{name}: {text}" if text else name


class KubeClient:
    """A lazily connected, read-only lightkube client for one kubeconfig context; every read may raise ClusterError."""

    def __init__(self, opts: KubeOptions, *, env: Mapping[str, str] | None = None) -> None:
        self._opts = opts
        self._env = dict(os.environ) if env is None else dict(env)
        self._client: Any = None
        self.context_name: str | None = None
        self.server: str | None = None

    def _connect(self) -> Any:
        if self._client is not None:
            return self._client
        doc = load_kubeconfig(kubeconfig_paths(self._opts, self._env))
        contexts = {c["name"] for c in doc["contexts"]}
        name = self._opts.context or doc["current-context"] or DEFAULT_CONTEXT
        if name not in contexts:
            which = (
                "--context"
                if self._opts.context
                else "current context"
                if doc["current-context"]
                else "default"
            )
            raise ClusterUnreachable(f"kubeconfig has no context {name!r} ({which})")
        try:
            import httpx2
            from lightkube import Client
            from lightkube.config.kubeconfig import KubeConfig

            config = KubeConfig.from_dict(doc).get(name)
            assert config is not None
            if config.user is None:
                # lightkube requires a user entry; an anonymous one is what kubectl would use
                from lightkube.config.models import User

                config = config._replace(user=User())
            self.server = config.cluster.server
            self._client = Client(config, timeout=httpx2.Timeout(self._opts.timeout))
        except ClusterError:
            raise
        except Exception as e:  # lightkube raises a mix of ConfigError, KeyError, ValueError, ssl errors
            raise ClusterUnreachable(
                f"kubeconfig context {name!r} is unusable: {_lightkube_reason(e)}"
            ) from e
        self.context_name = name
        return self._client

    def _call(self, what: str, fn: Any) -> Any:
        client = self._connect()
        try:
            return fn(client)
        except Exception as e:
            from lightkube import ApiError

            if isinstance(e, ApiError):
                code = e.response.status_code if e.response is not None else None
                if code == 404:
                    raise ClusterError(f"{what}: not found in cluster {self.server}") from e
                raise ClusterError(
                    f"{what}: HTTP {code} from cluster {self.server}: {e.status.message}"
                ) from e
            raise ClusterUnreachable(
                f"{what}: cluster {self.server} unreachable: {_lightkube_reason(e)}"
            ) from e

    def get_secret(self, namespace: str, name: str) -> dict[str, str]:
        """The decoded ``data`` (and ``stringData``) of a Secret; ClusterError if absent or unreadable."""
        self._connect()  # no kubeconfig: fail before importing lightkube
        from lightkube.resources.core_v1 import Secret

        what = f"reading secret {namespace}/{name}"
        secret = self._call(what, lambda c: c.get(Secret, name, namespace=namespace))
        out: dict[str, str] = {}
        for key, value in (secret.data or {}).items():
            try:
                out[key] = base64.b64decode(value, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError, ValueError) as e:
                raise ClusterError(f"{what}: key {key!r} is not valid base64 text") from e
        for key, value in (getattr(secret, "stringData", None) or {}).items():
            out.setdefault(key, value)
        return out

    def list_localbuilds(self) -> list[dict[str, Any]]:
        """All ``localbuilds.idpbuilder.cnoe.io/v1alpha1`` objects as plain dicts; ClusterError if unreadable."""
        self._connect()  # no kubeconfig: fail before importing lightkube (~0.3 s of push start-up)
        from lightkube.generic_resource import create_global_resource

        res = create_global_resource(LOCALBUILD_GROUP, LOCALBUILD_VERSION, LOCALBUILD_KIND, LOCALBUILD_PLURAL)
        what = f"listing {LOCALBUILD_PLURAL}.{LOCALBUILD_GROUP}"
        items = self._call(what, lambda c: list(c.list(res)))
        return [item.to_dict() if hasattr(item, "to_dict") else dict(item) for item in items]

    def close(self) -> None:
        """Release the connection pool."""
        if self._client is not None:
            self._client.close()
            self._client = None
