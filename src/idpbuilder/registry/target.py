"""Where a push goes: the host in the reference, else ``--registry`` / ``IDPBUILDER_REGISTRY_URL`` / default.

This is the rule without a cluster. The layer above (``idpbuilder.cluster.target.idp_push_target``) adds the
registry discovered from the cluster and the Gitea owner fix-up, and returns the same ``PushTarget``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from idpbuilder._records import dataclass, replace
from idpbuilder.errors import UsageError
from idpbuilder.reference import Reference

__all__ = [
    "DEFAULT_REGISTRY_URL",
    "ENV_REGISTRY_URL",
    "PushTarget",
    "parse_registry_url",
    "resolve_push_target",
]

DEFAULT_REGISTRY_URL = "https://gitea.cnoe.localtest.me:8443"
ENV_REGISTRY_URL = "IDPBUILDER_REGISTRY_URL"


@dataclass(frozen=True)
class PushTarget:
    """The reference to push to, the scheme when a URL fixed it, and where the registry came from."""

    reference: Reference
    scheme: str | None = None
    registry_source: str = "reference"  # reference | flag | environment | default (| cluster)

    @property
    def default_registry(self) -> bool:
        """True when no host was typed and none was configured (the idpbuilder Gitea default)."""
        return self.registry_source == "default"


def _shown(url: str) -> str:
    """``url`` safe to print (token-like query values replaced)."""
    from idpbuilder.registry.transport import redact_url

    return redact_url(url)


def parse_registry_url(url: str) -> tuple[str, str | None, str]:
    """``https://host:port/path`` → (``host:port``, ``https``, ``path``); a bare ``host[:port][/path]`` has no scheme."""
    text = url.strip().rstrip("/")
    if not text:
        raise UsageError(
            "empty registry URL", hint="use e.g. --registry https://gitea.cnoe.localtest.me:8443"
        )
    if "@" in text:  # user:password@ (a password may hold '#', '/' or '?'): never echoed
        raise UsageError(
            "the registry URL must not carry credentials", hint="use --username/--password or --token instead"
        )
    scheme: str | None = None
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https"):
            raise UsageError(
                f"unsupported registry URL {_shown(url)!r}",
                hint="use https://HOST[:PORT] or http://HOST[:PORT]",
            )
        scheme = parts.scheme
        host, path = parts.netloc, parts.path
    else:
        host, _, path = text.partition("/")
    if not host:
        raise UsageError(
            f"invalid registry URL {_shown(url)!r}", hint="use https://HOST[:PORT] (credentials go in flags)"
        )
    return host.lower(), scheme, path.strip("/")


def resolve_push_target(
    ref: Reference,
    registry_flag: str | None,
    *,
    environ: Mapping[str, str] | None = None,
) -> PushTarget:
    """The push target for ``ref``: its own host, else ``--registry``, ``IDPBUILDER_REGISTRY_URL``, the default."""
    if ref.registry is not None:
        return PushTarget(ref.with_default_tag() if ref.digest is None else ref, None, "reference")
    env = os.environ if environ is None else environ
    if registry_flag:
        url, source = registry_flag, "flag"
    elif env.get(ENV_REGISTRY_URL):
        url, source = env[ENV_REGISTRY_URL], "environment"
    else:
        url, source = DEFAULT_REGISTRY_URL, "default"
    host, scheme, path = parse_registry_url(url)
    repo = f"{path}/{ref.repository}" if path else ref.repository
    try:
        target = Reference.parse(f"{host}/{repo}")
    except UsageError as e:
        raise UsageError(f"cannot push {ref} to {url}: {e.message}", hint=e.hint) from None
    target = replace(target, tag=ref.tag, digest=ref.digest)
    if target.digest is None:
        target = target.with_default_tag()
    return PushTarget(target, scheme, source)
