"""``images --remote``: /v2 catalog + tags against real docker-registry, Gitea's package API against a fake."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.cli import run_cli
from fixtures.plugin import BusyboxImage
from fixtures.registry import RegistryInfo, copy_to_registry
from idpbuilder.cluster.listing import list_gitea_packages, list_v2, matches
from idpbuilder.credentials.keychain import Credential
from idpbuilder.credentials.tls import TrustConfig
from idpbuilder.registry.client import RegistryClient
from idpbuilder.registry.settings import RegistrySettings

from .giteafake import FakeGitea
from .kubefake import FakeKube, localbuild

REPOS = ["giteaadmin/app-a:v1", "giteaadmin/app-a:v2", "team/app-b:latest", "library/busybox:1"]


@pytest.fixture
def filled(registry_factory: Callable[[str], RegistryInfo], busybox_image: BusyboxImage) -> RegistryInfo:
    info = registry_factory("plain")
    for r in REPOS:
        copy_to_registry(busybox_image.oci_ref, info, r)
    return info


@pytest.fixture
def gitea() -> Iterator[FakeGitea]:
    g = FakeGitea(username="giteaAdmin", password="s3cret!:@")
    yield g
    g.stop()


def _client(info: RegistryInfo, cred: Credential | None = None, **kw: Any) -> RegistryClient:
    return RegistryClient(info.host, RegistrySettings(**kw), credential=cred)


def test_v2_listing_follows_link_pagination(filled: RegistryInfo) -> None:
    client = _client(filled)
    rows = list_v2(client, page_size=1)  # one repository per catalog page: Link rel=next must be followed
    got = sorted(f"{r.repository}:{r.tag}" for r in rows)
    assert got == sorted(REPOS)
    assert all(r.registry == filled.host for r in rows)


def test_cli_remote_v2_table_json_and_filter(filled: RegistryInfo, idp_home: Path) -> None:
    # not Gitea: /api/v1/packages answers 404, so the /v2 catalog is used
    code, out, err = run_cli(["images", "--remote", "--registry", filled.url], home=idp_home)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "CREATED"]
    assert f"{filled.host}/giteaadmin/app-a" in out and f"{filled.host}/team/app-b" in out
    assert len(lines) == 1 + len(REPOS)
    code, out, err = run_cli(
        ["images", "--remote", "--registry", filled.url, "--format", "json", "app-a"], home=idp_home
    )
    assert code == 0, err
    doc = json.loads(out)
    assert sorted(d["Name"] for d in doc) == [
        f"{filled.host}/giteaadmin/app-a:v1",
        f"{filled.host}/giteaadmin/app-a:v2",
    ]
    code, out, _ = run_cli(["images", "--remote", "-q", "--registry", filled.url, "*/app-b:*"], home=idp_home)
    assert out.splitlines() == [f"{filled.host}/team/app-b:latest"]


def test_cli_remote_v2_tls_with_basic_auth(
    registry_factory: Callable[[str], RegistryInfo], busybox_image: BusyboxImage, idp_home: Path
) -> None:
    info = registry_factory("tls")
    copy_to_registry(busybox_image.oci_ref, info, "giteaadmin/secure:v9")
    code, out, err = run_cli(["images", "--remote", "--registry", info.url, *info.cli_args()], home=idp_home)
    assert code == 0, err
    assert f"{info.host}/giteaadmin/secure" in out and "v9" in out
    # without the CA: a clear TLS error, no traceback
    code, out, err = run_cli(
        ["images", "--remote", "--registry", info.url, "--username", "giteaAdmin", "--password", "x"],
        home=idp_home,
    )
    assert code == 1 and "certificate" in err and "Traceback" not in err


def test_gitea_package_api_paged(gitea: FakeGitea) -> None:
    for i in range(120):
        gitea.add("giteaAdmin", f"app{i:03d}", "v1")
    gitea.add("giteaAdmin", "app000", "sha256:" + "a" * 64)  # untagged: not listed
    gitea.add("giteaAdmin", "npm-thing", "1.0.0", type="npm")
    gitea.add("someoneelse", "hidden", "v1")
    client = RegistryClient(gitea.host, RegistrySettings(), credential=Credential("giteaAdmin", "s3cret!:@"))
    rows = list_gitea_packages(client, f"http://{gitea.host}/api/v1", "giteaadmin")
    assert rows is not None and len(rows) == 120
    assert {r.repository for r in rows} == {f"giteaadmin/app{i:03d}" for i in range(120)}
    pages = [p for p in gitea.log if p.startswith("/api/v1/packages/giteaadmin")]
    assert len(pages) == 3  # 50 + 50 + 20


def test_gitea_package_api_needs_credentials(gitea: FakeGitea, idp_home: Path) -> None:
    code, out, err = run_cli(["images", "--remote", "--registry", f"http://{gitea.host}"], home=idp_home)
    assert code == 1 and "access denied" in err and "Traceback" not in err


def test_cli_remote_gitea_with_cluster_credentials_path_routing(tmp_path: Path, idp_home: Path) -> None:
    g = FakeGitea(username="giteaAdmin", password="pw-from-cluster", prefix="/gitea")
    kube = FakeKube(tmp_path / "kube")
    try:
        g.add("giteaAdmin", "myapp", "v1", created="2020-01-01T00:00:00Z")
        g.add("giteaAdmin", "myapp", "v2")
        g.add("giteaAdmin", "other", "latest")
        kube.put_secret(
            "gitea",
            "gitea-credential",
            {"username": "giteaAdmin", "password": "pw-from-cluster", "token": "unused"},
        )
        kube.set_localbuilds(
            [
                localbuild(
                    host="127.0.0.1",
                    port=g.port,
                    protocol="http",
                    path_routing=True,
                    external_url=f"http://127.0.0.1:{g.port}/gitea",
                )
            ]
        )
        cfg = kube.kubeconfig(tmp_path / "kubeconfig")
        code, out, err = run_cli(
            ["images", "--remote", "--format", "json", "myapp"], home=idp_home, env={"KUBECONFIG": str(cfg)}
        )
        assert code == 0, err
        doc = json.loads(out)
        assert [d["Name"] for d in doc] == [f"{g.host}/giteaadmin/myapp:v1", f"{g.host}/giteaadmin/myapp:v2"]
        assert doc[0]["Created"] == "2020-01-01T00:00:00Z"
        assert any(p.startswith("/gitea/api/v1/packages/giteaadmin?") for p in g.log)
        assert "pw-from-cluster" not in out + err
        code, out, err = run_cli(["images", "--remote"], home=idp_home, env={"KUBECONFIG": str(cfg)})
        assert code == 0, err
        assert "years ago" in out and f"{g.host}/giteaadmin/other" in out
    finally:
        g.stop()
        kube.stop()


@pytest.mark.parametrize(
    ("repo", "tag", "pattern", "ok"),
    [
        ("giteaadmin/app", "v1", None, True),
        ("giteaadmin/app", "v1", "app", True),
        ("giteaadmin/app", "v1", "giteaadmin/app:v1", True),
        ("giteaadmin/app", "v1", "giteaadmin/app:v2", False),
        ("giteaadmin/app", "v1", "h:1/giteaadmin/*", True),
        ("giteaadmin/app", "v1", "other", False),
    ],
)
def test_matches(repo: str, tag: str, pattern: str | None, ok: bool) -> None:
    assert matches("h:1", repo, tag, pattern) is ok


def test_insecure_trust_is_accepted(filled: RegistryInfo) -> None:
    client = _client(filled, trust=TrustConfig(insecure=True))
    assert {r.tag for r in list_v2(client, pattern="team/app-b")} == {"latest"}
