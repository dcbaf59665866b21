"""One registry's credentials, as a value that never shows its secrets."""

from __future__ import annotations

from idpbuilder._records import dataclass

__all__ = ["Credential"]


@dataclass(frozen=True)
class Credential:
    """Credentials for one registry; ``repr`` never shows a secret.

    username + password (or token) authenticate as Basic (also at a token realm); a token with no
    username is sent as a Bearer token; nothing set means anonymous.
    """

    username: str | None = None
    password: str | None = None
    token: str | None = None
    source: str = "anonymous"

    @property
    def anonymous(self) -> bool:
        """True when no secret is held."""
        return not (self.password or self.token)

    @property
    def basic(self) -> tuple[str, str] | None:
        """``(username, secret)`` for Basic auth, the password winning over the token."""
        secret = self.password or self.token
        if self.username and secret:
            return self.username, secret
        return None

    @property
    def bearer(self) -> str | None:
        """A token to send as ``Bearer`` directly (a token with no username)."""
        if self.token and not self.username:
            return self.token
        return None

    def secrets(self) -> list[str]:
        """The secret strings this credential holds (for redaction)."""
        return [s for s in (self.password, self.token) if s]

    def __repr__(self) -> str:
        kinds = [k for k, v in (("password", self.password), ("token", self.token)) if v]
        return f"Credential(username={self.username!r}, secrets={kinds}, source={self.source!r})"

    __str__ = __repr__
