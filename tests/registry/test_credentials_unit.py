"""Credentials: flags/env merging, docker config (auths, credHelpers, credsStore), the provider chain, TLS trust."""

from __future__ import annotations

import base64
import json
import os
import ssl
import stat
from pathlib import Path

import pytest

from idpbuilder.credentials.dockerconfig import DockerConfigKeychain, config_paths, normalize_registry_key
from idpbuilder.credentials.keychain import (
    AnonymousKeychain,
    ChainKeychain,
    Credential,
    StaticKeychain,
    default_keychain,
    explicit_credential,
)
from idpbuilder.credentials.tls import TrustConfig, is_loopback
from idpbuilder.errors import UsageError

ENV = {
    "IDPBUILDER_REGISTRY_USERNAME": "envuser",
    "IDPBUILDER_REGISTRY_PASSWORD": "envpass",
    "IDPBUILDER_REGISTRY_TOKEN": "envtoken",
}


def test_flag_beats_its_env_var_even_when_other_field_from_env() -> None:
    c = explicit_credential(password="flagpass", environ=ENV)
    assert (c.username, c.password, c.token) == ("envuser", "flagpass", "envtoken")
    assert c.source == "flags+environment"
    assert c.basic == ("envuser", "flagpass")  # password wins over token for Basic
    c = explicit_credential(username="flaguser", environ={"IDPBUILDER_REGISTRY_TOKEN": "t"})
    assert c.basic == ("flaguser", "t") and c.bearer is None


def test_token_alone_is_bearer_and_nothing_is_anonymous() -> None:
    c = explicit_credential(token="tok", environ={})
    assert c.bearer == "tok" and c.basic is None and c.source == "flags"
    assert explicit_credential(environ={}).anonymous
    assert explicit_credential(environ=ENV).source == "environment"


@pytest.mark.parametrize(
    ("kw", "msg"),
    [({"username": "u"}, "without a password"), ({"password": "p"}, "without a username")],
)
def test_incomplete_credentials_are_usage_errors(kw: dict[str, str], msg: str) -> None:
    with pytest.raises(UsageError, match=msg):
        explicit_credential(environ={}, **kw)


def test_repr_never_shows_secrets() -> None:
    c = Credential(username="u", password="s3cr3t-pw", token="s3cr3t-tok", source="flags")
    assert "s3cr3t" not in repr(c) and "s3cr3t" not in str(c)
    assert sorted(c.secrets()) == ["s3cr3t-pw", "s3cr3t-tok"]


@pytest.mark.parametrize(
    ("key", "host"),
    [
        ("https://index.docker.io/v1/", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("http://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
        ("Gitea.CNOE.localtest.me:8443", "gitea.cnoe.localtest.me:8443"),
    ],
)
def test_normalize_registry_key(key: str, host: str) -> None:
    assert normalize_registry_key(key) == host


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_docker_config_auths_and_search_order(tmp_path: Path) -> None:
    dc = tmp_path / "dockercfg"
    dc.mkdir()
    (dc / "config.json").write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": _b64("hubuser:hub:pass")},
                    "reg.example:5000": {"username": "u2", "password": "p2"},
                    "tok.example": {"registrytoken": "rt"},
                }
            }
        )
    )
    authfile = tmp_path / "auth.json"
    authfile.write_text(json.dumps({"auths": {"reg.example:5000": {"auth": _b64("podman:pw")}}}))
    env = {"DOCKER_CONFIG": str(dc), "HOME": str(tmp_path)}
    kc = DockerConfigKeychain.from_env(env)
    hub = kc.resolve("docker.io")
    assert hub is not None and hub.basic == ("hubuser", "hub:pass")
    r = kc.resolve("reg.example:5000")
    assert r is not None and r.basic == ("u2", "p2")
    t = kc.resolve("tok.example")
    assert t is not None and t.bearer == "rt"
    assert kc.resolve("other.example") is None
    # $REGISTRY_AUTH_FILE is consulted first
    env2 = {**env, "REGISTRY_AUTH_FILE": str(authfile)}
    assert config_paths(env2)[0] == authfile
    r2 = DockerConfigKeychain.from_env(env2).resolve("reg.example:5000")
    assert r2 is not None and r2.basic == ("podman", "pw")
    # default location: ~/.docker/config.json
    assert config_paths({"HOME": str(tmp_path)}) == [tmp_path / ".docker" / "config.json"]


def _helper(bin_dir: Path, name: str, script: str) -> None:
    p = bin_dir / f"docker-credential-{name}"
    p.write_text("#!/bin/sh\n" + script)
    p.chmod(p.stat().st_mode | stat.S_IXUSR)


def test_cred_helpers_and_creds_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "helper.log"
    # a real helper program: reads the server URL on stdin, answers JSON (docker credential-helper protocol)
    _helper(
        bin_dir,
        "mine",
        f'read s; echo "mine get $1 $s" >> {log}; '
        'case "$s" in reg.example) echo \'{"Username":"helperuser","Secret":"helpersecret"}\';; '
        "*) echo 'credentials not found in native keychain'; exit 1;; esac\n",
    )
    _helper(bin_dir, "store", 'read s; echo \'{"Username":"<token>","Secret":"idtoken"}\'\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    cfg = tmp_path / "config.json"
    cfg.write_text(
        json.dumps({"credHelpers": {"reg.example": "mine", "miss.example": "mine"}, "credsStore": "store"})
    )
    kc = DockerConfigKeychain((cfg,))
    c = kc.resolve("reg.example")
    assert (
        c is not None and c.basic == ("helperuser", "helpersecret") and c.source == "docker-credential-mine"
    )
    assert "mine get get reg.example" in log.read_text()
    assert kc.resolve("miss.example") is None  # helper says not found: no fallback to credsStore
    s = kc.resolve("any.example")  # credsStore for everything else; "<token>" user = identity token
    assert s is not None and s.bearer == "idtoken"
    cfg.write_text(json.dumps({"credsStore": "absent-helper"}))
    assert DockerConfigKeychain((cfg,)).resolve("reg.example") is None


def test_invalid_docker_config_is_a_usage_error(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text("{not json")
    with pytest.raises(UsageError, match="not valid JSON"):
        DockerConfigKeychain((cfg,)).resolve("x.example")


class _Plugin:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def resolve(self, registry: str) -> Credential | None:
        self.asked.append(registry)
        return (
            Credential(username="cluster", password="cpw", source="cluster")
            if registry == "idp:8443"
            else None
        )


def test_chain_order_flags_env_docker_plugin_anonymous(tmp_path: Path) -> None:
    cfg_dir = tmp_path / "dc"
    cfg_dir.mkdir()
    (cfg_dir / "config.json").write_text(json.dumps({"auths": {"idp:8443": {"auth": _b64("docker:dpw")}}}))
    plugin = _Plugin()
    base_env = {"DOCKER_CONFIG": str(cfg_dir), "HOME": str(tmp_path)}
    chain = default_keychain(environ=base_env, plugins=[plugin])
    assert chain.resolve("idp:8443").source.endswith("config.json")  # docker config before the plugin
    assert plugin.asked == []
    chain = default_keychain(environ={"HOME": str(tmp_path)}, plugins=[plugin])
    assert chain.resolve("idp:8443").source == "cluster"
    assert chain.resolve("other:1").anonymous
    chain = default_keychain(username="f", password="fp", environ=base_env, plugins=[plugin])
    assert chain.resolve("idp:8443").basic == ("f", "fp")
    # the extension point: insert a provider before anonymous
    c2 = ChainKeychain((StaticKeychain(Credential()), AnonymousKeychain())).with_provider(plugin)
    assert c2.resolve("idp:8443").username == "cluster"


@pytest.mark.parametrize(
    ("host", "loop"),
    [
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.3.4.5", True),
        ("[::1]:5000", True),
        ("gitea.cnoe.localtest.me:8443", False),
        ("10.0.0.1:5000", False),
    ],
)
def test_is_loopback(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop
    assert TrustConfig().allows_plain_http(host) is loop
    assert TrustConfig(insecure=True).allows_plain_http(host)


def test_trust_config_ca_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        TrustConfig.from_options(ca_file=tmp_path / "missing.pem", environ={})
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(UsageError, match="cannot load CA file"):
        TrustConfig.from_options(ca_file=bad, environ={}).ssl_context("h:1")
    # IDPBUILDER_CA_FILE is used when no flag is given; REQUESTS_CA_BUNDLE is not
    t = TrustConfig.from_options(environ={"IDPBUILDER_CA_FILE": str(bad), "REQUESTS_CA_BUNDLE": "/nope"})
    assert t.ca_files == (bad,)
    certs = tmp_path / "certs"
    (certs / "reg:5000").mkdir(parents=True)
    (certs / "reg:5000" / "ca.crt").write_text("x")
    (certs / "other.pem").write_text("x")
    t = TrustConfig(cert_dirs=(certs,)).with_host_ca("h:1", bad)
    assert t.ca_files_for("reg:5000") == [certs / "reg:5000" / "ca.crt"]
    assert t.ca_files_for("other") == [certs / "other.pem"]
    assert t.ca_files_for("h:1") == [bad]
    ctx = TrustConfig(insecure=True).ssl_context("any")
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
    ctx = TrustConfig().ssl_context("any")
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
