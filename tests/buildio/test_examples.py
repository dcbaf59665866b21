"""The example applications under examples/ build with idpbuilder and their images serve requests under podman.

static-site runs on the busybox base made by the fixtures (default suite); go-app and node-app need Debian
bases with ``golang-go`` / ``nodejs`` made here with mmdebstrap (cached in $IDPBUILDER_TEST_CACHE; skipped
with the reason when no Debian mirror answers) and are marked ``slow`` (several minutes together):
``pytest -m slow tests/buildio/test_examples.py``."""

from __future__ import annotations

import contextlib
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fixtures.cli import run_cli
from fixtures.debian_bases import DebianUnavailable, debian_rootfs_tar, install_rootfs_image
from fixtures.images import BUSYBOX_REF, make_busybox_store
from fixtures.podman import Podman

from .conftest import ok

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 60.0) -> str:
    """GET ``url``, retrying while the server starts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return str(r.read().decode())
        except (urllib.error.URLError, ConnectionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@contextlib.contextmanager
def _serving(podman: Podman, home: Path, ref: str, port: int) -> Iterator[str]:
    """The image running detached on the host network with PORT=port; yields the base URL."""
    image = podman.pull(f"oci:{home / 'store'}:{ref}")
    cid = podman("run", "-d", "--network", "host", "-e", f"PORT={port}", image).stdout.strip()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        logs = podman("logs", cid, check=False)
        podman("rm", "-f", "-t", "2", cid, check=False)
        print(logs.stdout, logs.stderr)


def _config(home: Path, ref: str) -> dict[str, Any]:
    from idpbuilder.digest import Digest
    from idpbuilder.store.layout import Store

    store = Store.open(home)
    try:
        manifest = store.read_json(store.resolve(ref).digest)
        cfg: dict[str, Any] = store.read_json(Digest.parse(manifest["config"]["digest"]))
        return cfg
    finally:
        store.close()


def _layer_names(home: Path, ref: str) -> set[str]:
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(dir=home) as d:
        subprocess.run(["umoci", "raw", "unpack", "--image", f"{home / 'store'}:{ref}", f"{d}/r"],
                       check=True, capture_output=True)  # fmt: skip
        return {str(p.relative_to(f"{d}/r")) for p in Path(f"{d}/r").rglob("*")}


def test_static_site(idp_home: Path, fresh_podman: Podman) -> None:
    make_busybox_store(idp_home, BUSYBOX_REF)
    ref = "localhost/examples/static-site:dev"
    ok(run_cli(["build", "-t", ref, str(EXAMPLES / "static-site")], home=idp_home))
    names = _layer_names(idp_home, ref)
    assert {"www/index.html", "www/about.html", "www/css/style.css"} <= names
    assert not any("draft" in n or n.endswith(".bak") or n.endswith("README.md") for n in names), names
    cfg = _config(idp_home, ref)
    assert cfg["config"]["User"] == "65534:65534"
    port = _free_port()
    with _serving(fresh_podman, idp_home, ref, port) as url:
        assert "Hello from a static site" in _get(url + "/")
        assert "examples/static-site" in _get(url + "/about.html")


def _debian_base(home: Path, packages: tuple[str, ...], ref: str) -> None:
    try:
        tar = debian_rootfs_tar(packages)
    except DebianUnavailable as e:
        pytest.skip(str(e))
    install_rootfs_image(home, tar, ref)


@pytest.mark.slow  # with node-app well over 2 minutes (bases packed from mmdebstrap tarballs, go build)
def test_go_app(idp_home: Path, fresh_podman: Podman) -> None:
    go_image = "localhost/examples/golang:bookworm"
    _debian_base(idp_home, ("ca-certificates", "golang-go"), go_image)
    make_busybox_store(idp_home, BUSYBOX_REF)
    ref = "localhost/examples/go-app:1.2.3"
    r = ok(run_cli(["build", "--progress", "plain", "-t", ref, "--build-arg", f"GO_IMAGE={go_image}",
                    "--build-arg", f"RUNTIME_IMAGE={BUSYBOX_REF}", "--build-arg", "VERSION=1.2.3",
                    str(EXAMPLES / "go-app")], home=idp_home, timeout=900))  # fmt: skip
    assert "go build" in r.stderr
    names = _layer_names(idp_home, ref)
    assert "usr/local/bin/go-app" in names and "src/main.go" not in names and "usr/bin/go" not in names
    port = _free_port()
    with _serving(fresh_podman, idp_home, ref, port) as url:
        assert _get(url + "/") == "hello from go-app 1.2.3\n"
        env = json.loads(_get(url + "/env"))
        assert env["uid"] == 65532 and env["version"] == "1.2.3"
    # a rebuild with nothing changed is all cached
    r = ok(run_cli(["build", "-t", ref, "--build-arg", f"GO_IMAGE={go_image}", "--build-arg",
                    f"RUNTIME_IMAGE={BUSYBOX_REF}", "--build-arg", "VERSION=1.2.3", str(EXAMPLES / "go-app")],
                   home=idp_home))  # fmt: skip
    assert "(5/7 steps cached)" in r.stderr, r.stderr  # all but the two FROMs


@pytest.mark.slow
def test_node_app(idp_home: Path, fresh_podman: Podman) -> None:
    node_image = "localhost/examples/node:bookworm"
    _debian_base(idp_home, ("nodejs",), node_image)
    args = ["--build-arg", f"NODE_IMAGE={node_image}", str(EXAMPLES / "node-app")]
    r = ok(run_cli(["build", "--progress", "plain", "--target", "test", *args], home=idp_home, timeout=600))
    assert "# pass 2" in r.stderr and "# fail 0" in r.stderr, r.stderr[-3000:]
    ref = "localhost/examples/node-app:dev"
    ok(run_cli(["build", "-t", ref, *args], home=idp_home, timeout=600))
    cfg = _config(idp_home, ref)
    assert cfg["config"]["User"] == "app"
    names = _layer_names(idp_home, ref)
    assert "app/server.js" in names and "app/test" not in names
    port = _free_port()
    with _serving(fresh_podman, idp_home, ref, port) as url:
        body = json.loads(_get(url + "/?name=ada"))
        assert body["message"] == "hello, ada" and body["uid"] == 10001, body
