"""Credentials from docker / podman config files: ``auths``, ``credHelpers`` and ``credsStore``.

Files, first found wins: ``$REGISTRY_AUTH_FILE`` (podman's auth.json), ``$DOCKER_CONFIG/config.json``,
else ``~/.docker/config.json``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from idpbuilder._records import dataclass
from idpbuilder.credentials.credential import Credential
from idpbuilder.errors import ConfigError

__all__ = ["DockerConfigKeychain", "config_paths", "normalize_registry_key"]

log = logging.getLogger(__name__)

_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")
_HUB_HOSTS = {"docker.io", "index.docker.io", "registry-1.docker.io"}
_AUTH_HINT = "log in again with `docker login` / `podman login`, or fix the entry (base64 of user:password)"
# what docker-credential-* helpers print for an ordinary miss (docker/docker-credential-helpers)
_HELPER_MISS = ("credentials not found", "no credentials", "not found in")


def normalize_registry_key(key: str) -> str:
    """``https://host:port/v2/`` → ``host:port``; Docker Hub aliases → ``docker.io``."""
    k = key.strip()
    if "://" in k:
        k = k.split("://", 1)[1]
    k = k.split("/", 1)[0].lower()
    return "docker.io" if k in _HUB_HOSTS else k


def config_paths(environ: Mapping[str, str], home: Path | None = None) -> list[Path]:
    """Candidate config files in the order they are consulted."""
    paths: list[Path] = []
    if environ.get("REGISTRY_AUTH_FILE"):
        paths.append(Path(environ["REGISTRY_AUTH_FILE"]))
    if environ.get("DOCKER_CONFIG"):
        paths.append(Path(environ["DOCKER_CONFIG"]) / "config.json")
    else:
        base = home if home is not None else Path(environ.get("HOME") or Path.home())
        paths.append(base / ".docker" / "config.json")
    return paths


@dataclass(frozen=True)
class DockerConfigKeychain:
    """Looks a registry up in docker config files, running ``docker-credential-<helper>`` when configured."""

    paths: tuple[Path, ...]

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> DockerConfigKeychain:
        """The keychain for the files named by the environment."""
        return cls(tuple(config_paths(environ)))

    def resolve(self, registry: str) -> Credential | None:
        """Credentials for ``registry`` from the first config file that knows it."""
        host = normalize_registry_key(registry)
        for path in self.paths:
            cfg = _load(path)
            if cfg is None:
                continue
            cred = _lookup(cfg, host, path)
            if cred is not None:
                return cred
        return None


def _load(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as e:
        log.warning("cannot read %s: %s", path, e.strerror)
        return None
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON (line {e.lineno})", hint="fix or remove the file") from None
    return data if isinstance(data, dict) else None


def _lookup(cfg: dict[str, Any], host: str, path: Path) -> Credential | None:
    helpers = cfg.get("credHelpers") or {}
    if isinstance(helpers, dict):
        for key, helper in helpers.items():
            if normalize_registry_key(key) == host and isinstance(helper, str):
                return _run_helper(helper, host)
    auths = cfg.get("auths") or {}
    if isinstance(auths, dict):
        for key, entry in auths.items():
            if normalize_registry_key(key) == host and isinstance(entry, dict):
                cred = _from_auth_entry(entry, f"{path}")
                if cred is not None:
                    return cred
    store = cfg.get("credsStore")
    if isinstance(store, str) and store:
        return _run_helper(store, host)
    return None


def _from_auth_entry(entry: dict[str, Any], source: str) -> Credential | None:
    username = entry.get("username") or None
    password = entry.get("password") or None
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=False).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise ConfigError(
                f"{source}: an 'auth' entry is not base64 of user:password", hint=_AUTH_HINT
            ) from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise ConfigError(f"{source}: an 'auth' entry is not base64 of user:password", hint=_AUTH_HINT)
    if entry.get("registrytoken"):
        return Credential(token=str(entry["registrytoken"]), source=source)
    if username and password:
        return Credential(username=str(username), password=str(password), source=source)
    return None


def _run_helper(helper: str, host: str) -> Credential | None:
    import shutil
    import subprocess

    exe = shutil.which(f"docker-credential-{helper}")
    if exe is None:
        log.warning("credential helper docker-credential-%s not found on PATH; ignoring it", helper)
        return None
    server = _HUB_KEYS[0] if host == "docker.io" else host
    try:
        proc = subprocess.run(
            [exe, "get"], input=server.encode(), capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning("credential helper docker-credential-%s failed: %s", helper, type(e).__name__)
        return None
    if proc.returncode != 0:
        # "credentials not found in native keychain" is the normal miss; anything else is a broken helper,
        # worth a warning (its output is not shown: it may hold secrets)
        text = (proc.stdout + proc.stderr).decode(errors="replace").lower()
        if any(m in text for m in _HELPER_MISS):
            log.debug("docker-credential-%s get %s: no credentials", helper, server)
        else:
            log.warning(
                "credential helper docker-credential-%s failed for %s (exit %d); continuing without it",
                helper,
                server,
                proc.returncode,
            )
        return None
    try:
        data = json.loads(proc.stdout)
    except (json.JSONDecodeError, UnicodeDecodeError):
        log.warning("credential helper docker-credential-%s returned invalid JSON", helper)
        return None
    if not isinstance(data, dict):
        log.warning("credential helper docker-credential-%s returned invalid JSON", helper)
        return None
    user, secret = data.get("Username") or None, data.get("Secret") or None
    if not secret:
        return None
    source = f"docker-credential-{helper}"
    if user == "<token>":
        # an identity token: sent as a bearer token
        return Credential(token=str(secret), source=source)
    if not user:
        return Credential(token=str(secret), source=source)
    return Credential(username=str(user), password=str(secret), source=source)
