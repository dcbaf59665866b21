"""``login`` / ``logout`` against real registries: TLS + htpasswd, bearer tokens, a credential helper on PATH,
and the idpbuilder cluster's Gitea account; afterwards ``push``/``pull`` need no credential flags."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from fixtures.cli import CliRunner
from fixtures.plugin import BusyboxImage
from fixtures.registry import RegistryInfo

from .credhelper import install_helper

LEVELS = ["debug", "info", "warn", "error"]


def _one_error(err: str) -> tuple[str, str]:
    lines = err.rstrip("\n").splitlines()
    assert "Traceback" not in err and lines[-2].startswith("Error: ") and lines[-1].startswith("Hint: "), err
    assert sum(ln.startswith("Error: ") for ln in lines) == 1, err
    return lines[-2], lines[-1]


@pytest.fixture
def docker_config(tmp_path: Path) -> Path:
    d = tmp_path / "docker-config"
    d.mkdir()
    return d


def _ca_env(info: RegistryInfo, dc: Path, **extra: str) -> dict[str, str]:
    env = {"DOCKER_CONFIG": str(dc), **extra}
    if info.ca_file is not None:
        env["IDPBUILDER_CA_FILE"] = str(info.ca_file)
    return env


def _login(cli: CliRunner, info: RegistryInfo, env: dict[str, str], *extra: str, password: str | None = None):
    assert info.username is not None and info.password is not None
    return cli(
        "login",
        "-u",
        info.username,
        "--password-stdin",
        *extra,
        info.host,
        env=env,
        input=(password if password is not None else info.password) + "\n",
    )


def test_login_tls_htpasswd_then_push_and_pull_need_no_flags(
    cli: CliRunner,
    busybox_image: BusyboxImage,
    idp_home: Path,
    registry_tls: RegistryInfo,
    docker_config: Path,
) -> None:
    busybox_image.install(idp_home)
    env = _ca_env(registry_tls, docker_config)
    code, out, err = _login(cli, registry_tls, env)
    assert code == 0, err
    assert out == "Login Succeeded\n"
    cfg_file = docker_config / "config.json"
    assert oct(cfg_file.stat().st_mode & 0o777) == "0o600"
    entry = json.loads(cfg_file.read_text())["auths"][registry_tls.host]
    assert base64.b64decode(entry["auth"]).decode() == f"{registry_tls.username}:{registry_tls.password}"
    assert registry_tls.password not in out + err
    ref = registry_tls.ref("ux/login:v1")
    cli("push", "busybox", ref, env=env).check()
    cli("pull", ref, env=env).check()
    # logout removes it; push is then refused
    code, out, _ = cli("logout", registry_tls.host, env=env)
    assert code == 0 and out == f"Removing login credentials for {registry_tls.host}\n"
    assert registry_tls.host not in json.loads(cfg_file.read_text())["auths"]
    code, out, err = cli("push", "--retries", "1", "busybox", ref, env=env)
    assert code == 1 and "requires authentication" in err
    code, out, _ = cli("logout", registry_tls.host, env=env)
    assert code == 0 and out == f"Not logged in to {registry_tls.host}\n"


def test_wrong_password_is_refused_and_nothing_is_saved(
    cli: CliRunner, registry_tls: RegistryInfo, docker_config: Path
) -> None:
    code, out, err = _login(cli, registry_tls, _ca_env(registry_tls, docker_config), password="wrong-pw-123")
    assert code == 1 and out == ""
    error, _ = _one_error(err)
    assert "rejected the credentials" in error
    assert not (docker_config / "config.json").exists()


def test_login_token_registry(
    cli: CliRunner,
    busybox_image: BusyboxImage,
    idp_home: Path,
    registry_token: RegistryInfo,
    docker_config: Path,
) -> None:
    busybox_image.install(idp_home)
    env = _ca_env(registry_token, docker_config)
    code, out, err = _login(cli, registry_token, env, password="not-it")
    assert code == 1 and "invalid username or password" in _one_error(err)[0]
    assert not (docker_config / "config.json").exists()
    assert registry_token.token_server is not None
    registry_token.token_server.reset_counts()
    code, out, err = _login(cli, registry_token, env)
    assert code == 0 and out == "Login Succeeded\n", err
    assert any(r.user == registry_token.username for r in registry_token.token_server.requests)
    ref = registry_token.ref("ux/token-login:v1")
    cli("push", "busybox", ref, env=env).check()
    assert any(
        r.user == registry_token.username and any("push" in s for s in r.scopes)
        for r in registry_token.token_server.requests
    )


def test_login_through_credential_helper_never_writes_the_secret(
    cli: CliRunner,
    busybox_image: BusyboxImage,
    idp_home: Path,
    registry_tls: RegistryInfo,
    docker_config: Path,
    tmp_path: Path,
) -> None:
    busybox_image.install(idp_home)
    helper = install_helper(tmp_path / "bin")
    store = tmp_path / "credstore.json"
    cfg_file = docker_config / "config.json"
    cfg_file.write_text(json.dumps({"credsStore": "teststore", "experimental": "enabled"}))
    env = _ca_env(
        registry_tls,
        docker_config,
        PATH=f"{helper.parent}{os.pathsep}{os.environ['PATH']}",
        TEST_CREDSTORE=str(store),
    )
    code, out, err = _login(cli, registry_tls, env)
    assert code == 0, err
    cfg = json.loads(cfg_file.read_text())
    assert cfg == {"credsStore": "teststore", "experimental": "enabled", "auths": {registry_tls.host: {}}}
    assert registry_tls.password not in cfg_file.read_text()  # type: ignore[operator]
    held = json.loads(store.read_text())
    assert held[registry_tls.host] == {"Username": registry_tls.username, "Secret": registry_tls.password}
    cli("push", "busybox", registry_tls.ref("ux/helper:v1"), env=env).check()  # read back through "get"
    assert "get" in Path(f"{store}.log").read_text().split()
    code, out, err = cli("logout", registry_tls.host, env=env)
    assert code == 0 and out.startswith("Removing login credentials"), err
    assert json.loads(store.read_text()) == {}
    assert json.loads(cfg_file.read_text())["auths"] == {}


def test_per_registry_helper_missing_is_an_error_not_plaintext(
    cli: CliRunner, registry_tls: RegistryInfo, docker_config: Path
) -> None:
    cfg_file = docker_config / "config.json"
    cfg_file.write_text(json.dumps({"credHelpers": {registry_tls.host: "nosuchhelper"}}))
    code, out, err = _login(cli, registry_tls, _ca_env(registry_tls, docker_config))
    assert code == 1
    error, hint = _one_error(err)
    assert "docker-credential-nosuchhelper" in error and "not on PATH" in error
    assert json.loads(cfg_file.read_text()) == {"credHelpers": {registry_tls.host: "nosuchhelper"}}


def test_registry_auth_file_is_used_when_set(
    cli: CliRunner, registry_tls: RegistryInfo, docker_config: Path, tmp_path: Path
) -> None:
    auth = tmp_path / "containers" / "auth.json"
    env = _ca_env(registry_tls, docker_config, REGISTRY_AUTH_FILE=str(auth))
    _login(cli, registry_tls, env).check()
    assert registry_tls.host in json.loads(auth.read_text())["auths"]
    assert not (docker_config / "config.json").exists()


@pytest.mark.parametrize("kind", ["tls", "token"])
@pytest.mark.parametrize("level", LEVELS)
def test_password_never_appears_in_output(
    cli: CliRunner, request: pytest.FixtureRequest, docker_config: Path, level: str, kind: str
) -> None:
    registry_tls: RegistryInfo = request.getfixturevalue(f"registry_{kind}")
    assert registry_tls.username is not None and registry_tls.password is not None
    env = _ca_env(registry_tls, docker_config)
    for pw in (registry_tls.password, registry_tls.password + "x"):
        code, out, err = cli(
            "-l", level, "login", "-u", registry_tls.username, "-p", pw, registry_tls.host, env=env
        )
        assert pw not in out + err
        assert base64.b64encode(f"{registry_tls.username}:{pw}".encode()).decode() not in out + err
        if level in ("debug", "info", "warn"):
            assert "insecure" in err and "--password-stdin" in err  # the -p warning
    for pw in (registry_tls.password, "wrong"):
        code, out, err = cli(
            "-l",
            level,
            "login",
            "-u",
            registry_tls.username,
            "--password-stdin",
            registry_tls.host,
            env=env,
            input=pw,
        )
        assert pw not in out + err


def test_usage_errors(cli: CliRunner, docker_config: Path) -> None:
    env = {"DOCKER_CONFIG": str(docker_config)}
    code, _, err = cli("login", "--password-stdin", "localhost:1", env=env, input="x")
    assert code == 2 and "--password-stdin needs --username" in _one_error(err)[0]
    code, _, err = cli("login", "-u", "bob", "-p", "x", "--password-stdin", "localhost:1", env=env, input="x")
    assert code == 2 and "mutually exclusive" in _one_error(err)[0]
    code, _, err = cli("login", "-u", "bob", "localhost:1", env=env, input="")
    assert code == 2 and "no password for bob" in _one_error(err)[0]
