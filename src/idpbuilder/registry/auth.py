"""Challenge-driven registry auth: Basic, or Bearer tokens from the realm, cached per scope.

Once a registry's challenge is known, credentials go out pre-emptively (no blob body is sent twice).
Tokens are fetched with ``GET`` (Gitea answers ``POST`` with 404, go-gitea/gitea#29118), accept
``token`` or ``access_token``, and are cached per scope set; a 401 with a wider scope (pull → pull,push)
fetches a new token instead of reusing the old one (oras-project/oras-py#67).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections.abc import Iterable
from urllib.parse import urlencode, urlsplit

from idpbuilder._records import dataclass, field
from idpbuilder.credentials.keychain import Credential
from idpbuilder.errors import AuthError, RegistryError, TransientError
from idpbuilder.registry.retry import RETRYABLE_STATUS
from idpbuilder.registry.transport import Transport, redact_url

__all__ = ["Authenticator", "Challenge", "authorization", "parse_challenges", "scope_for"]

log = logging.getLogger("idpbuilder.registry")

# patterns stay strings: re compiles (and caches) them on first use, not at start-up
_TOKEN_RE = r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?'
_DEFAULT_TOKEN_TTL = 60.0


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: a lower-case scheme and its parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        """The token endpoint (Bearer) or realm name (Basic)."""
        return self.params.get("realm")


def parse_challenges(header: str | None) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value into challenges (``Bearer realm="…",service="…"``)."""
    out: list[Challenge] = []
    if not header:
        return out
    rest = header.strip()
    while rest:
        m = re.match(r"\s*([A-Za-z][A-Za-z0-9_-]*)(?:\s+|$)", rest)
        if not m:
            break
        scheme = m.group(1).lower()
        rest = rest[m.end() :]
        params: dict[str, str] = {}
        while rest:
            pm = re.match(_TOKEN_RE, rest)
            if not pm:
                break
            # a bare word followed by a space and no '=' starts the next challenge
            params[pm.group(1).lower()] = (
                re.sub(r"\\(.)", r"\1", pm.group(2)) if pm.group(2) is not None else pm.group(3)
            )
            rest = rest[pm.end() :]
        out.append(Challenge(scheme, params))
        rest = rest.lstrip(", ")
    return out


def authorization(value: str | None) -> dict[str, str]:
    """The ``Authorization`` header carrying ``value`` (from :class:`Authenticator`); none for None."""
    return {"Authorization": value} if value else {}


def scope_for(repository: str, *actions: str) -> str:
    """``repository:<name>:<actions>``."""
    return f"repository:{repository}:{','.join(actions)}"


def _merge_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    merged: dict[str, set[str]] = {}
    order: list[str] = []
    for s in scopes:
        parts = s.split(":")
        if len(parts) < 3:
            merged.setdefault(s, set())
            if s not in order:
                order.append(s)
            continue
        key = ":".join(parts[:-1])
        if key not in merged:
            order.append(key)
        merged.setdefault(key, set()).update(a for a in parts[-1].split(",") if a)
    return tuple(sorted(f"{k}:{','.join(sorted(merged[k]))}" if merged[k] else k for k in order))


@dataclass
class _Token:
    value: str
    expires: float


class Authenticator:
    """Per-registry auth state; thread-safe. ``header_for`` before a request, ``on_unauthorized`` after a 401."""

    def __init__(self, registry: str, credential: Credential, transport: Transport) -> None:
        self.registry = registry
        self.credential = credential
        self._transport = transport
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._lock = threading.Lock()
        self._failed: AuthError | None = None
        self.token_requests = 0

    @property
    def challenge(self) -> Challenge | None:
        """The registry's challenge once learned (None: unknown or no auth needed)."""
        return self._challenge

    def learn(self, www_authenticate: str | None) -> None:
        """Remember the registry's challenge (from a 401 on ``/v2/``); Bearer preferred over Basic."""
        chals = parse_challenges(www_authenticate)
        bearer = [c for c in chals if c.scheme == "bearer" and c.realm]
        basic = [c for c in chals if c.scheme == "basic"]
        # with a username+secret Basic works everywhere it is offered (Gitea, distribution htpasswd)
        if basic and (self.credential.basic or not bearer):
            self._challenge = basic[0]
        elif bearer:
            self._challenge = bearer[0]

    def _basic_header(self) -> str | None:
        b = self.credential.basic
        if b is None:
            return None
        return "Basic " + base64.b64encode(f"{b[0]}:{b[1]}".encode()).decode()

    def api_headers(self) -> dict[str, str]:
        """Authorization for a registry's own REST API (Gitea's ``/api/v1``): Basic, or a ``token`` header."""
        basic = self._basic_header()
        if basic is not None:
            return authorization(basic)
        if self.credential.bearer is not None:
            return authorization(f"token {self.credential.bearer}")  # a Gitea access token
        return {}

    def ping_headers(self) -> dict[str, str]:
        """Authorization for the first ``GET /v2/``: a bare token goes out at once, anything else waits
        for the registry's challenge."""
        return authorization(f"Bearer {self.credential.bearer}" if self.credential.bearer else None)

    def header_for(self, scopes: tuple[str, ...]) -> str | None:
        """The Authorization value to send pre-emptively for a request needing ``scopes``."""
        if self.credential.bearer:
            return f"Bearer {self.credential.bearer}"
        ch = self._challenge
        if ch is None:
            return None
        if ch.scheme == "basic":
            return self._basic_header()
        if ch.scheme == "bearer":
            return f"Bearer {self._token(scopes, refresh=False)}"
        return None

    def on_unauthorized(
        self, www_authenticate: str | None, scopes: tuple[str, ...], sent: str | None, *, what: str
    ) -> str:
        """After a 401: the Authorization value to retry with; AuthError when retrying cannot help."""
        chals = parse_challenges(www_authenticate)
        if chals:
            self.learn(www_authenticate)
        ch = self._challenge
        extra = [s for c in chals for s in (c.params.get("scope") or "").split(" ") if s and s != "*"]
        want = _merge_scopes([*scopes, *extra])
        new: str | None = None
        if self.credential.bearer:
            new = f"Bearer {self.credential.bearer}"
        elif ch is not None and ch.scheme == "basic":
            new = self._basic_header()
        elif ch is not None and ch.scheme == "bearer":
            new = f"Bearer {self._token(want, refresh=True)}"
        if new is None or new == sent:
            raise self._denied(what, chals)
        return new

    def _denied(self, what: str, chals: list[Challenge]) -> AuthError:
        err = next((c.params.get("error") for c in chals if c.params.get("error")), None)
        if self.credential.anonymous:
            return AuthError(
                f"{what}: {self.registry} requires authentication",
                hint="pass --username and --password (or --token), set IDPBUILDER_REGISTRY_USERNAME/"
                "PASSWORD/TOKEN, or log in with docker/podman",
                status=401,
            )
        if err == "insufficient_scope" or (self._challenge and self._challenge.scheme == "bearer"):
            return AuthError(
                f"{what}: access denied for {self.credential.username or 'the token'} (unauthorized)",
                hint="check that this user may push to the repository (for Gitea the owner must be the "
                "lower-cased user name or one of its organisations), and the credentials "
                f"(from {self.credential.source})",
                status=401,
            )
        return AuthError(
            f"{what}: {self.registry} rejected the credentials (unauthorized)",
            hint=f"check the username and password/token (they came from {self.credential.source})",
            status=401,
        )

    def _token(self, scopes: tuple[str, ...], *, refresh: bool) -> str:
        key = _merge_scopes(scopes)
        with self._lock:
            if self._failed is not None:
                raise self._failed
            tok = self._tokens.get(key)
            if tok is not None and not refresh and tok.expires > time.monotonic():
                return tok.value
            tok = self._fetch_token(key)
            self._tokens[key] = tok
            return tok.value

    def _fetch_token(self, scopes: tuple[str, ...]) -> _Token:
        ch = self._challenge
        assert ch is not None and ch.realm
        params: list[tuple[str, str]] = []
        if ch.params.get("service"):
            params.append(("service", ch.params["service"]))
        params.extend(("scope", s) for s in scopes)
        sep = "&" if urlsplit(ch.realm).query else "?"
        url = ch.realm + (sep + urlencode(params) if params else "")
        headers = {"Accept": "application/json", **authorization(self._basic_header())}
        self.token_requests += 1
        resp = self._transport.request("GET", url, headers=headers)
        realm_host = urlsplit(ch.realm).netloc
        if resp.status in (401, 403):
            who = self.credential.username
            if who:
                gitea = (
                    "; the idpbuilder Gitea's admin password is shown by the idpbuilder Go CLI "
                    "(`idpbuilder get secrets -p gitea`, not a command of this tool), or leave the credentials "
                    "out and they are read from the cluster"
                    if "gitea" in self.registry.lower()
                    else ""
                )
                self._failed = AuthError(
                    f"logging in to {self.registry} as {who}: invalid username or password/token",
                    hint=f"check the credentials (they came from {self.credential.source}){gitea}",
                    status=resp.status,
                )
            else:
                self._failed = AuthError(
                    f"logging in to {self.registry}: the token service refused anonymous access",
                    hint="pass --username and --password (or --token)",
                    status=resp.status,
                )
            raise self._failed
        if resp.status in RETRYABLE_STATUS:
            raise TransientError(
                f"token service {realm_host}: {resp.status} {resp.reason or ''}".rstrip(), status=resp.status
            )
        if resp.status != 200:
            raise RegistryError(
                f"token service {redact_url(ch.realm)} answered {resp.status} {resp.reason or ''}".rstrip(),
                hint="check the registry URL; the token endpoint must accept GET",
                status=resp.status,
            )
        try:
            data = json.loads(resp.data)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RegistryError(f"token service {realm_host} returned invalid JSON") from None
        value = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(value, str) or not value:
            raise RegistryError(f"token service {realm_host} returned no token")
        ttl = data.get("expires_in")
        ttl_s = float(ttl) if isinstance(ttl, int | float) and ttl > 0 else _DEFAULT_TOKEN_TTL
        log.debug("got a token for %s scope=%s (expires in %.0fs)", self.registry, " ".join(scopes), ttl_s)
        return _Token(value, time.monotonic() + max(ttl_s - 5.0, 1.0))
