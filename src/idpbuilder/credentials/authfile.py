"""Writing credentials the way ``docker login`` / ``docker logout`` do.

The file is ``$REGISTRY_AUTH_FILE`` when set (podman's auth.json), else ``$DOCKER_CONFIG/config.json``, else
``~/.docker/config.json`` — the first file the reading side (:mod:`.dockerconfig`) consults. When the file
names a credential helper for the registry (``credHelpers``) or for every registry (``credsStore``), the
secret goes to ``docker-credential-<name> store`` (on stdin, never on the command line) and the file gets only
an empty ``auths`` entry, as docker writes it; a configured helper that is missing or fails is an error,
never a reason to fall back to plaintext. Without a helper the entry is ``{"auth": base64(user:secret)}``.
Every other key of the file is kept; the file is replaced atomically and stays private (0600).
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from idpbuilder._records import dataclass
from idpbuilder.credentials.dockerconfig import normalize_registry_key
from idpbuilder.errors import ConfigError

__all__ = ["AuthFile", "SavedLogin", "auth_file_path", "server_key"]

_HUB_KEY = "https://index.docker.io/v1/"


def auth_file_path(environ: Mapping[str, str]) -> Path:
    """The file ``login`` writes: ``$REGISTRY_AUTH_FILE``, ``$DOCKER_CONFIG/config.json``, ``~/.docker/config.json``."""
    if environ.get("REGISTRY_AUTH_FILE"):
        return Path(environ["REGISTRY_AUTH_FILE"])
    if environ.get("DOCKER_CONFIG"):
        return Path(environ["DOCKER_CONFIG"]) / "config.json"
    return Path(environ.get("HOME") or Path.home()) / ".docker" / "config.json"


def server_key(registry: str, *, podman: bool = False) -> str:
    """The key docker uses for ``registry`` (``https://index.docker.io/v1/`` for Docker Hub; podman: ``docker.io``)."""
    host = normalize_registry_key(registry)
    if host == "docker.io" and not podman:
        return _HUB_KEY
    return host


@dataclass(frozen=True)
class SavedLogin:
    """Where a login was stored: the file, and the helper holding the secret (None: the file itself)."""

    path: Path
    helper: str | None


@dataclass(frozen=True)
class AuthFile:
    """One docker/podman credentials file, edited in place (other keys kept)."""

    path: Path
    podman: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AuthFile:
        """The file named by the environment (podman's layout when ``REGISTRY_AUTH_FILE`` is set)."""
        return cls(auth_file_path(environ), podman=bool(environ.get("REGISTRY_AUTH_FILE")))

    def helper_for(self, registry: str) -> str | None:
        """The credential helper configured for ``registry`` (``credHelpers``, else ``credsStore``)."""
        return _helper(self._load(), normalize_registry_key(registry))

    def store(self, registry: str, username: str, secret: str) -> SavedLogin:
        """Save ``username``/``secret`` for ``registry`` (through the helper when one is configured)."""
        cfg = self._load()
        host = normalize_registry_key(registry)
        key = server_key(registry, podman=self.podman)
        helper = _helper(cfg, host)
        auths = _auths(cfg)
        for k in [k for k in auths if normalize_registry_key(k) == host]:
            del auths[k]  # aliases (https://host/v2/, index.docker.io) would shadow the new entry
        if helper is not None:
            payload = {"ServerURL": key, "Username": username, "Secret": secret}
            _run_helper(helper, "store", json.dumps(payload).encode(), self.path)
            auths[key] = {}
        else:
            auths[key] = {"auth": base64.b64encode(f"{username}:{secret}".encode()).decode()}
        self._save(cfg)
        return SavedLogin(self.path, helper)

    def erase(self, registry: str) -> bool:
        """Remove ``registry``'s credentials (file entry and helper); False when there were none."""
        cfg = self._load()
        host = normalize_registry_key(registry)
        key = server_key(registry, podman=self.podman)
        auths = _auths(cfg)
        keys = [k for k in auths if normalize_registry_key(k) == host]
        helper = _helper(cfg, host)
        removed = False
        if helper is not None:
            removed = _run_helper(helper, "erase", key.encode(), self.path, missing_ok=True)
        for k in keys:
            entry = auths.pop(k)
            removed = removed or bool(entry)
        if keys:
            self._save(cfg)
        return removed or bool(keys)

    # ------------------------------------------------------------------ file
    def _load(self) -> dict[str, Any]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as e:
            raise ConfigError(
                f"{self.path} is not valid JSON (line {e.lineno})",
                hint="fix the file, or move it away and log in again",
            ) from None
        if not isinstance(data, dict):
            raise ConfigError(f"{self.path} is not a JSON object", hint="fix the file, or move it away")
        return data

    def _save(self, cfg: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                os.fchmod(f.fileno(), 0o600)
                json.dump(cfg, f, indent="\t")
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _auths(cfg: dict[str, Any]) -> dict[str, Any]:
    auths = cfg.get("auths")
    if not isinstance(auths, dict):
        auths = {}
        cfg["auths"] = auths
    return auths


def _helper(cfg: dict[str, Any], host: str) -> str | None:
    helpers = cfg.get("credHelpers")
    if isinstance(helpers, dict):
        for k, name in helpers.items():
            if normalize_registry_key(k) == host and isinstance(name, str) and name:
                return name
    store = cfg.get("credsStore")
    return store if isinstance(store, str) and store else None


def _run_helper(helper: str, action: str, data: bytes, path: Path, *, missing_ok: bool = False) -> bool:
    """``docker-credential-<helper> <action>`` with ``data`` on stdin; True on success.

    ``missing_ok``: a "not found" answer (erase of nothing) is False, not an error. The helper's output is
    never shown: it may hold secrets.
    """
    import shutil
    import subprocess

    exe = shutil.which(f"docker-credential-{helper}")
    if exe is None:
        raise ConfigError(
            f"credential helper docker-credential-{helper} (configured in {path}) is not on PATH",
            hint=f"install docker-credential-{helper}, or remove credsStore/credHelpers from {path}",
        )
    try:
        proc = subprocess.run([exe, action], input=data, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConfigError(
            f"credential helper docker-credential-{helper} {action} failed: {type(e).__name__}",
            hint=f"check docker-credential-{helper}, or remove credsStore/credHelpers from {path}",
        ) from None
    if proc.returncode == 0:
        return True
    text = (proc.stdout + proc.stderr).decode(errors="replace").lower()
    if missing_ok and ("not found" in text or "no credentials" in text):
        return False
    raise ConfigError(
        f"credential helper docker-credential-{helper} {action} failed (exit {proc.returncode})",
        hint=f"check docker-credential-{helper}, or remove credsStore/credHelpers from {path}",
    )
