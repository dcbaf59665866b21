"""The one retry loop and the one predicate deciding what is worth retrying.

Transient = ``TransientError``: connection errors, timeouts, 408, 429, 5xx and the registry codes
``UNAVAILABLE`` / ``TOOMANYREQUESTS`` (the transport and client raise it for exactly those). 401/403
(``AuthError``) and everything else fail at once.

Two refinements keep a wrong host or port from waiting out the whole backoff:

* ``UnreachableError`` (connection refused, name resolution failure) on ``first_contact`` — no request to
  that host has succeeded yet — is tried at most ``FIRST_CONTACT_ATTEMPTS`` times with a short delay and
  ends with "is the registry running at HOST?". Once the host has answered, the same failure during a
  transfer is an ordinary transient error with the full budget (up to 10 attempts, backoff 1s, 2s, 4s …
  capped at 30s).
* ``RetriesExhausted`` (a loop that gave up) is not retryable, so loops nested through ``ping`` never
  multiply their attempts.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from idpbuilder.errors import IdpError, Interrupted, TransientError, UsageError

__all__ = [
    "ENV_BASE_DELAY",
    "FIRST_CONTACT_ATTEMPTS",
    "FIRST_CONTACT_DELAY",
    "RetriesExhausted",
    "RetryPolicy",
    "ThrottledError",
    "UnreachableError",
    "is_retryable",
    "unreachable_hint",
]

T = TypeVar("T")
log = logging.getLogger("idpbuilder.registry")

ENV_BASE_DELAY = "IDPBUILDER_RETRY_BASE_DELAY"
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
RETRYABLE_CODES = frozenset({"UNAVAILABLE", "TOOMANYREQUESTS"})
FIRST_CONTACT_ATTEMPTS = 2
FIRST_CONTACT_DELAY = 0.2  # seconds: a refused port is not going to open in a second


class ThrottledError(TransientError):
    """A transient registry answer that may say how long to wait (``Retry-After``)."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, hint=hint, status=status, code=code)
        self.retry_after = retry_after


class UnreachableError(TransientError):
    """Connection refused or the host name did not resolve; ``first_contact`` when the host never answered."""

    def __init__(self, message: str, *, host: str, first_contact: bool, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.host = host
        self.first_contact = first_contact


class RetriesExhausted(TransientError):
    """A retry loop gave up; never retried again by an enclosing loop."""


def unreachable_hint(host: str) -> str:
    """The hint for a registry host that cannot be reached at all."""
    hint = f"is the registry running at {host}? check the host and port, or --registry"
    if ".localtest.me" in host:
        hint += " (*.localtest.me must resolve to 127.0.0.1)"
    return hint


def is_retryable(exc: BaseException) -> bool:
    """The single retry predicate."""
    return isinstance(exc, TransientError) and not isinstance(exc, RetriesExhausted)


@dataclass(frozen=True)
class RetryPolicy:
    """Up to ``attempts`` tries with backoff ``base``, 2·base, 4·base … capped at ``cap`` seconds."""

    attempts: int = 10
    base_delay: float = 1.0
    cap: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)
    cancel: threading.Event | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_options(
        cls, *, retries: int | None = None, environ: Mapping[str, str] | None = None
    ) -> RetryPolicy:
        """``--retries`` (total attempts, default 10) and ``IDPBUILDER_RETRY_BASE_DELAY`` (seconds)."""
        env = os.environ if environ is None else environ
        base = 1.0
        if env.get(ENV_BASE_DELAY):
            try:
                base = float(env[ENV_BASE_DELAY])
            except ValueError:
                raise UsageError(f"{ENV_BASE_DELAY} must be a number of seconds") from None
        attempts = 10 if retries is None else retries
        if attempts < 1:
            raise UsageError("--retries must be at least 1")
        return cls(attempts=attempts, base_delay=max(base, 0.0))

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        d = min(self.base_delay * float(2 ** (attempt - 1)), self.cap)
        if retry_after is not None:
            d = max(d, min(retry_after, self.cap))
        return d

    def run(self, fn: Callable[[], T], *, what: str, on_retry: Callable[[], None] | None = None) -> T:
        """Call ``fn`` until it succeeds, retrying transient failures; ``what`` names the operation in messages."""
        attempt = 1
        while True:
            try:
                return fn()
            except IdpError as e:
                if not is_retryable(e):
                    raise
                if self.cancel is not None and self.cancel.is_set():
                    # cancelled (Ctrl-C, a sibling transfer failed): its connections were closed under it
                    raise Interrupted("interrupted") from e
                first_contact = isinstance(e, UnreachableError) and e.first_contact
                limit = min(self.attempts, FIRST_CONTACT_ATTEMPTS) if first_contact else self.attempts
                if attempt >= limit:
                    if first_contact:
                        assert isinstance(e, UnreachableError)
                        raise RetriesExhausted(e.message, hint=unreachable_hint(e.host)) from e
                    suffix = f" (gave up after {attempt} attempt{'s' if attempt > 1 else ''})"
                    raise RetriesExhausted(
                        f"{what}: {e.message}{suffix}",
                        hint=e.hint
                        or "the registry or the network keeps failing; try again later or raise --retries",
                        status=getattr(e, "status", None),
                        code=getattr(e, "code", None),
                    ) from e
                if first_contact:
                    # the host never answered: one quick second try, without alarming warnings
                    log.debug("%s: %s (attempt %d/%d)", what, e.message, attempt, limit)
                    wait = min(self.delay(attempt), FIRST_CONTACT_DELAY)
                else:
                    log.warning("%s: %s (attempt %d/%d)", what, e.message, attempt, self.attempts)
                    wait = self.delay(attempt, getattr(e, "retry_after", None))
                if self.cancel is not None:
                    if self.cancel.wait(wait):
                        raise Interrupted("interrupted") from e
                else:
                    self.sleep(wait)
                if on_retry is not None:
                    on_retry()
                attempt += 1
