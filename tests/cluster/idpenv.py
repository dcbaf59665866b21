"""The fake idpbuilder installation shared by the zero-configuration tests (push and pull).

The fake cluster (mTLS) hands out the registry location (``localbuilds``), the Gitea admin credentials
(``gitea/gitea-credential``) and the CA (``default/idpbuilder-cert``); the registry is the real
docker-registry behind TLS signed by that CA, in token mode with the Gitea-like token server. Fixtures
(``gitea_localhost``, ``idp``, ``home_with_myapp``) are registered in conftest.py.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.certs import CertPair, TestCA, make_signing_cert
from fixtures.images import make_busybox_store
from fixtures.registry import (
    TOKEN_ISSUER,
    TOKEN_SERVICE,
    RegistryServer,
    skopeo,
    write_auth_json,
    write_cert_dir,
)
from fixtures.token_server import TokenServer

from .kubefake import FakeKube, localbuild

__all__ = ["DOMAIN_HOST", "IdpEnv", "gitea_localhost", "home_with_myapp", "idp"]

DOMAIN_HOST = "gitea.localhost"  # domain routing for CR host "localhost"
HOSTS_FILE = Path("/etc/hosts")
MARKER = "# idpbuilder-tests"


def _resolves(name: str) -> bool:
    try:
        return any(a[4][0] == "127.0.0.1" for a in socket.getaddrinfo(name, None, socket.AF_INET))
    except OSError:
        return False


@pytest.fixture(scope="session")
def gitea_localhost() -> Iterator[str]:
    """Make ``gitea.localhost`` resolve to 127.0.0.1 (an /etc/hosts line, removed again afterwards)."""
    if _resolves(DOMAIN_HOST):
        yield DOMAIN_HOST
        return
    line = f"127.0.0.1 {DOMAIN_HOST} {MARKER}-{os.getpid()}\n"
    try:
        with HOSTS_FILE.open("a") as f:
            f.write(line)
    except OSError as e:
        pytest.skip(f"cannot make {DOMAIN_HOST} resolve: {e}")
    try:
        yield DOMAIN_HOST
    finally:
        # remove only our own line; the file may be a bind mount, so rewrite it in place
        text = HOSTS_FILE.read_text()
        HOSTS_FILE.write_text("".join(ln for ln in text.splitlines(keepends=True) if ln != line))


class _IdpCA(TestCA):
    """A CA whose server certificates also name gitea.localhost (the ingress name under domain routing)."""

    __test__ = False

    def issue_server(
        self,
        name: str,
        *,
        dns: tuple[str, ...] = ("localhost", DOMAIN_HOST),
        ips: tuple[str, ...] = ("127.0.0.1",),
    ) -> CertPair:
        return super().issue_server(name, dns=dns, ips=ips)


class IdpEnv:
    """The fake idpbuilder installation: cluster + TLS token registry + a kubeconfig."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = _IdpCA(root / "ca", name="cnoe.io idpbuilder test CA")
        self.password = "Gitea-Pw!#$%&'()*+,-./:;<=>?@[]^_{|}~"
        signer = make_signing_cert(root / "token")
        self.token_server = TokenServer(
            signer=signer,
            issuer=TOKEN_ISSUER,
            service=TOKEN_SERVICE,
            username="giteaAdmin",
            password=self.password,
            tls=self.ca.issue_server("token-server"),
        )
        self.token_server.start()
        self.registry = RegistryServer(
            root / "registry",
            tls=True,
            auth="token",
            username="giteaAdmin",
            password=self.password,
            ca=self.ca,
            token_server=self.token_server,
            signer_cert=signer.cert_file,
        )
        (root / "registry").mkdir(parents=True, exist_ok=True)
        self.registry.start()
        self.kube = FakeKube(root / "kube")
        self.kube.put_secret(
            "gitea",
            "gitea-credential",
            {"username": "giteaAdmin", "password": self.password, "token": "not-a-valid-token"},
        )
        self.kube.put_secret("default", "idpbuilder-cert", {"ca.crt": self.ca.cert_file.read_text()})
        self.kubeconfig = self.kube.kubeconfig(root / "kubeconfig")

    @property
    def port(self) -> int:
        return self.registry.port

    def route(self, *, path_routing: bool) -> str:
        """Publish the CR for host ``localhost`` and return the registry host clients must use."""
        self.kube.set_localbuilds([localbuild(host="localhost", port=self.port, path_routing=path_routing)])
        return f"localhost:{self.port}" if path_routing else f"{DOMAIN_HOST}:{self.port}"

    def skopeo_inspect(self, ref: str) -> dict[str, object]:
        host = ref.split("/", 1)[0]
        cert_dir = write_cert_dir(self.root / "certs.d" / host, self.ca.cert_file)
        auth = write_auth_json(self.root / "auth.json", host, "giteaAdmin", self.password)
        out = skopeo(
            "inspect", "--cert-dir", str(cert_dir), "--authfile", str(auth), f"docker://{ref}"
        ).stdout
        doc: dict[str, object] = json.loads(out)
        return doc

    def stop(self) -> None:
        self.registry.stop()
        self.token_server.stop()
        self.kube.stop()


@pytest.fixture
def idp(tmp_path: Path) -> Iterator[IdpEnv]:
    env = IdpEnv(tmp_path / "idp-env")
    yield env
    env.stop()


@pytest.fixture
def home_with_myapp(idp_home: Path) -> tuple[Path, str]:
    desc = make_busybox_store(idp_home, "myapp:v1")
    return idp_home, str(desc.digest)
