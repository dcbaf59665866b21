"""push/pull through the real CLI against real docker-registry servers (plain, TLS+basic, token, TLS+token)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from regkit import make_image, make_index, unique

from fixtures.cli import CliRunner
from fixtures.fault_proxy import FaultProxy
from fixtures.registry import RegistryInfo
from idpbuilder.store.layout import Store

SRC = "example.com/src/app:v1"


def skopeo_inspect(info: RegistryInfo, ref: str, *, raw: bool = False) -> Any:
    args = ["skopeo", "inspect", *(["--raw"] if raw else []), *info.skopeo_args(), f"docker://{ref}"]
    p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.fixture
def image(idp_home: Path) -> str:
    """A 2-layer image in the test's store; returns its manifest digest."""
    return str(make_image(idp_home, SRC, [300_000, 40_000]).digest)


@pytest.mark.parametrize("kind", ["plain", "tls", "token", "token_tls"])
def test_push_to_every_kind_then_warm_push(
    kind: str, request: pytest.FixtureRequest, cli: CliRunner, image: str
) -> None:
    info: RegistryInfo = request.getfixturevalue(f"registry_{kind}")
    dest = info.ref(f"{unique('push')}/app:v1")
    code, out, err = cli("push", "--progress", "plain", *info.cli_args(), SRC, dest)
    assert code == 0, err
    assert out.strip() == f"{dest}@{image}"
    assert skopeo_inspect(info, dest)["Digest"] == image
    assert re.search(r"pushed 3 blobs \(.*\) in [\d.]+ s", err), err  # config + 2 layers
    # warm: the tag already points at this manifest -> nothing is uploaded
    code, out2, err2 = cli("push", "--progress", "plain", *info.cli_args(), SRC, dest)
    assert code == 0, err2
    assert out2 == out
    assert "pushed 0 blobs" in err2 and "3 already present" in err2
    if info.token_server is not None:
        scopes = {s for r in info.token_server.requests for s in r.scopes}
        repo = dest.split("/", 1)[1].rsplit(":", 1)[0]
        assert f"repository:{repo}:pull,push" in scopes
        # the token is cached per scope: a handful of token requests, not one per blob
        assert info.token_server.count() <= 4


def test_env_credentials_and_insecure(registry_tls: RegistryInfo, cli: CliRunner, image: str) -> None:
    dest = registry_tls.ref(f"{unique('env')}/app:v1")
    env = registry_tls.env()  # IDPBUILDER_REGISTRY_USERNAME/PASSWORD + IDPBUILDER_CA_FILE
    code, out, err = cli("push", "--progress", "quiet", SRC, dest, env=env)
    assert code == 0, err
    assert out.strip() == f"{dest}@{image}" and err == ""
    # --insecure skips verification: works without the CA
    env.pop("IDPBUILDER_CA_FILE")
    code, out, err = cli("push", "--insecure", "--progress", "quiet", SRC, dest, env=env)
    assert code == 0, err


def test_docker_config_credentials(registry_tls: RegistryInfo, cli: CliRunner, image: str) -> None:
    dest = registry_tls.ref(f"{unique('cfg')}/app:v1")
    code, _, err = cli(
        "push",
        "--ca-file",
        str(registry_tls.ca_file),
        SRC,
        dest,
        env={"REGISTRY_AUTH_FILE": str(registry_tls.auth_json)},
    )
    assert code == 0, err


def test_unknown_ca_bad_password_missing_image(
    registry_tls: RegistryInfo, registry_token: RegistryInfo, cli: CliRunner, image: str
) -> None:
    dest = registry_tls.ref(f"{unique('err')}/app:v1")
    code, out, err = cli("push", "--username", "giteaAdmin", "--password", "x", SRC, dest)
    assert code == 1 and out == ""
    assert "certificate" in err and "--ca-file" in err and "--insecure" in err and "Traceback" not in err
    code, _, err = cli(
        "push",
        "--username",
        registry_tls.username or "",
        "--password",
        "wrong-password",
        "--ca-file",
        str(registry_tls.ca_file),
        SRC,
        dest,
    )
    assert code == 1 and "Hint:" in err and "Traceback" not in err
    # wrong password against a token registry: exactly one token request, no retry
    registry_token.token_server.reset_counts()  # type: ignore[union-attr]
    code, _, err = cli(
        "push",
        "--username",
        "giteaAdmin",
        "--password",
        "wrong-password",
        SRC,
        registry_token.ref(f"{unique('err')}/app:v1"),
        env={"IDPBUILDER_RETRY_BASE_DELAY": "0.01"},
    )
    assert code == 1 and "invalid username or password" in err and "Hint:" in err
    assert registry_token.token_server.count() == 1  # type: ignore[union-attr]
    assert "attempt" not in err
    # not in the local store -> 2
    code, _, err = cli("push", "example.com/absent:v1", dest)
    assert code == 2 and "not in the local store" in err
    # anonymous push to an auth registry -> 1 with a hint to pass credentials
    code, _, err = cli("push", "--ca-file", str(registry_tls.ca_file), SRC, dest)
    assert code == 1 and "requires authentication" in err and "--username" in err


def test_pull_seeded_then_present_and_missing(
    seeded_registries: dict[str, RegistryInfo], busybox_image: Any, cli: CliRunner, idp_home: Path
) -> None:
    for kind in ("plain", "token_tls"):
        info = seeded_registries[kind]
        ref = info.ref("library/busybox:latest")
        code, out, err = cli("pull", "--progress", "plain", *info.cli_args(), ref)
        assert code == 0, err
        assert out.strip() == f"{ref}@{busybox_image.digest}"
        store = Store.open(idp_home)
        assert store.resolve(ref).digest.hex == busybox_image.digest.split(":")[1]
        store.close()
    # the blobs are shared: the second registry's pull found them present
    assert "already present" in err
    info = seeded_registries["plain"]
    by_digest = info.ref(f"library/busybox@{busybox_image.digest}")
    code, out, err = cli("pull", by_digest)
    assert code == 0 and out.strip() == by_digest, err
    code, _, err = cli("pull", info.ref("library/busybox@sha256:" + "0" * 64))
    assert code == 2
    code, _, err = cli("pull", info.ref("library/nothere:latest"))
    assert code == 2 and "Error:" in err
    code, _, err = cli("pull", info.ref("library/busybox:nosuchtag"))
    assert code == 2
    code, _, err = cli("pull", "--platform", "linux/s390x", info.ref("library/busybox:latest"))
    assert code == 2 and "s390x" in err


def test_pull_index_picks_platform(
    registry_plain: RegistryInfo, cli: CliRunner, idp_home: Path, tmp_path: Path, image: str
) -> None:
    make_index(idp_home, "example.com/src/multi:v1", SRC)
    dest = registry_plain.ref(f"{unique('idx')}/multi:v1")
    code, out, err = cli("push", "example.com/src/multi:v1", dest)
    assert code == 0, err
    raw = skopeo_inspect(registry_plain, dest, raw=True)
    assert raw["mediaType"] == "application/vnd.oci.image.index.v1+json"
    other = CliRunner(tmp_path / "other-home")
    (tmp_path / "other-home").mkdir()
    code, out, err = other("pull", dest)
    assert code == 0, err
    store = Store.open(tmp_path / "other-home")
    assert str(store.resolve(dest).digest) == image  # the platform manifest, not the index
    store.close()


def test_chunked_mount_and_order_through_proxy(
    fault_proxy: FaultProxy, cli: CliRunner, idp_home: Path
) -> None:
    info = fault_proxy.registry
    digest = str(make_image(idp_home, SRC, [700_000, 20_000]).digest)
    make_index(idp_home, "example.com/src/multi:v1", SRC)
    repo_a = unique("chunk")
    dest = info.ref(f"{repo_a}/app:v1")
    fault_proxy.reset_stats()
    code, out, err = cli("push", "--chunk-size", "256k", SRC, dest)
    assert code == 0, err
    log = fault_proxy.stats.request_log
    patches = [r for r in log if r.method == "PATCH"]
    assert len(patches) >= 3  # ~700 kB in 256 KiB chunks
    assert skopeo_inspect(info, dest)["Digest"] == digest
    # a second repository of the same registry: the blobs are mounted, not uploaded again
    fault_proxy.reset_stats()
    dest_b = info.ref(f"{unique('mount')}/app:v1")
    code, out, err = cli("push", "--progress", "plain", SRC, dest_b)
    assert code == 0, err
    log = fault_proxy.stats.request_log
    assert any(r.method == "POST" and f"from={repo_a}" in r.path for r in log)
    assert not [r for r in log if r.method in ("PATCH", "PUT") and "/blobs/" in r.path]
    assert "3 mounted" in err
    # an index: its child manifest goes up by digest before the index under the tag
    fault_proxy.reset_stats()
    dest_i = info.ref(f"{unique('order')}/multi:v1")
    code, out, err = cli("push", "example.com/src/multi:v1", dest_i)
    assert code == 0, err
    puts = [r.path for r in fault_proxy.stats.request_log if r.method == "PUT" and "/manifests/" in r.path]
    assert len(puts) == 2 and puts[0].endswith(f"/manifests/{digest}") and puts[1].endswith("/manifests/v1")


def test_push_from_oci_layout_dir(registry_plain: RegistryInfo, busybox_image: Any, cli: CliRunner) -> None:
    dest = registry_plain.ref(f"{unique('layout')}/busybox:1")
    code, out, err = cli("push", busybox_image.oci_ref, dest)
    assert code == 0, err
    assert out.strip() == f"{dest}@{busybox_image.digest}"
    # a layout path with one image and the source's full name as the destination
    code, out, err = cli("push", str(busybox_image.store), registry_plain.ref("library/busybox-copy:1"))
    assert code == 0, err
    code, out, err = cli("push", f"oci:{busybox_image.store}:nosuchtag", dest)
    assert code == 2


def test_progress_modes(registry_plain: RegistryInfo, cli: CliRunner, image: str) -> None:
    dest = registry_plain.ref(f"{unique('prog')}/app:v1")
    code, out, err = cli("push", "--progress", "plain", SRC, dest)
    assert code == 0
    lines = err.strip().splitlines()
    assert any(re.match(r"[0-9a-f]{12}: pushing layer \d \(\d", ln) for ln in lines), err
    assert any(re.match(r"[0-9a-f]{12}: pushed .* in [\d.]+ s \(.*/s\)", ln) for ln in lines), err
    assert lines[-1].startswith("pushed 0 blobs") or lines[-1].startswith("pushed 3 blobs")
    code, out, err = cli("push", "--progress", "quiet", SRC, dest)
    assert code == 0 and err == "" and out.startswith(dest)


def test_push_from_docker_archive(
    registry_plain: RegistryInfo, cli: CliRunner, image: str, tmp_path: Path
) -> None:
    tar = tmp_path / "app.tar"
    cli("save", "-o", str(tar), SRC).check()
    dest = registry_plain.ref(f"{unique('archive')}/app:v1")
    code, out, err = cli("push", str(tar), dest)
    assert code == 0, err
    pushed = out.strip().rsplit("@", 1)[1]
    assert skopeo_inspect(registry_plain, dest)["Digest"] == pushed
    assert not list((cli.home / "tmp").glob("push-archive-*"))  # the temporary store is gone
    # without DEST the archive's own full name is the destination
    own = registry_plain.ref(f"{unique('archive-own')}/app:v2")
    cli("tag", SRC, own).check()
    tar2 = tmp_path / "own.tar"
    cli("save", "-o", str(tar2), own).check()
    code, out, err = cli("push", str(tar2))
    assert code == 0, err
    assert out.startswith(own + "@")


def test_token_scope_upgrade_and_preemptive_auth(registry_token: RegistryInfo, idp_home: Path) -> None:
    """pull token first, then a push needs pull,push: a new token is fetched (not the cached pull one)."""
    from idpbuilder.credentials.keychain import Credential, StaticKeychain
    from idpbuilder.registry.client import RegistryClient
    from idpbuilder.registry.retry import RetryPolicy
    from idpbuilder.registry.settings import RegistrySettings

    desc = make_image(idp_home, SRC, [30_000])
    store = Store.open(idp_home)
    manifest = store.read_json(desc.digest)
    layer = manifest["layers"][0]
    from idpbuilder.digest import Digest

    d = Digest.parse(layer["digest"])
    cred = Credential(username=registry_token.username, password=registry_token.password, source="test")
    settings = RegistrySettings(keychain=StaticKeychain(cred), retry=RetryPolicy(attempts=2, base_delay=0.01))
    client = RegistryClient(registry_token.host, settings)
    repo = f"{unique('scope')}/app"
    ts = registry_token.token_server
    assert ts is not None
    ts.reset_counts()
    assert client.blob_exists(repo, d) is False  # pull scope
    assert client.upload_blob(repo, d, int(layer["size"]), store.blob_path(d)) == "pushed"
    assert client.blob_exists(repo, d) is True  # the cached pull token is reused
    scopes = [r.scopes for r in ts.requests]
    assert scopes == [(f"repository:{repo}:pull",), (f"repository:{repo}:pull,push",)]
    # once the challenge is known every request carried credentials: no 401 was needed for the upload
    assert client.auth.token_requests == 2
    # a request sent with too small a scope: the 401 names pull,push and a wider token is fetched
    from idpbuilder.registry.auth import scope_for

    repo2 = f"{unique('upgrade')}/app"
    resp = client.request(
        "POST",
        f"{client.base_url}/v2/{repo2}/blobs/uploads/",
        scopes=(scope_for(repo2, "pull"),),
        what="test",
        follow_redirects=False,
    )
    assert resp.status == 202
    resp.release_conn()
    assert ts.requests[-1].scopes == (f"repository:{repo2}:pull,push",)
    client.close()
    store.close()
