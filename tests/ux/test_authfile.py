"""The docker config writer behind ``login``/``logout``, and the registry/mirror argument parsing (no servers)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from idpbuilder.cluster.login import registry_host
from idpbuilder.cluster.mirrors import mirror_host
from idpbuilder.credentials.authfile import AuthFile, auth_file_path, server_key
from idpbuilder.credentials.dockerconfig import DockerConfigKeychain
from idpbuilder.errors import UsageError

from .credhelper import install_helper


def test_file_choice_follows_the_reading_side(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path)}
    assert auth_file_path(env) == tmp_path / ".docker" / "config.json"
    env["DOCKER_CONFIG"] = str(tmp_path / "dc")
    assert auth_file_path(env) == tmp_path / "dc" / "config.json"
    env["REGISTRY_AUTH_FILE"] = str(tmp_path / "auth.json")
    assert auth_file_path(env) == tmp_path / "auth.json"
    assert AuthFile.from_env(env).podman


def test_store_keeps_other_keys_replaces_aliases_and_is_read_back(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "auths": {
                    "https://reg.example:5000/v2/": {"auth": "b2xkOm9sZA=="},
                    "other.example": {"auth": "eDp5"},
                },
                "proxies": {"default": {"httpProxy": "http://proxy:3128"}},
            }
        )
    )
    saved = AuthFile(path).store("reg.example:5000", "alice", "s3:cr#t")
    assert saved.helper is None and saved.path == path
    cfg = json.loads(path.read_text())
    assert set(cfg["auths"]) == {"reg.example:5000", "other.example"}
    assert base64.b64decode(cfg["auths"]["reg.example:5000"]["auth"]).decode() == "alice:s3:cr#t"
    assert cfg["proxies"] == {"default": {"httpProxy": "http://proxy:3128"}}
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    cred = DockerConfigKeychain((path,)).resolve("reg.example:5000")
    assert cred is not None and cred.basic == ("alice", "s3:cr#t")
    assert AuthFile(path).erase("https://reg.example:5000") is True
    assert AuthFile(path).erase("reg.example:5000") is False
    assert set(json.loads(path.read_text())["auths"]) == {"other.example"}


def test_docker_hub_keys(tmp_path: Path) -> None:
    assert server_key("docker.io") == "https://index.docker.io/v1/"
    assert server_key("index.docker.io", podman=True) == "docker.io"
    AuthFile(tmp_path / "c.json").store("docker.io", "bob", "pw")
    assert list(json.loads((tmp_path / "c.json").read_text())["auths"]) == ["https://index.docker.io/v1/"]


def test_helper_store_and_erase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helper = install_helper(tmp_path / "bin", "unit")
    monkeypatch.setenv("PATH", f"{helper.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("TEST_CREDSTORE", str(tmp_path / "store.json"))
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"credHelpers": {"reg.example": "unit"}}))
    f = AuthFile(path)
    assert f.helper_for("reg.example") == "unit" and f.helper_for("elsewhere") is None
    assert f.store("reg.example", "carol", "pw").helper == "unit"
    assert "pw" not in path.read_text()
    assert json.loads((tmp_path / "store.json").read_text()) == {
        "reg.example": {"Username": "carol", "Secret": "pw"}
    }
    assert f.erase("reg.example") is True
    assert f.erase("reg.example") is False  # "credentials not found" from the helper is not an error


def test_bad_file_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(UsageError, match="is not valid JSON"):
        AuthFile(path).store("r.example", "u", "p")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localhost:5000", ("localhost:5000", None)),
        ("https://Reg.Example:5000/v2/", ("reg.example:5000", "https")),
        ("http://127.0.0.1:5000", ("127.0.0.1:5000", "http")),
        ("index.docker.io", ("docker.io", None)),
    ],
)
def test_registry_host(text: str, expected: tuple[str, str | None]) -> None:
    assert registry_host(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mirror.gcr.io", "mirror.gcr.io"),
        ("https://mirror.gcr.io/", "mirror.gcr.io"),
        ("http://127.0.0.1:5000", "127.0.0.1:5000"),
    ],
)
def test_mirror_host(text: str, expected: str) -> None:
    assert mirror_host(text) == expected


@pytest.mark.parametrize(
    "bad", ["https://m.example/v2/library", "ftp://m.example", "https://u:p@m.example", "m.example?x=1"]
)
def test_mirror_host_rejects(bad: str) -> None:
    with pytest.raises(UsageError):
        mirror_host(bad)


@pytest.mark.parametrize("bad", ["ftp://reg.example", "user@reg.example", ""])
def test_registry_host_rejects(bad: str) -> None:
    with pytest.raises(UsageError):
        registry_host(bad)
