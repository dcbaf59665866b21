"""``idpbuilder cert export`` through the real CLI (subprocess) against the fake cluster."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from idpbuilder.cluster.certs import export_targets

from .kubefake import FakeKube, localbuild


def run_cli(
    args: list[str], *, home: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``idpbuilder ARGS`` with a clean environment: HOME and IDPBUILDER_HOME under ``home``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IDPBUILDER_", "KUBECONFIG", "DOCKER_CONFIG"))
    }
    env.update({"HOME": str(home), "IDPBUILDER_HOME": str(home / "idp")})
    env.update(extra_env or {})
    return subprocess.run(
        [sys.executable, "-m", "idpbuilder", *args], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.fixture
def cluster_with_ca(kube: FakeKube, kubeconfig: Path) -> FakeKube:
    kube.put_secret("default", "idpbuilder-cert", {"ca.crt": kube.certs.ca_pem.decode()})
    return kube


def test_export_to_stdout_and_cache(cluster_with_ca: FakeKube, kubeconfig: Path, tmp_path: Path) -> None:
    r = run_cli(["cert", "export"], home=tmp_path, extra_env={"KUBECONFIG": str(kubeconfig)})
    assert r.returncode == 0, r.stderr
    assert r.stdout == cluster_with_ca.certs.ca_pem.decode()
    cached = tmp_path / "idp" / "certs" / "gitea.cnoe.localtest.me:8443.pem"
    assert cached.read_bytes() == cluster_with_ca.certs.ca_pem


def test_export_docker_uses_discovered_host(
    cluster_with_ca: FakeKube, kubeconfig: Path, tmp_path: Path
) -> None:
    cluster_with_ca.set_localbuilds([localbuild(host="cnoe.example", port=9443)])
    r = run_cli(["cert", "export", "--docker", "--kubeconfig", str(kubeconfig)], home=tmp_path)
    assert r.returncode == 0, r.stderr
    target = tmp_path / ".docker" / "certs.d" / "gitea.cnoe.example:9443" / "ca.crt"
    assert r.stdout.strip() == str(target)
    assert target.read_bytes() == cluster_with_ca.certs.ca_pem


def test_export_output_file_and_registry_flag(
    cluster_with_ca: FakeKube, kubeconfig: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sub" / "ca.pem"
    r = run_cli(
        [
            "cert",
            "export",
            "-o",
            str(out),
            "--registry",
            "https://reg.example:5000",
            "--kubeconfig",
            str(kubeconfig),
        ],
        home=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == cluster_with_ca.certs.ca_pem
    assert (tmp_path / "idp" / "certs" / "reg.example:5000.pem").is_file()


@pytest.mark.skipif(os.geteuid() != 0, reason="writes /etc/containers/certs.d as root")
def test_export_podman_as_root(cluster_with_ca: FakeKube, kubeconfig: Path, tmp_path: Path) -> None:
    host = f"idp-test-{uuid.uuid4().hex[:8]}.example:8443"
    d = Path("/etc/containers/certs.d") / host
    try:
        r = run_cli(
            ["cert", "export", "--podman", "--registry", host, "--kubeconfig", str(kubeconfig)], home=tmp_path
        )
        assert r.returncode == 0, r.stderr
        assert (d / "ca.crt").read_bytes() == cluster_with_ca.certs.ca_pem
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_export_without_cluster_fails_clearly(tmp_path: Path) -> None:
    r = run_cli(["cert", "export"], home=tmp_path)  # no kubeconfig anywhere
    assert r.returncode == 1
    assert "Error: cannot read the idpbuilder CA: no kubeconfig found" in r.stderr
    assert "Hint:" in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""


def test_export_secret_absent_fails_clearly(kube: FakeKube, kubeconfig: Path, tmp_path: Path) -> None:
    r = run_cli(["cert", "export", "--kubeconfig", str(kubeconfig)], home=tmp_path)
    assert r.returncode == 1
    assert "secret default/idpbuilder-cert" in r.stderr and "not found" in r.stderr


def test_export_falls_back_to_cache(cluster_with_ca: FakeKube, kubeconfig: Path, tmp_path: Path) -> None:
    assert run_cli(["cert", "export", "--kubeconfig", str(kubeconfig)], home=tmp_path).returncode == 0
    cluster_with_ca.stop()
    r = run_cli(["cert", "export", "--kubeconfig", str(kubeconfig)], home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == cluster_with_ca.certs.ca_pem.decode()
    assert "exporting the cached CA" in r.stderr


def test_export_targets_rootless() -> None:
    t = export_targets("h:1", docker=True, podman=True, home=Path("/home/u"), euid=1000)
    assert t == [
        Path("/home/u/.docker/certs.d/h:1/ca.crt"),
        Path("/home/u/.config/containers/certs.d/h:1/ca.crt"),
    ]
