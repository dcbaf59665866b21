"""The shared fixtures work: real registries seeded by skopeo, auth modes, the token server, the fault proxy,
the busybox image and the CLI runners."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import ssl
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest

from fixtures.cli import CliRunner
from fixtures.fault_proxy import FaultProxy
from fixtures.images import make_busybox_store
from fixtures.plugin import KINDS, BusyboxImage, RegistryKind
from fixtures.podman import Podman
from fixtures.registry import RegistryInfo, copy_to_registry, has_tag, skopeo, start_registry
from idpbuilder.image import Image, open_layer
from idpbuilder.oci import Platform
from idpbuilder.store.layout import Store


def _get(
    url: str, *, ca: Path | None = None, auth: tuple[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, method=method)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    ctx = ssl.create_default_context(cafile=str(ca)) if ca else None
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


# ---- registries -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_seeded_busybox_is_in_every_registry(
    kind: str, seeded_registries: dict[str, RegistryInfo], busybox_image: BusyboxImage
) -> None:
    info = seeded_registries[kind]
    out = skopeo("inspect", *info.skopeo_args(), f"docker://{info.ref('library/busybox:latest')}").stdout
    assert json.loads(out)["Digest"] == busybox_image.digest
    assert info.url.startswith("https://" if kind in ("tls", "token_tls") else "http://")


def test_tls_registry_denies_anonymous(seeded_registries: dict[str, RegistryInfo], tmp_path: Path) -> None:
    info = seeded_registries["tls"]
    status, headers, _ = _get(f"{info.url}/v2/", ca=info.ca_file)
    assert status == 401 and headers["Www-Authenticate"].startswith("Basic ")
    assert info.username and info.password
    assert _get(f"{info.url}/v2/", ca=info.ca_file, auth=(info.username, info.password))[0] == 200
    empty = tmp_path / "empty-auth.json"
    empty.write_text('{"auths": {}}')
    p = skopeo(
        "inspect",
        "--authfile",
        str(empty),
        "--cert-dir",
        str(info.cert_dir),
        f"docker://{info.ref('library/busybox:latest')}",
        check=False,
    )
    assert p.returncode != 0 and "authentication required" in p.stderr


def test_tls_registry_needs_its_ca(registry_tls: RegistryInfo) -> None:
    p = skopeo(
        "inspect",
        "--authfile",
        str(registry_tls.auth_json),
        f"docker://{registry_tls.ref('library/x:1')}",
        check=False,
    )
    assert p.returncode != 0 and "certificate" in p.stderr


@pytest.mark.parametrize("kind", ["token", "token_tls"])
def test_token_registry_challenge_points_at_token_server(
    kind: str, registry_token: RegistryInfo, registry_token_tls: RegistryInfo
) -> None:
    info = registry_token if kind == "token" else registry_token_tls
    assert info.token_server is not None
    status, headers, _ = _get(f"{info.url}/v2/", ca=info.ca_file)
    assert status == 401
    challenge = headers["Www-Authenticate"]
    assert challenge.startswith("Bearer ") and f'realm="{info.token_server.realm}"' in challenge
    assert 'service="container_registry"' in challenge
    assert info.token_server.realm.startswith("https://" if info.tls else "http://")


def test_token_server_wrong_password_is_401(registry_token_tls: RegistryInfo) -> None:
    ts = registry_token_tls.token_server
    assert ts is not None and registry_token_tls.username
    status, _, body = _get(
        f"{ts.realm}?service=container_registry",
        ca=registry_token_tls.ca_file,
        auth=(registry_token_tls.username, "wrong"),
    )
    assert status == 401 and json.loads(body)["errors"][0]["code"] == "UNAUTHORIZED"
    assert ts.count() == 1 and ts.requests[0].status == 401


def test_token_server_post_is_404_like_gitea(registry_token: RegistryInfo) -> None:
    ts = registry_token.token_server
    assert ts is not None
    assert _get(ts.realm, method="POST")[0] == 404
    assert ts.count(method="POST") == 1 and ts.count() == 0


def test_token_grants_requested_scope_and_anonymous_pull_only(registry_token: RegistryInfo) -> None:
    ts = registry_token.token_server
    assert ts is not None and registry_token.username and registry_token.password
    scope = "repository:team/app:pull,push"
    url = f"{ts.realm}?service=container_registry&scope={scope}"
    status, _, body = _get(url, auth=(registry_token.username, registry_token.password))
    assert status == 200 and set(json.loads(body)) == {"token"}  # Gitea sends only "token"
    claims = jwt.decode(json.loads(body)["token"], options={"verify_signature": False})
    assert claims["access"] == [{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}]
    assert claims["aud"] == "container_registry" and claims["sub"] == registry_token.username
    status, _, body = _get(url)
    anon = jwt.decode(json.loads(body)["token"], options={"verify_signature": False})
    assert status == 200 and anon["access"] == [
        {"type": "repository", "name": "team/app", "actions": ["pull"]}
    ]
    assert ts.count() == 2


def test_token_registry_accepts_our_tokens_end_to_end(
    seeded_registries: dict[str, RegistryInfo], busybox_image: BusyboxImage, tmp_path: Path
) -> None:
    info = seeded_registries["token_tls"]
    ts = info.token_server
    assert ts is not None
    skopeo("inspect", "--raw", *info.skopeo_args(), f"docker://{info.ref('library/busybox:latest')}")
    assert ts.count() == 1 and ts.requests[0].user == info.username
    empty = tmp_path / "empty-auth.json"
    empty.write_text('{"auths": {}}')
    anon = ["--authfile", str(empty), "--cert-dir", str(info.cert_dir)]
    # anonymous pull works, anonymous push is denied
    skopeo("inspect", "--raw", *anon, f"docker://{info.ref('library/busybox:latest')}")
    p = skopeo(
        "copy",
        "--dest-authfile",
        str(empty),
        "--dest-cert-dir",
        str(info.cert_dir),
        busybox_image.oci_ref,
        f"docker://{info.ref('anon/push:1')}",
        check=False,
    )
    assert p.returncode != 0 and "denied" in p.stderr


def test_private_registry_wipe_and_teardown(
    registry_factory: Callable[[RegistryKind], RegistryInfo], busybox_image: BusyboxImage
) -> None:
    info = registry_factory("plain")
    copy_to_registry(busybox_image.oci_ref, info, "wipe/me:1")
    assert has_tag(info, "wipe/me", "1")
    host = info.host
    info.wipe()
    assert info.host == host and not has_tag(info, "wipe/me", "1")
    assert _get(f"{info.url}/v2/")[0] == 200
    assert _get(f"{info.url}/v2/wipe/me/manifests/1")[0] == 404


def test_stop_kills_the_registry_process(tmp_path: Path) -> None:
    info = start_registry(tmp_path / "r", auth="htpasswd")
    assert info._server is not None
    pid = info._server.pid
    assert pid is not None
    os.kill(pid, 0)
    info.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(OSError):
        _get(f"{info.url}/v2/")


# ---- fault proxy ----------------------------------------------------------------------------------------------
def _upload(host: str, repo: str, data: bytes) -> int:
    """Monolithic POST+PUT upload through ``host``; returns the PUT status."""
    c = http.client.HTTPConnection(host, timeout=10)
    try:
        c.request("POST", f"/v2/{repo}/blobs/uploads/")
        r = c.getresponse()
        r.read()
        assert r.status == 202, r.status
        loc = r.headers["Location"]
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        c.request(
            "PUT", f"{loc}&digest={digest}", body=data, headers={"Content-Type": "application/octet-stream"}
        )
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def test_fault_proxy_answers_503_then_passes(fault_proxy: FaultProxy) -> None:
    url = fault_proxy.registry.url
    fault_proxy.fail_requests(2)
    for _ in range(2):
        status, headers, body = _get(f"{url}/v2/")
        assert status == 503 and json.loads(body)["errors"][0]["code"] == "UNAVAILABLE"
    assert _get(f"{url}/v2/")[0] == 200
    s = fault_proxy.stats
    assert (s.requests, s.injected_errors) == (3, 2)
    assert [r.injected for r in s.request_log] == [503, 503, None]


def test_fault_proxy_503_on_matching_upload_reads_the_body(fault_proxy: FaultProxy) -> None:
    data = os.urandom(300_000)
    fault_proxy.fail_requests(1, method="PUT", path_contains="/blobs/uploads/")
    assert _upload(fault_proxy.host, "proxy/503", data) == 503
    assert _upload(fault_proxy.host, "proxy/503", data) == 201
    assert fault_proxy.stats.injected_errors == 1


def test_fault_proxy_resets_upload_after_n_bytes(fault_proxy: FaultProxy) -> None:
    data = os.urandom(2_000_000)
    fault_proxy.reset_after(150_000, connections=1)
    with pytest.raises((ConnectionResetError, BrokenPipeError)):
        _upload(fault_proxy.host, "proxy/reset", data)
    s = fault_proxy.stats
    assert s.resets == 1 and s.bytes_up == 150_000  # the cut is exact, counted from the connection's start
    assert _upload(fault_proxy.host, "proxy/reset", data) == 201  # only K=1 connection is cut


def test_fault_proxy_resets_download(fault_proxy: FaultProxy) -> None:
    data = os.urandom(1_000_000)
    assert _upload(fault_proxy.host, "proxy/down", data) == 201
    blob = f"{fault_proxy.registry.url}/v2/proxy/down/blobs/sha256:{hashlib.sha256(data).hexdigest()}"
    fault_proxy.reset_after(200_000, direction="download")
    with pytest.raises((ConnectionResetError, http.client.IncompleteRead)):
        _get(blob)
    assert fault_proxy.stats.resets == 1
    assert _get(blob)[2] == data


def _chunked_put(host: str, repo: str, data: bytes) -> int:
    c = http.client.HTTPConnection(host, timeout=10)
    try:
        c.request("POST", f"/v2/{repo}/blobs/uploads/")
        r = c.getresponse()
        r.read()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        pieces = (data[i : i + 50_000] for i in range(0, len(data), 50_000))
        c.request("PUT", f"{r.headers['Location']}&digest={digest}", body=pieces, encode_chunked=True)
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def test_fault_proxy_body_limit_answers_413(fault_proxy: FaultProxy) -> None:
    fault_proxy.limit_body(200_000)
    assert _upload(fault_proxy.host, "proxy/limit", os.urandom(300_000)) == 413
    assert _chunked_put(fault_proxy.host, "proxy/limit", os.urandom(300_000)) == 413
    assert _upload(fault_proxy.host, "proxy/limit", os.urandom(100_000)) == 201
    assert _chunked_put(fault_proxy.host, "proxy/limit", os.urandom(100_000)) == 201
    s = fault_proxy.stats
    assert s.injected_errors == 2 and [r.injected for r in s.request_log if r.method == "PUT"] == [
        413,
        413,
        None,
        None,
    ]
    assert all(r.path.startswith("/v2/") for r in s.request_log)


def test_fault_proxy_throttles(fault_proxy: FaultProxy) -> None:
    import time

    fault_proxy.throttle(1_000_000)
    t0 = time.monotonic()
    assert _upload(fault_proxy.host, "proxy/slow", os.urandom(400_000)) == 201
    assert time.monotonic() - t0 >= 0.35
    fault_proxy.clear()
    t0 = time.monotonic()
    assert _upload(fault_proxy.host, "proxy/slow", os.urandom(400_000)) == 201
    assert time.monotonic() - t0 < 0.35


def test_fault_proxy_is_transparent_to_skopeo(fault_proxy: FaultProxy, busybox_image: BusyboxImage) -> None:
    copy_to_registry(busybox_image.oci_ref, fault_proxy.registry, "proxy/skopeo:1")
    out = skopeo(
        "inspect",
        *fault_proxy.registry.skopeo_args(),
        f"docker://{fault_proxy.registry.ref('proxy/skopeo:1')}",
    )
    assert json.loads(out.stdout)["Digest"] == busybox_image.digest
    assert fault_proxy.stats.requests >= 4 and fault_proxy.stats.resets == 0


def test_fault_proxy_raw_mode_in_front_of_tls(
    make_fault_proxy: Callable[[RegistryInfo], FaultProxy], seeded_registries: dict[str, RegistryInfo]
) -> None:
    proxy = make_fault_proxy(seeded_registries["tls"])
    info = proxy.registry
    skopeo("inspect", "--raw", *info.skopeo_args(), f"docker://{info.ref('library/busybox:latest')}")
    proxy.reset_after(100, direction="download")
    p = skopeo(
        "inspect", "--raw", *info.skopeo_args(), f"docker://{info.ref('library/busybox:latest')}", check=False
    )
    assert p.returncode != 0 and proxy.stats.resets == 1


# ---- busybox --------------------------------------------------------------------------------------------------
def test_busybox_is_deterministic_and_complete(busybox_image: BusyboxImage, tmp_path: Path) -> None:
    assert busybox_image.install(tmp_path / "other") == busybox_image.digest
    assert str(make_busybox_store(tmp_path / "other").digest) == busybox_image.digest
    store = Store(busybox_image.store, home=busybox_image.home)
    img = Image.load(store, store.resolve(busybox_image.ref))
    assert img.config["config"]["Cmd"] == ["sh"] and img.config["os"] == "linux"
    assert img.platform.architecture == Platform.host().architecture
    with open_layer(store, img.layers[0].descriptor) as f, tarfile.open(fileobj=f, mode="r|") as tar:
        members = {m.name: m for m in tar}
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "/bin/busybox"
    assert members["bin/busybox"].isfile() and members["bin/busybox"].mode == 0o755
    assert members["tmp"].mode == 0o1777 and members["root"].mode == 0o700
    assert all(m.uid == 0 and m.gid == 0 and m.uname == "" for m in members.values())
    assert "usr/bin/wget" in members and "sbin/ifconfig" in members
    store.close()
    p = skopeo("inspect", "--config", busybox_image.oci_ref)
    cfg = json.loads(p.stdout)
    assert cfg["config"]["Env"][0].startswith("PATH=")


def test_busybox_passwd_and_group(busybox_image: BusyboxImage) -> None:
    store = Store(busybox_image.store, home=busybox_image.home)
    img = Image.load(store, store.resolve(busybox_image.ref))
    files: dict[str, str] = {}
    with open_layer(store, img.layers[0].descriptor) as f, tarfile.open(fileobj=f, mode="r|") as tar:
        for m in tar:
            if m.name in ("etc/passwd", "etc/group"):
                fo = tar.extractfile(m)
                assert fo is not None
                files[m.name] = fo.read().decode()
    store.close()
    assert "root:x:0:0:" in files["etc/passwd"] and "daemon:x:1:1:" in files["etc/passwd"]
    assert "nobody:x:65534:65534:" in files["etc/passwd"]
    assert "daemon:x:1:" in files["etc/group"] and "nobody:x:65534:" in files["etc/group"]


def test_busybox_runs_under_podman_from_a_registry(
    podman: Podman, seeded_registries: dict[str, RegistryInfo]
) -> None:
    info = seeded_registries["token_tls"]
    image = podman.pull(f"docker://{info.ref('library/busybox:latest')}", *info.skopeo_args())
    out = podman.run(image, "sh", "-c", "id -u nobody; stat -c %a /tmp; echo $PATH").stdout.split()
    assert out == ["65534", "1777", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


# ---- CLI runners ----------------------------------------------------------------------------------------------
def test_cli_runs_subprocess_and_in_process(cli: CliRunner, idp_home: Path) -> None:
    code, out, err = cli("--version")
    assert code == 0 and "idpbuilder" in out
    assert cli.main("--version") == (code, out, err)
    assert cli("no-such-command").code == 2
    assert cli.main("no-such-command").code == 2
    assert list(idp_home.iterdir()) == []


def test_cli_environment_is_hermetic(idp_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fixtures.cli import hermetic_env

    monkeypatch.setenv("IDPBUILDER_REGISTRY_PASSWORD", "leak")
    monkeypatch.setenv("DOCKER_CONFIG", "/nonexistent")
    env = hermetic_env(idp_home, extra={"X": "1"})
    assert "IDPBUILDER_REGISTRY_PASSWORD" not in env and "DOCKER_CONFIG" not in env
    assert env["IDPBUILDER_HOME"] == str(idp_home) and env["X"] == "1"
    assert Path(env["HOME"]).is_dir() and Path(env["HOME"]) != Path.home()


def test_token_server_knobs_and_per_test_defaults(registry_token: RegistryInfo) -> None:
    ts = registry_token.token_server
    assert ts is not None and ts.answer_keys == ("token",) and ts.anonymous_pull
    ts.answer_keys = ("access_token", "expires_in")
    ts.anonymous_pull = False
    status, _, body = _get(f"{ts.realm}?scope=repository:a/b:pull")
    answer = json.loads(body)
    assert status == 200 and set(answer) == {"access_token", "expires_in"}
    assert jwt.decode(answer["access_token"], options={"verify_signature": False})["access"] == []
    ts.restore_defaults()
    assert tuple(ts.answer_keys) == ("token",) and ts.anonymous_pull and ts.count() == 0


_ORPHAN = """
import sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from fixtures.registry import start_registry
info = start_registry(Path(sys.argv[2]), auth="token")
print(info._server.pid, flush=True)
time.sleep(60)
"""


def test_registry_dies_with_a_killed_test_process(tmp_path: Path) -> None:
    """Even when pytest itself is SIGKILLed (no teardown, no atexit), the registry does not outlive it."""
    import subprocess
    import sys
    import time

    tests_dir = str(Path(__file__).resolve().parent)
    parent = subprocess.Popen([sys.executable, "-c", _ORPHAN, tests_dir, str(tmp_path / "r")], stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    os.kill(pid, 0)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    pytest.fail(f"registry pid {pid} outlived its parent")
