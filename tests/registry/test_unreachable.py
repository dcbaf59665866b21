"""A registry that is not there fails fast (two quick attempts, a hint); one that answered once keeps the
full retry budget (10 attempts, exponential backoff) when it later refuses connections."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from regkit import make_image, unique

from fixtures.cli import CliRunner
from fixtures.proc import free_port
from fixtures.registry import RegistryInfo
from idpbuilder.digest import sha256_bytes
from idpbuilder.errors import TransientError
from idpbuilder.registry.client import RegistryClient
from idpbuilder.registry.retry import RetriesExhausted, RetryPolicy, UnreachableError, is_retryable
from idpbuilder.registry.settings import RegistrySettings

SRC = "example.com/src/unreachable:v1"


def _assert_fast_failure(code: int, out: str, err: str, seconds: float, host: str) -> None:
    assert code == 1, err
    assert out == ""
    assert seconds < 5, f"took {seconds:.1f} s"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines[-2] == f"Error: cannot connect to {host}: connection refused", err
    assert lines[-1] == (
        f"Hint: is the registry running at {host}? check the host and port, or --registry"
    ), err
    assert "attempt" not in err and "Traceback" not in err and "WARN" not in err


@pytest.mark.parametrize("command", ["push", "pull", "images"])
def test_closed_port_fails_fast_with_hint(command: str, cli: CliRunner, idp_home: Path) -> None:
    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    if command == "push":
        make_image(idp_home, SRC, [1000])
        args = ["push", SRC, f"{host}/team/app:v1"]
    elif command == "pull":
        args = ["pull", f"{host}/team/app:v1"]
    else:
        args = ["images", "--remote", "--registry", f"http://{host}"]
    t0 = time.monotonic()
    code, out, err = cli(*args)  # default retry settings: 10 attempts, 1 s base delay
    _assert_fast_failure(code, out, err, time.monotonic() - t0, host)


def test_unresolvable_host_fails_fast(cli: CliRunner) -> None:
    t0 = time.monotonic()
    code, out, err = cli("pull", "no-such-registry.invalid:5000/team/app:v1")
    assert code == 1 and out == ""
    assert time.monotonic() - t0 < 5
    assert "Error: cannot resolve registry host no-such-registry.invalid:5000" in err
    assert "Hint: is the registry running at no-such-registry.invalid:5000? check the host and port" in err
    assert "Traceback" not in err


def test_refused_after_first_contact_keeps_the_full_retry_budget(
    registry_factory: Callable[[str], RegistryInfo],
) -> None:
    info = registry_factory("plain")
    policy = RetryPolicy(attempts=4, base_delay=0.01)
    client = RegistryClient(info.host, RegistrySettings(retry=policy))
    try:
        client.ping()
        assert client.transport.reached(info.url)
        info.stop()  # the registry goes away in the middle of the "transfer"
        digest = sha256_bytes(b"gone")
        with pytest.raises(RetriesExhausted) as exc:
            client.blob_exists(f"{unique('gone')}/app", digest)
        assert "connection refused (gave up after 4 attempts)" in exc.value.message
        assert isinstance(exc.value.__cause__, UnreachableError)
        assert exc.value.__cause__.first_contact is False
    finally:
        client.close()


def test_first_contact_rule_in_the_retry_loop() -> None:
    slept: list[float] = []
    policy = RetryPolicy(attempts=10, base_delay=1.0, sleep=slept.append)
    calls = {"n": 0}

    def refused(first: bool) -> Callable[[], None]:
        def fn() -> None:
            calls["n"] += 1
            raise UnreachableError(
                "cannot connect to h:1: connection refused", host="h:1", first_contact=first
            )

        return fn

    with pytest.raises(RetriesExhausted, match=r"^cannot connect to h:1: connection refused$") as exc:
        policy.run(refused(True), what="connecting to h:1")
    assert calls["n"] == 2 and slept == [0.2]
    assert exc.value.hint == "is the registry running at h:1? check the host and port, or --registry"

    calls["n"], slept[:] = 0, []
    with pytest.raises(RetriesExhausted, match=r"gave up after 10 attempts"):
        policy.run(refused(False), what="pushing blob")
    assert calls["n"] == 10 and slept[:3] == [1.0, 2.0, 4.0]

    # --retries 1 stays 1
    calls["n"] = 0
    with pytest.raises(RetriesExhausted):
        RetryPolicy(attempts=1, sleep=slept.append).run(refused(True), what="x")
    assert calls["n"] == 1


def test_an_exhausted_inner_loop_is_not_retried_by_an_outer_one() -> None:
    inner_policy = RetryPolicy(attempts=3, base_delay=0.0, sleep=lambda s: None)
    outer_calls = {"n": 0}
    inner_calls = {"n": 0}

    def inner() -> None:
        inner_calls["n"] += 1
        raise TransientError("503 Service Unavailable", status=503)

    def outer() -> None:
        outer_calls["n"] += 1
        inner_policy.run(inner, what="connecting to h")

    with pytest.raises(RetriesExhausted, match=r"connecting to h: 503 Service Unavailable \(gave up after 3"):
        RetryPolicy(attempts=5, base_delay=0.0, sleep=lambda s: None).run(outer, what="pulling manifest")
    assert (outer_calls["n"], inner_calls["n"]) == (1, 3)
    assert not is_retryable(RetriesExhausted("x")) and isinstance(RetriesExhausted("x"), TransientError)
