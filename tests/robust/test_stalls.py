"""Issue #11 items 1 and 7: stalled registries (bounded, reported, a network hint) and the plain-HTTP probe."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from regkit import make_image, unique

from fixtures.cli import CliRunner
from fixtures.fault_proxy import FaultProxy
from idpbuilder.errors import TransientError
from idpbuilder.registry import retry as retry_mod
from idpbuilder.registry.retry import RetriesExhausted, RetryPolicy, StallError

SRC = "example.com/src/stall:v1"
FAST = {"IDPBUILDER_RETRY_BASE_DELAY": "0.01"}


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err and "internal error" not in err, err


def test_silent_registry_fails_fast_with_a_network_hint(
    fault_proxy: FaultProxy, cli: CliRunner, idp_home: Path
) -> None:
    make_image(idp_home, SRC, [20_000])
    dest = fault_proxy.registry.ref(f"{unique('silent')}/app:v1")
    fault_proxy.stall(0, connections=1000)  # accepts every connection, never answers
    t0 = time.monotonic()
    code, out, err = cli("push", "--timeout", "2", SRC, dest, env=FAST)
    took = time.monotonic() - t0
    assert code == 1 and out == "", err
    assert took < 15, took
    host = fault_proxy.host
    # reported as the stall is detected, then given up within the stall budget (3.5 timeouts)
    assert re.search(rf"WARN no data from {re.escape(host)} for 2 s, retrying \(connecting to ", err), err
    lines = [ln for ln in err.splitlines() if not ln.startswith(("WARN", "20", "Dec"))]
    error = next(ln for ln in err.splitlines() if ln.startswith("Error:"))
    hint = next(ln for ln in err.splitlines() if ln.startswith("Hint:"))
    assert f"no data from {host} for 2 s" in error, lines
    assert "network" in hint and "--retries" not in hint and "--timeout" in hint, hint
    _no_traceback(err)


def test_retries_1_against_a_silent_peer_is_one_timeout(
    fault_proxy: FaultProxy, cli: CliRunner, idp_home: Path
) -> None:
    make_image(idp_home, SRC, [1000])
    dest = fault_proxy.registry.ref(f"{unique('silent1')}/app:v1")
    fault_proxy.stall(0, connections=1000)
    t0 = time.monotonic()
    code, _, err = cli("push", "--retries", "1", SRC, dest, env={**FAST, "IDPBUILDER_TIMEOUT": "1.5"})
    assert code == 1 and time.monotonic() - t0 < 8, err
    assert "no data from" in err and "raise --retries" not in err, err
    _no_traceback(err)


def test_truncated_answer_then_stall_is_retried_over_http(
    fault_proxy: FaultProxy, cli: CliRunner, idp_home: Path
) -> None:
    """Item 7: a loopback registry that answered the plain-HTTP probe (a few bytes, then nothing) is not
    retried over HTTPS on its plain port; after the stall it answers and the push goes through."""
    digest = str(make_image(idp_home, SRC, [30_000]).digest)
    dest = fault_proxy.registry.ref(f"{unique('trunc')}/app:v1")
    fault_proxy.stall(12, connections=1)  # "HTTP/1.1 200" … then silence
    t0 = time.monotonic()
    code, out, err = cli("push", "--timeout", "2", SRC, dest, env=FAST)
    assert code == 0, err
    assert out.strip() == f"{dest}@{digest}"
    assert time.monotonic() - t0 < 10
    assert fault_proxy.stats.stalls == 1
    assert "no data from" in err and "https" not in err.lower(), err
    # no TLS ClientHello ever reached the plain port: every request the proxy saw was HTTP
    assert all(r.method.isalpha() for r in fault_proxy.stats.request_log)


def test_a_stall_mid_download_is_retried(
    fault_proxy: FaultProxy, cli: CliRunner, idp_home: Path, tmp_path: Path
) -> None:
    digest = str(make_image(idp_home, SRC, [600_000]).digest)
    dest = fault_proxy.registry.ref(f"{unique('midstall')}/app:v1")
    cli("push", SRC, dest, env=FAST).check()
    home2 = tmp_path / "other"
    home2.mkdir()
    fault_proxy.reset_stats()
    fault_proxy.stall(200_000, connections=1)  # the first connection to pass 200 kB hangs
    code, out, err = CliRunner(home2)("pull", "--timeout", "2", dest, env=FAST)
    assert code == 0, err
    assert out.strip().endswith(digest)
    assert "no data from" in err and fault_proxy.stats.stalls == 1, err


def test_a_slow_but_moving_upload_never_times_out(
    fault_proxy: FaultProxy, cli: CliRunner, idp_home: Path
) -> None:
    make_image(idp_home, SRC, [400_000])
    dest = fault_proxy.registry.ref(f"{unique('slow')}/app:v1")
    fault_proxy.throttle(100_000, direction="upload")  # ~4 s for the layer, twice the timeout
    t0 = time.monotonic()
    code, _, err = cli("push", "--timeout", "2", SRC, dest, env=FAST)
    assert code == 0, err
    assert time.monotonic() - t0 > 3  # it really was slower than the timeout
    assert "no data" not in err and "attempt" not in err, err


def test_an_upload_the_peer_stops_taking_stalls(
    fault_proxy: FaultProxy, cli: CliRunner, idp_home: Path
) -> None:
    make_image(idp_home, SRC, [3_000_000])
    dest = fault_proxy.registry.ref(f"{unique('upstall')}/app:v1")
    fault_proxy.stall(1_000_000, connections=1000, direction="upload")
    t0 = time.monotonic()
    code, _, err = cli("push", "--timeout", "1.5", SRC, dest, env=FAST)
    assert code == 1 and time.monotonic() - t0 < 15, err
    assert "no data from" in err, err
    _no_traceback(err)


def test_bad_timeout_values_are_usage_errors(cli: CliRunner) -> None:
    code, _, err = cli("push", "--timeout", "0", "x:y")
    assert code == 2 and "--timeout" in err, err
    code, _, err = cli("pull", "x:y", env={"IDPBUILDER_TIMEOUT": "soon"})
    assert code == 2 and "IDPBUILDER_TIMEOUT" in err, err


def test_default_budget_fails_a_silent_registry_within_two_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defaults (30 s per stall, 10 attempts, backoff 1 s, 2 s, …): given up in under two minutes."""
    now = [0.0]
    monkeypatch.setattr(retry_mod.time, "monotonic", lambda: now[0])
    policy = RetryPolicy.from_options(environ={})
    assert policy.timeout == 30 and policy.attempts == 10

    def stalls() -> None:
        now[0] += policy.timeout
        raise StallError("registry.example:443", policy.timeout)

    def sleep(s: float) -> None:
        now[0] += s

    policy = RetryPolicy(attempts=policy.attempts, timeout=policy.timeout, sleep=sleep)
    with pytest.raises(RetriesExhausted) as exc:
        policy.run(stalls, what="connecting to registry.example")
    assert now[0] < 120
    assert "network" in (exc.value.hint or "")

    # other transient failures keep the full attempt budget, and reset the stall streak
    calls = [0]

    def mixed() -> None:
        calls[0] += 1
        if calls[0] % 2:
            stalls()
        raise TransientError("503 Service Unavailable")

    now[0] = 0.0
    calls[0] = 0
    with pytest.raises(RetriesExhausted):
        policy.run(mixed, what="x")
    assert calls[0] == 10
