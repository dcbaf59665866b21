"""Pure pieces of the registry client: challenge parsing, scopes, redaction, retry policy, push targets."""

from __future__ import annotations

import pytest

from idpbuilder.cli.options import parse_size
from idpbuilder.errors import AuthError, Interrupted, TransientError, UsageError
from idpbuilder.reference import Reference
from idpbuilder.registry.auth import _merge_scopes, parse_challenges
from idpbuilder.registry.retry import RetryPolicy, ThrottledError, is_retryable
from idpbuilder.registry.settings import endpoint_host
from idpbuilder.registry.target import parse_registry_url, resolve_push_target
from idpbuilder.registry.transport import redact_headers, redact_url


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            'Bearer realm="https://gitea.cnoe.localtest.me:8443/v2/token",service="container_registry",scope="*"',
            [
                (
                    "bearer",
                    {
                        "realm": "https://gitea.cnoe.localtest.me:8443/v2/token",
                        "service": "container_registry",
                        "scope": "*",
                    },
                )
            ],
        ),
        ('Basic realm="Registry Realm"', [("basic", {"realm": "Registry Realm"})]),
        (
            'Bearer realm="http://127.0.0.1:1/token",service="s",scope="repository:a/b:pull,push",'
            'error="insufficient_scope"',
            [
                (
                    "bearer",
                    {
                        "realm": "http://127.0.0.1:1/token",
                        "service": "s",
                        "scope": "repository:a/b:pull,push",
                        "error": "insufficient_scope",
                    },
                )
            ],
        ),
        (
            'Basic realm="x", Bearer realm="https://t/token"',
            [("basic", {"realm": "x"}), ("bearer", {"realm": "https://t/token"})],
        ),
        ('Bearer realm="a\\"b"', [("bearer", {"realm": 'a"b'})]),
        ("", []),
    ],
)
def test_parse_challenges(header: str, expected: list[tuple[str, dict[str, str]]]) -> None:
    got = [(c.scheme, c.params) for c in parse_challenges(header)]
    assert got == expected


def test_merge_scopes_upgrades_actions() -> None:
    assert _merge_scopes(["repository:a:pull", "repository:a:push", "repository:b:pull"]) == (
        "repository:a:pull,push",
        "repository:b:pull",
    )
    assert _merge_scopes(["registry:catalog:*"]) == ("registry:catalog:*",)


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        (
            "https://h/v2/token?service=s&token=abc123&scope=x",
            "https://h/v2/token?service=s&token=***&scope=x",
        ),
        ("https://u:pw@h/v2/", "https://***@h/v2/"),
        (
            "https://s3/x?X-Amz-Signature=deadbeef&access_token=zz",
            "https://s3/x?X-Amz-Signature=***&access_token=***",
        ),
        ("http://h/v2/a/blobs/uploads/u?_state=s", "http://h/v2/a/blobs/uploads/u?_state=s"),
    ],
)
def test_redact_url(url: str, safe: str) -> None:
    assert redact_url(url) == safe


def test_redact_headers() -> None:
    h = redact_headers({"Authorization": "Bearer sekrit", "Location": "/x?token=sekrit", "Accept": "a"})
    assert h == {"Authorization": "Bearer ***", "Location": "/x?token=***", "Accept": "a"}
    assert "sekrit" not in str(redact_headers({"authorization": "Basic c2Vrcml0"}))


def test_retry_backoff_and_predicate() -> None:
    p = RetryPolicy(attempts=10, base_delay=1.0)
    assert [p.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert p.delay(1, retry_after=7) == 7 and p.delay(1, retry_after=500) == 30
    assert is_retryable(TransientError("x")) and is_retryable(ThrottledError("429", status=429))
    assert not is_retryable(AuthError("401", status=401))


def test_retry_runs_until_success_and_stops_on_auth() -> None:
    slept: list[float] = []
    p = RetryPolicy(attempts=4, base_delay=0.5, sleep=slept.append)
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise TransientError("503 Service Unavailable", status=503)
        return "ok"

    assert p.run(flaky, what="pushing blob sha256:ab12… to h/r") == "ok"
    assert slept == [0.5, 1.0]

    def always() -> None:
        raise TransientError("503 Service Unavailable")

    with pytest.raises(
        TransientError, match=r"pushing blob sha256:ab12… to h/r: 503 Service Unavailable \(gave up after 4"
    ):
        p.run(always, what="pushing blob sha256:ab12… to h/r")

    auth_calls = {"n": 0}

    def denied() -> None:
        auth_calls["n"] += 1
        raise AuthError("denied")

    with pytest.raises(AuthError):
        p.run(denied, what="x")
    assert auth_calls["n"] == 1


def test_retry_policy_from_options() -> None:
    p = RetryPolicy.from_options(retries=3, environ={"IDPBUILDER_RETRY_BASE_DELAY": "0.01"})
    assert (p.attempts, p.base_delay) == (3, 0.01)
    assert RetryPolicy.from_options(environ={}).attempts == 10
    with pytest.raises(UsageError):
        RetryPolicy.from_options(environ={"IDPBUILDER_RETRY_BASE_DELAY": "soon"})


def test_retry_sleep_is_cancellable() -> None:
    import threading

    ev = threading.Event()
    ev.set()
    p = RetryPolicy(attempts=5, base_delay=30, cancel=ev)

    def fail() -> None:
        raise TransientError("503")

    with pytest.raises(Interrupted):
        p.run(fail, what="x")


@pytest.mark.parametrize(
    ("ref", "flag", "env", "expected", "scheme", "source"),
    [
        ("127.0.0.1:5000/a/b:1", "https://other:1", {}, "127.0.0.1:5000/a/b:1", None, "reference"),
        ("demo:v1", None, {}, "gitea.cnoe.localtest.me:8443/demo:v1", "https", "default"),
        ("demo", None, {}, "gitea.cnoe.localtest.me:8443/demo:latest", "https", "default"),
        ("team/demo:v1", "http://127.0.0.1:5000", {}, "127.0.0.1:5000/team/demo:v1", "http", "flag"),
        (
            "demo:v1",
            None,
            {"IDPBUILDER_REGISTRY_URL": "cnoe.localtest.me:8443/gitea"},
            "cnoe.localtest.me:8443/gitea/demo:v1",
            None,
            "environment",
        ),
        (
            "demo:v1",
            "reg.example:5000",
            {"IDPBUILDER_REGISTRY_URL": "https://ignored:1"},
            "reg.example:5000/demo:v1",
            None,
            "flag",
        ),
    ],
)
def test_resolve_push_target(
    ref: str, flag: str | None, env: dict[str, str], expected: str, scheme: str | None, source: str
) -> None:
    t = resolve_push_target(Reference.parse(ref), flag, environ=env)
    assert (str(t.reference), t.scheme, t.registry_source) == (expected, scheme, source)
    assert t.default_registry is (source == "default")


@pytest.mark.parametrize("bad", ["ftp://h", "https://user:pw@h", ""])
def test_parse_registry_url_rejects(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_registry_url(bad)


def test_endpoint_host_and_sizes() -> None:
    assert endpoint_host("docker.io") == "registry-1.docker.io"
    assert endpoint_host("127.0.0.1:5000") == "127.0.0.1:5000"
    assert Reference.parse("alpine").for_pull().store_key == "docker.io/library/alpine:latest"
    assert parse_size("256M") == 256 << 20 and parse_size("64MiB") == 64 << 20 and parse_size("1000") == 1000
    assert parse_size("1G") == 1 << 30
    with pytest.raises(UsageError):
        parse_size("lots")
