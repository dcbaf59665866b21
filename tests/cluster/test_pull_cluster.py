"""``idpbuilder pull`` uses the cluster like push does: Gitea credentials (after flags, environment and docker
config) and the idpbuilder CA for the idpbuilder registry, ``--kubeconfig``/``--context`` to find it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fixtures.cli import run_cli
from fixtures.plugin import BusyboxImage
from fixtures.registry import RegistryInfo, copy_to_registry
from idpbuilder.cluster.discovery import IdpCluster
from idpbuilder.cluster.kube import KubeOptions
from idpbuilder.store.layout import Store

from .idpenv import IdpEnv
from .kubefake import FakeKube, localbuild


def _pushed(idp: IdpEnv, home: Path, *, path_routing: bool = True) -> str:
    """Push myapp:v1 through the cluster; returns the registry reference it got."""
    idp.route(path_routing=path_routing)
    code, out, err = run_cli(["push", "myapp:v1"], home=home, env={"KUBECONFIG": str(idp.kubeconfig)})
    assert code == 0, err
    return out.strip().split("@", 1)[0]


def test_pull_private_image_with_cluster_credentials_and_ca(
    idp: IdpEnv, home_with_myapp: tuple[Path, str], tmp_path: Path
) -> None:
    home, digest = home_with_myapp
    ref = _pushed(idp, home)
    assert ref == f"localhost:{idp.port}/giteaadmin/myapp:v1"
    idp.token_server.anonymous_pull = False  # a private package: pulling needs the Gitea account
    idp.token_server.reset_counts()
    other = tmp_path / "pull-home"
    other.mkdir()
    code, out, err = run_cli(["pull", ref], home=other, env={"KUBECONFIG": str(idp.kubeconfig)})
    assert code == 0, err
    assert out.strip() == f"{ref}@{digest}"
    assert idp.password not in out + err
    store = Store.open(other)
    assert str(store.resolve(ref).digest) == digest
    store.close()
    # the CA came from the cluster (and is cached for the next run); the account from its secret
    assert (other / "certs" / f"localhost:{idp.port}.pem").read_text() == idp.ca.cert_file.read_text()
    assert any(
        r.user == "giteaAdmin" and any(s.endswith(":pull") for s in r.scopes)
        for r in idp.token_server.requests
    )
    # without the cluster the same pull cannot verify the registry's certificate
    code, out, err = run_cli(["pull", "--retries", "1", ref], home=tmp_path / "no-cluster-home")
    assert code == 1 and "--ca-file" in err and "Traceback" not in err


def test_pull_kubeconfig_and_context_flags(
    idp: IdpEnv, home_with_myapp: tuple[Path, str], tmp_path: Path
) -> None:
    home, digest = home_with_myapp
    ref = _pushed(idp, home)
    idp.token_server.anonymous_pull = False
    # a kubeconfig whose only context is not the current one (and not the kind-localdev default)
    cfg = idp.kube.kubeconfig(tmp_path / "other-kubeconfig", context="idp-test", current=None)
    other = tmp_path / "pull-home"
    other.mkdir()
    code, out, err = run_cli(["pull", "--retries", "1", "--kubeconfig", str(cfg), ref], home=other)
    assert code == 1, err  # context kind-localdev does not exist: no CA, no credentials
    code, out, err = run_cli(["pull", "--kubeconfig", str(cfg), "--context", "idp-test", ref], home=other)
    assert code == 0, err
    assert out.strip() == f"{ref}@{digest}"


def test_pull_flags_beat_the_cluster_secret(
    idp: IdpEnv, home_with_myapp: tuple[Path, str], tmp_path: Path
) -> None:
    home, _ = home_with_myapp
    ref = _pushed(idp, home)
    other = tmp_path / "pull-home"
    other.mkdir()
    code, out, err = run_cli(
        ["pull", "-u", "giteaAdmin", "-p", "wrong-password", ref],
        home=other,
        env={"KUBECONFIG": str(idp.kubeconfig)},
    )
    assert code == 1 and out == ""
    assert "invalid username or password" in err and "(they came from flags)" in err
    assert "wrong-password" not in err and idp.password not in err


def test_pull_from_another_registry_reads_no_cluster_secret(
    idp: IdpEnv,
    registry_factory: Callable[[str], RegistryInfo],
    busybox_image: BusyboxImage,
    tmp_path: Path,
) -> None:
    idp.route(path_routing=True)
    info = registry_factory("plain")
    copy_to_registry(busybox_image.oci_ref, info, "library/busybox:1")
    idp.kube.reset_log()
    code, out, err = run_cli(
        ["pull", info.ref("library/busybox:1")], home=tmp_path / "h", env={"KUBECONFIG": str(idp.kubeconfig)}
    )
    assert code == 0, err
    assert out.strip() == f"{info.ref('library/busybox:1')}@{busybox_image.digest}"
    assert not [r for r in idp.kube.requests if "/secrets/" in r[1]], idp.kube.requests


def test_docker_hub_is_never_the_idpbuilder_registry(
    kube: FakeKube, kubeconfig: Path, tmp_path: Path
) -> None:
    kube.set_localbuilds([localbuild(host="localhost", port=8443, path_routing=True)])
    cluster = IdpCluster(KubeOptions(kubeconfig=kubeconfig), home=tmp_path, env={})
    try:
        assert not cluster.is_idp_registry("docker.io")
        assert not kube.requests  # decided without asking the cluster (a docker.io pull never waits for it)
        assert cluster.is_idp_registry("localhost:8443")
        assert kube.requests
    finally:
        cluster.close()
