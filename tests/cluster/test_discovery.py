"""Discovery against a fake mTLS API server: each source present, absent and broken, and the fallbacks."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import pytest

from idpbuilder.cluster import (
    ClusterUnreachable,
    IdpCluster,
    KubeClient,
    KubeOptions,
    ca_cache_path,
    parse_localbuild,
    parse_registry_url,
)
from idpbuilder.errors import ClusterError, UsageError

from .kubefake import LOCALBUILDS_PATH, FakeKube, localbuild

CRED = ("gitea", "gitea-credential")
CERT = ("default", "idpbuilder-cert")


def _cluster(
    kubeconfig: Path | None,
    home: Path,
    *,
    registry: str | None = None,
    env: dict[str, str] | None = None,
    context: str | None = None,
    timeout: float = 2.5,
) -> IdpCluster:
    e = {"HOME": str(home)}
    e.update(env or {})
    return IdpCluster(
        KubeOptions(kubeconfig=kubeconfig, context=context, timeout=timeout),
        home=home / "idp",
        registry=registry,
        env=e,
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- registry discovery order ---------------------------------------------------------------------------------


def test_registry_from_cluster_domain_routing(kube: FakeKube, kubeconfig: Path, tmp_path: Path) -> None:
    kube.set_localbuilds([localbuild(host="Cnoe.Example", port=9443)])
    reg = _cluster(kubeconfig, tmp_path).registry()
    assert (reg.host, reg.url, reg.source) == (
        "gitea.cnoe.example:9443",
        "https://gitea.cnoe.example:9443",
        "cluster",
    )
    assert reg.api_url == "https://gitea.cnoe.example:9443/api/v1"
    assert (
        "GET",
        LOCALBUILDS_PATH,
        "kubernetes-admin",
    ) in kube.requests  # authenticated by client certificate


def test_registry_from_cluster_path_routing_uses_external_url(
    kube: FakeKube, kubeconfig: Path, tmp_path: Path
) -> None:
    kube.set_localbuilds(
        [
            localbuild(
                host="localhost", port=8443, path_routing=True, external_url="https://localhost:8443/gitea"
            )
        ]
    )
    reg = _cluster(kubeconfig, tmp_path).registry()
    assert (reg.host, reg.url) == ("localhost:8443", "https://localhost:8443/gitea")
    assert reg.api_url == "https://localhost:8443/gitea/api/v1"


def test_registry_http_protocol_from_cluster(kube: FakeKube, kubeconfig: Path, tmp_path: Path) -> None:
    kube.set_localbuilds([localbuild(host="cnoe.localtest.me", port=8080, protocol="http")])
    reg = _cluster(kubeconfig, tmp_path).registry()
    assert (reg.scheme, reg.host, reg.url) == (
        "http",
        "gitea.cnoe.localtest.me:8080",
        "http://gitea.cnoe.localtest.me:8080",
    )


def test_flag_beats_env_and_cluster_and_skips_the_cr(
    kube: FakeKube, kubeconfig: Path, tmp_path: Path
) -> None:
    kube.set_localbuilds([localbuild(host="cluster.example", port=1)])
    reg = _cluster(
        kubeconfig,
        tmp_path,
        registry="flag.example:5000",
        env={"IDPBUILDER_REGISTRY_URL": "https://env.example"},
    ).registry()
    assert (reg.host, reg.source, reg.scheme) == ("flag.example:5000", "flag", "https")
    assert not any(p == LOCALBUILDS_PATH for _, p, _ in kube.requests)


def test_env_beats_cluster(kube: FakeKube, kubeconfig: Path, tmp_path: Path) -> None:
    kube.set_localbuilds([localbuild(host="cluster.example", port=1)])
    reg = _cluster(
        kubeconfig, tmp_path, env={"IDPBUILDER_REGISTRY_URL": "http://env.example:81/gitea"}
    ).registry()
    assert (reg.host, reg.url, reg.source) == ("env.example:81", "http://env.example:81/gitea", "env")


@pytest.mark.parametrize(
    "setup", ["absent", "empty", "no-customization", "bad-port", "bad-json", "forbidden"]
)
def test_registry_falls_back_to_default_when_cr_absent_or_broken(
    setup: str, kube: FakeKube, kubeconfig: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if setup == "empty":
        kube.set_localbuilds([])
    elif setup == "no-customization":
        kube.set_localbuilds(
            [
                {
                    "apiVersion": "idpbuilder.cnoe.io/v1alpha1",
                    "kind": "Localbuild",
                    "metadata": {"name": "x"},
                    "spec": {},
                }
            ]
        )
    elif setup == "bad-port":
        kube.set_localbuilds([localbuild(host="h.example", port="eighty")])
    elif setup == "bad-json":
        kube.put_raw(LOCALBUILDS_PATH, 200, b"{not json")
    elif setup == "forbidden":
        kube.put_raw(
            LOCALBUILDS_PATH,
            403,
            b'{"kind":"Status","apiVersion":"v1","status":"Failure",'
            b'"message":"forbidden","reason":"Forbidden","code":403}',
        )
    caplog.set_level(logging.DEBUG, logger="idpbuilder")
    reg = _cluster(kubeconfig, tmp_path).registry()
    assert (reg.host, reg.source) == ("gitea.cnoe.localtest.me:8443", "default")
    assert any(
        "registry not discovered from the cluster" in r.message
        or "not using the idpbuilder cluster" in r.message
        for r in caplog.records
    )


def test_unreachable_cluster_one_debug_line_and_no_retry(
    kube: FakeKube, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = kube.kubeconfig(tmp_path / "kc", server=f"https://127.0.0.1:{_closed_port()}")
    caplog.set_level(logging.DEBUG, logger="idpbuilder")
    c = _cluster(cfg, tmp_path)
    assert c.registry().source == "default"
    assert c.credentials() is None
    assert c.ca_file() is None
    lines = [r.message for r in caplog.records if "not using the idpbuilder cluster" in r.message]
    assert len(lines) == 1 and "unreachable" in lines[0]
    assert c.unavailable_reason is not None


def test_slow_cluster_times_out_quickly(kube: FakeKube, kubeconfig: Path, tmp_path: Path) -> None:
    kube.set_localbuilds([localbuild(host="h.example", port=1)])
    kube.set_delay(5)
    start = time.monotonic()
    c = _cluster(kubeconfig, tmp_path, timeout=0.5)
    assert c.registry().source == "default"
    assert c.credentials() is None  # no second wait
    assert time.monotonic() - start < 3


def test_mtls_is_required(kube: FakeKube, tmp_path: Path) -> None:
    kube.set_localbuilds([localbuild(host="h.example", port=1)])
    cfg = kube.kubeconfig(tmp_path / "kc", with_client_cert=False)
    c = _cluster(cfg, tmp_path)
    assert c.registry().source == "default"
    assert c.unavailable_reason is not None


def test_no_kubeconfig_at_all(tmp_path: Path) -> None:
    c = _cluster(None, tmp_path)  # HOME=tmp_path: no ~/.kube/config
    assert c.registry().source == "default"
    assert c.unavailable_reason is not None and "no kubeconfig found" in c.unavailable_reason


def test_broken_kubeconfig_file(tmp_path: Path) -> None:
    cfg = tmp_path / "kc"
    cfg.write_text("clusters: [unclosed")
    c = _cluster(cfg, tmp_path)
    assert c.registry().source == "default"
    assert c.unavailable_reason is not None and "reading kubeconfig" in c.unavailable_reason


# ---- kubeconfig / context resolution --------------------------------------------------------------------------


def test_kubeconfig_env_list_and_home_default(kube: FakeKube, tmp_path: Path) -> None:
    kube.set_localbuilds([localbuild(host="h.example", port=1)])
    real = kube.kubeconfig(tmp_path / "a" / "config")
    missing = tmp_path / "missing"
    c = _cluster(None, tmp_path, env={"KUBECONFIG": f"{missing}:{real}"})
    assert c.registry().host == "gitea.h.example:1"
    kube.kubeconfig(tmp_path / ".kube" / "config")  # HOME/.kube/config
    assert _cluster(None, tmp_path).registry().host == "gitea.h.example:1"


@pytest.mark.parametrize(
    ("current", "flag", "ok"),
    [
        ("kind-other", "kind-other", True),  # --context names it
        (None, None, True),  # no current-context: kind-localdev
        ("kind-other", None, True),  # the current context
        ("kind-localdev", "nope", False),  # --context that does not exist
    ],
)
def test_context_choice(
    current: str | None, flag: str | None, ok: bool, kube: FakeKube, tmp_path: Path
) -> None:
    kube.set_localbuilds([localbuild(host="h.example", port=1)])
    name = "kind-other" if current == "kind-other" else "kind-localdev"
    cfg = kube.kubeconfig(tmp_path / "kc", context=name, current=current)
    c = _cluster(cfg, tmp_path, context=flag)
    assert (c.registry().source == "cluster") is ok
    if not ok:
        assert c.unavailable_reason is not None and "'nope'" in c.unavailable_reason


def test_client_raises_cluster_errors(kube: FakeKube, kubeconfig: Path) -> None:
    client = KubeClient(KubeOptions(kubeconfig=kubeconfig), env={})
    with pytest.raises(ClusterError, match="not found"):
        client.get_secret(*CRED)
    kube.stop()
    client2 = KubeClient(KubeOptions(kubeconfig=kubeconfig), env={})
    with pytest.raises(ClusterUnreachable):
        client2.list_localbuilds()


# ---- credentials ----------------------------------------------------------------------------------------------


def test_credentials_present(kube: FakeKube, kubeconfig: Path, tmp_path: Path) -> None:
    pw = "p@ss:w/o'rd\"!{}"
    kube.put_secret(*CRED, {"username": "giteaAdmin", "password": pw, "token": "tok123"})
    c = _cluster(kubeconfig, tmp_path)
    cred = c.credentials("gitea.cnoe.localtest.me:8443")
    assert cred is not None and (cred.username, cred.password, cred.token) == ("giteaAdmin", pw, "tok123")
    assert pw not in repr(cred) and "tok123" not in repr(cred)
    assert cred.secret == pw
    # only for the idpbuilder registry
    assert c.credentials("other.example:5000") is None
    # memoised: one GET of the secret
    c.credentials()
    assert sum(1 for _, p, _ in kube.requests if p.endswith("/gitea-credential")) == 1


@pytest.mark.parametrize("data", [{"username": "giteaAdmin"}, {"password": "x"}, "bad-base64", None])
def test_credentials_absent_or_broken(data: object, kube: FakeKube, kubeconfig: Path, tmp_path: Path) -> None:
    if data == "bad-base64":
        kube.put_raw(
            "/api/v1/namespaces/gitea/secrets/gitea-credential",
            200,
            b'{"apiVersion":"v1","kind":"Secret","metadata":{"name":"gitea-credential"},'
            b'"data":{"username":"***","password":"%%%"}}',
        )
    elif isinstance(data, dict):
        kube.put_secret(*CRED, data)
    assert _cluster(kubeconfig, tmp_path).credentials() is None


def test_token_only_secret_is_usable(kube: FakeKube, kubeconfig: Path, tmp_path: Path) -> None:
    kube.put_secret(*CRED, {"username": "giteaAdmin", "password": "", "token": "t0k"})
    cred = _cluster(kubeconfig, tmp_path).credentials()
    assert cred is not None and cred.secret == "t0k"


# ---- CA -------------------------------------------------------------------------------------------------------


def test_ca_present_is_cached_and_refreshed(kube: FakeKube, kubeconfig: Path, tmp_path: Path) -> None:
    pem = kube.certs.ca_pem.decode()
    kube.put_secret(*CERT, {"ca.crt": pem})
    c = _cluster(kubeconfig, tmp_path)
    path = c.ca_file("gitea.cnoe.localtest.me:8443")
    assert path == ca_cache_path(tmp_path / "idp", "gitea.cnoe.localtest.me:8443")
    assert path is not None and path.read_text() == pem
    assert c.ca_file("elsewhere.example") is None
    # a stale cache is replaced by what the cluster says now
    path.write_text("stale")
    assert _cluster(kubeconfig, tmp_path).ca_file() == path and path.read_text() == pem


def test_ca_from_cache_when_cluster_down(kube: FakeKube, kubeconfig: Path, tmp_path: Path) -> None:
    pem = kube.certs.ca_pem.decode()
    kube.put_secret(*CERT, {"ca.crt": pem})
    first = _cluster(kubeconfig, tmp_path).ca_file()
    kube.stop()
    second = _cluster(kubeconfig, tmp_path).ca_file()
    assert first is not None and second == first and second.read_text() == pem


@pytest.mark.parametrize(
    "data",
    [
        None,
        {"tls.crt": "x"},
        {"ca.crt": "not a certificate"},
        {"ca.crt": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
    ],
)
def test_ca_absent_or_broken(
    data: dict[str, str] | None, kube: FakeKube, kubeconfig: Path, tmp_path: Path
) -> None:
    if data is not None:
        kube.put_secret(*CERT, data)
    c = _cluster(kubeconfig, tmp_path)
    assert c.ca_file() is None
    with pytest.raises(ClusterError):
        c.ca_pem()
    assert not (tmp_path / "idp" / "certs").exists()


# ---- pure parsing ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "scheme", "host", "url"),
    [
        (
            "https://gitea.cnoe.localtest.me:8443",
            "https",
            "gitea.cnoe.localtest.me:8443",
            "https://gitea.cnoe.localtest.me:8443",
        ),
        ("gitea.example:8443", "https", "gitea.example:8443", "https://gitea.example:8443"),
        ("http://127.0.0.1:5000/", "http", "127.0.0.1:5000", "http://127.0.0.1:5000"),
        (
            "https://Cnoe.Localtest.me:8443/gitea/",
            "https",
            "cnoe.localtest.me:8443",
            "https://cnoe.localtest.me:8443/gitea",
        ),
    ],
)
def test_parse_registry_url(text: str, scheme: str, host: str, url: str) -> None:
    r = parse_registry_url(text, source="flag")
    assert (r.scheme, r.host, r.url) == (scheme, host, url)


@pytest.mark.parametrize("text", ["ftp://x", "https://", "https://u:p@h", "https://h:99999", "https://h?x=1"])
def test_parse_registry_url_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_registry_url(text, source="flag")


def test_parse_localbuild_defaults_and_errors() -> None:
    lb = parse_localbuild({"spec": {"buildCustomization": {"host": "cnoe.localtest.me"}}})
    assert (lb.registry_host, lb.gitea_url) == (
        "gitea.cnoe.localtest.me:8443",
        "https://gitea.cnoe.localtest.me:8443",
    )
    pr = parse_localbuild(localbuild(host="cnoe.localtest.me", port=8443, path_routing=True))
    assert (pr.registry_host, pr.gitea_url) == (
        "cnoe.localtest.me:8443",
        "https://cnoe.localtest.me:8443/gitea",
    )
    for bad in (
        {"spec": {"buildCustomization": {"host": "a/b"}}},
        {"spec": {"buildCustomization": {"host": "h", "protocol": "ftp"}}},
        {"spec": {"buildCustomization": {"host": "h", "usePathRouting": "yes"}}},
        {"spec": "x"},
    ):
        with pytest.raises(ClusterError):
            parse_localbuild(bad)
