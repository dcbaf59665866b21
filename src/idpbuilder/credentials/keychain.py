"""Registry credentials: a value type, the ``Keychain`` protocol and a first-found-wins chain.

Order used by the CLI (``default_keychain``): flags > environment > docker config > plugins (the
cluster provider) > anonymous. Flags and environment are merged field by field, so a flag beats its
own environment variable even when the other field comes from the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Protocol

from idpbuilder._records import dataclass
from idpbuilder.credentials.credential import Credential
from idpbuilder.credentials.dockerconfig import DockerConfigKeychain
from idpbuilder.errors import UsageError

__all__ = [
    "ENV_PASSWORD",
    "ENV_TOKEN",
    "ENV_USERNAME",
    "AnonymousKeychain",
    "ChainKeychain",
    "Credential",
    "Keychain",
    "StaticKeychain",
    "default_keychain",
    "explicit_credential",
]

ENV_USERNAME = "IDPBUILDER_REGISTRY_USERNAME"
ENV_PASSWORD = "IDPBUILDER_REGISTRY_PASSWORD"
ENV_TOKEN = "IDPBUILDER_REGISTRY_TOKEN"


class Keychain(Protocol):
    """Something that may know credentials for a registry host (``host[:port]``)."""

    def resolve(self, registry: str) -> Credential | None:
        """Credentials for ``registry``, or None to let the next provider answer."""
        ...


@dataclass(frozen=True)
class StaticKeychain:
    """The same credential for every registry (flags/environment); ``None`` when it is anonymous."""

    credential: Credential

    def resolve(self, registry: str) -> Credential | None:
        """The credential, unless it holds no secret."""
        return None if self.credential.anonymous else self.credential


class AnonymousKeychain:
    """The last resort: no credentials."""

    def resolve(self, registry: str) -> Credential | None:
        """Always an anonymous credential."""
        return Credential()


@dataclass(frozen=True)
class ChainKeychain:
    """Ask each provider in turn; the first answer wins (anonymous when none answers)."""

    providers: tuple[Keychain, ...]

    def resolve(self, registry: str) -> Credential:
        """The first provider's credential for ``registry``."""
        for p in self.providers:
            cred = p.resolve(registry)
            if cred is not None:
                return cred
        return Credential()

    def with_provider(self, provider: Keychain, *, index: int | None = None) -> ChainKeychain:
        """A new chain with ``provider`` inserted at ``index`` (default: just before the last one)."""
        provs = list(self.providers)
        at = len(provs) - 1 if index is None else index
        provs.insert(max(at, 0), provider)
        return ChainKeychain(tuple(provs))


def explicit_credential(
    *,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Credential:
    """Merge flags over ``IDPBUILDER_REGISTRY_*`` field by field; UsageError on a username with no secret."""
    env = os.environ if environ is None else environ
    u_env, p_env, t_env = (
        env.get(ENV_USERNAME) or None,
        env.get(ENV_PASSWORD) or None,
        env.get(ENV_TOKEN) or None,
    )
    u = username or u_env
    p = password or p_env
    t = token or t_env
    if not (u or p or t):
        return Credential()
    if u and not (p or t):
        raise UsageError(
            f"a username ({u}) was given without a password or token",
            hint=f"add --password/--token, or set {ENV_PASSWORD} / {ENV_TOKEN}",
        )
    if p and not u:
        raise UsageError(
            "a password was given without a username",
            hint=f"add --username or set {ENV_USERNAME} (a token alone is sent as a Bearer token)",
        )
    from_flags = bool(username or password or token)
    from_env = bool((u_env and not username) or (p_env and not password) or (t_env and not token))
    source = "flags+environment" if from_flags and from_env else ("flags" if from_flags else "environment")
    return Credential(username=u, password=p, token=t, source=source)


def default_keychain(
    *,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
    environ: Mapping[str, str] | None = None,
    plugins: Sequence[Keychain] = (),
) -> ChainKeychain:
    """flags > env > docker config > ``plugins`` (e.g. the cluster secret) > anonymous."""
    env = os.environ if environ is None else environ
    explicit = explicit_credential(username=username, password=password, token=token, environ=env)
    return ChainKeychain(
        (StaticKeychain(explicit), DockerConfigKeychain.from_env(env), *plugins, AnonymousKeychain())
    )
