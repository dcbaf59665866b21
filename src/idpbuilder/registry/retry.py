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

Stalls: the transport gives up on a peer that sends (or takes) no byte for ``timeout`` seconds (``--timeout``,
``IDPBUILDER_TIMEOUT``, default 30 s, as docker and skopeo do; a slow transfer that keeps moving never times
out) and raises ``StallError``. Each stall is reported as a warning when it is detected, and a streak of
stalls ends the operation once it would last longer than ``STALL_BUDGET_FACTOR`` × ``timeout`` (105 s by
default): a registry that accepts connections and never answers fails the command in under two minutes, with a
hint about the network rather than about ``--retries``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from idpbuilder._records import dataclass, field
from idpbuilder.errors import IdpError, Interrupted, TransientError, UsageError

__all__ = [
    "ENV_BASE_DELAY",
    "FIRST_CONTACT_ATTEMPTS",
    "FIRST_CONTACT_DELAY",
    "RetriesExhausted",
    "ENV_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "RetryPolicy",
    "StallError",
    "ThrottledError",
    "UnreachableError",
    "is_retryable",
    "unreachable_hint",
]

T = TypeVar("T")
log = logging.getLogger("idpbuilder.registry")

ENV_BASE_DELAY = "IDPBUILDER_RETRY_BASE_DELAY"
ENV_TIMEOUT = "IDPBUILDER_TIMEOUT"
DEFAULT_TIMEOUT = 30.0  # seconds without a byte moving either way (docker/skopeo use 30 s)
STALL_BUDGET_FACTOR = 3.5  # a streak of stalls may last this many timeouts (3 attempts at the defaults)
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


class StallError(TransientError):
    """The peer sent (or accepted) no byte for ``timeout`` seconds: the connection is alive but stuck."""

    def __init__(self, host: str, timeout: float) -> None:
        super().__init__(f"no data from {host} for {timeout:g} s", hint=stall_hint(host, timeout))
        self.host = host
        self.timeout = timeout


def stall_hint(host: str, timeout: float) -> str:
    """The hint for a registry that accepted the connection but stopped answering."""
    return (
        f"{host} accepted the connection but stopped sending data: check the network, a proxy or firewall "
        f"between here and the registry, and that the registry is healthy (--timeout, now {timeout:g} s, "
        "sets how long to wait for a byte)"
    )


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
    timeout: float = DEFAULT_TIMEOUT  # seconds without a byte before a request counts as stalled
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)
    cancel: threading.Event | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_options(
        cls,
        *,
        retries: int | None = None,
        timeout: float | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> RetryPolicy:
        """``--retries`` (total attempts, default 10), ``--timeout`` / ``IDPBUILDER_TIMEOUT`` (seconds without
        a byte, default 30) and ``IDPBUILDER_RETRY_BASE_DELAY`` (seconds)."""
        env = os.environ if environ is None else environ
        if timeout is None and env.get(ENV_TIMEOUT):
            try:
                timeout = float(env[ENV_TIMEOUT])
            except ValueError:
                raise UsageError(
                    f"{ENV_TIMEOUT} must be a number of seconds", hint=f"e.g. {ENV_TIMEOUT}=30"
                ) from None
        if timeout is None:
            timeout = DEFAULT_TIMEOUT
        if not timeout > 0 or timeout != timeout or timeout == float("inf"):
            raise UsageError("--timeout must be a positive number of seconds", hint="e.g. --timeout 30")
        base = 1.0
        if env.get(ENV_BASE_DELAY):
            try:
                base = float(env[ENV_BASE_DELAY])
            except ValueError:
                raise UsageError(f"{ENV_BASE_DELAY} must be a number of seconds") from None
        attempts = 10 if retries is None else retries
        if attempts < 1:
            raise UsageError("--retries must be at least 1")
        return cls(attempts=attempts, base_delay=max(base, 0.0), timeout=timeout)

    @property
    def stall_budget(self) -> float:
        """How long a streak of stalls may last before the operation gives up (seconds)."""
        return STALL_BUDGET_FACTOR * self.timeout

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        d = min(self.base_delay * float(2 ** (attempt - 1)), self.cap)
        if retry_after is not None:
            d = max(d, min(retry_after, self.cap))
        return d

    def run(self, fn: Callable[[], T], *, what: str, on_retry: Callable[[], None] | None = None) -> T:
        """Call ``fn`` until it succeeds, retrying transient failures; ``what`` names the operation in messages."""
        attempt = 1
        stalled_since: float | None = None  # when the data stopped, for a streak of stalls
        while True:
            try:
                return fn()
            except IdpError as e:
                if not is_retryable(e):
                    raise
                if self.cancel is not None and self.cancel.is_set():
                    # cancelled (Ctrl-C, a sibling transfer failed): its connections were closed under it
                    raise Interrupted("interrupted") from e
                if isinstance(e, StallError):
                    now = time.monotonic()
                    if stalled_since is None:
                        stalled_since = now - e.timeout
                    over_budget = now - stalled_since + self.delay(attempt) + e.timeout > self.stall_budget
                    if over_budget and attempt < self.attempts:
                        raise RetriesExhausted(
                            f"{what}: {e.message} (gave up after {attempt} "
                            f"attempt{'s' if attempt > 1 else ''}, {now - stalled_since:.0f} s without data)",
                            hint=e.hint,
                        ) from e
                else:
                    stalled_since = None
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
                elif isinstance(e, StallError):
                    log.warning("%s, retrying (%s, attempt %d/%d)", e.message, what, attempt, self.attempts)
                    wait = self.delay(attempt)
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
