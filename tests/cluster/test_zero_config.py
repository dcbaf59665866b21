"""End to end: ``idpbuilder push myapp:v1`` with nothing but ``KUBECONFIG`` set.

The fake cluster (mTLS) hands out the registry location (``localbuilds``), the Gitea admin credentials
(``gitea/gitea-credential``) and the CA (``default/idpbuilder-cert``); the registry is the real
docker-registry behind TLS signed by that CA, in token mode with the Gitea-like token server. The result is
checked with skopeo, trusting the same CA.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.certs import CertPair, TestCA, make_signing_cert
from fixtures.cli import run_cli
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


def _push(home: Path, *args: str, env: dict[str, str]) -> tuple[int, str, str]:
    code, out, err = run_cli(["push", *args], home=home, env=env)
    return code, out, err


def test_push_short_name_domain_routing(
    idp: IdpEnv, gitea_localhost: str, home_with_myapp: tuple[Path, str]
) -> None:
    home, digest = home_with_myapp
    host = idp.route(path_routing=False)
    code, out, err = _push(home, "myapp:v1", env={"KUBECONFIG": str(idp.kubeconfig)})
    assert code == 0, err
    assert out.strip() == f"{host}/giteaadmin/myapp:v1@{digest}"
    assert idp.password not in out + err
    doc = idp.skopeo_inspect(f"{host}/giteaadmin/myapp:v1")
    assert doc["Digest"] == digest
    # the CA was cached where the next run (and `cert export`) finds it
    assert (home / "certs" / f"{host}.pem").read_text() == idp.ca.cert_file.read_text()
    # credentials came from the cluster: the token server saw giteaAdmin with push scope
    assert any(
        r.user == "giteaAdmin" and any("push" in s for s in r.scopes) for r in idp.token_server.requests
    )


def test_push_short_name_path_routing(idp: IdpEnv, home_with_myapp: tuple[Path, str]) -> None:
    home, digest = home_with_myapp
    host = idp.route(path_routing=True)
    code, out, err = _push(home, "myapp:v1", f"{host}/myapp:v2", env={"KUBECONFIG": str(idp.kubeconfig)})
    assert code == 0, err
    assert out.strip() == f"{host}/giteaadmin/myapp:v2@{digest}"
    assert idp.skopeo_inspect(f"{host}/giteaadmin/myapp:v2")["Digest"] == digest


def test_gitea_name_rule_checked_before_upload(idp: IdpEnv, home_with_myapp: tuple[Path, str]) -> None:
    home, _ = home_with_myapp
    idp.route(path_routing=True)
    idp.token_server.reset_counts()
    code, out, err = _push(home, "myapp:v1", "my__app:v1", env={"KUBECONFIG": str(idp.kubeconfig)})
    assert code == 1 and "Gitea rejects the image name 'my__app'" in err and "Traceback" not in err
    assert idp.token_server.requests == []  # nothing was sent


def test_cluster_unreachable_falls_back_to_default_with_clear_error(
    idp: IdpEnv, home_with_myapp: tuple[Path, str], tmp_path: Path
) -> None:
    home, _ = home_with_myapp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    cfg = idp.kube.kubeconfig(tmp_path / "dead-kubeconfig", server=f"https://127.0.0.1:{dead}")
    code, out, err = run_cli(
        ["-l", "debug", "push", "--retries", "1", "myapp:v1"], home=home, env={"KUBECONFIG": str(cfg)}
    )
    assert code == 1
    assert "not using the idpbuilder cluster" in err and "unreachable" in err
    assert "gitea.cnoe.localtest.me:8443" in err  # the documented default registry
    code, out, err = run_cli(["push", "--retries", "1", "myapp:v1"], home=home, env={"KUBECONFIG": str(cfg)})
    assert code == 1 and out == ""
    assert "INFO pushing to gitea.cnoe.localtest.me:8443/giteaadmin/myapp:v1 " in err  # the final reference
    assert "Error: cannot resolve registry host gitea.cnoe.localtest.me:8443" in err
    assert "Hint:" in err and "Traceback" not in err and "DEBUG" not in err


def test_env_registry_with_cluster_down_uses_flags_and_env(
    idp: IdpEnv, home_with_myapp: tuple[Path, str], tmp_path: Path
) -> None:
    home, digest = home_with_myapp
    idp.kube.stop()  # cluster gone: registry, credentials and CA come from the environment
    env = {
        "KUBECONFIG": str(idp.kubeconfig),
        "IDPBUILDER_REGISTRY_URL": f"https://localhost:{idp.port}",
        "IDPBUILDER_REGISTRY_USERNAME": "giteaAdmin",
        "IDPBUILDER_REGISTRY_PASSWORD": idp.password,
        "IDPBUILDER_CA_FILE": str(idp.ca.cert_file),
    }
    code, out, err = _push(home, "myapp:v1", env=env)
    assert code == 0, err
    assert out.strip() == f"localhost:{idp.port}/giteaadmin/myapp:v1@{digest}"


def test_no_ca_anywhere_gives_tls_hint(idp: IdpEnv, home_with_myapp: tuple[Path, str]) -> None:
    home, _ = home_with_myapp
    idp.route(path_routing=True)
    idp.kube.remove("/api/v1/namespaces/default/secrets/idpbuilder-cert")
    code, out, err = _push(home, "--retries", "1", "myapp:v1", env={"KUBECONFIG": str(idp.kubeconfig)})
    assert code == 1
    assert "certificate" in err and "--ca-file" in err and "--insecure" in err and "cert export" in err
    assert "Traceback" not in err
