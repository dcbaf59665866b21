"""``build --push`` in the zero-configuration flow: the cluster is named with ``--kubeconfig`` and
``--kube-context`` (``--context`` is the build context), the registry, credentials and CA come from it,
and so do those of a FROM image in the idpbuilder registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fixtures.cli import run_cli
from fixtures.images import make_busybox_store

from .idpenv import IdpEnv


def _ctx(root: Path, dockerfile: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(dockerfile)
    (root / "app.txt").write_text("app\n")
    return root


def test_build_push_with_kubeconfig_and_kube_context(
    idp: IdpEnv, idp_home: Path, busybox_image: Any, tmp_path: Path
) -> None:
    busybox_image.install(idp_home)
    host = idp.route(path_routing=True)
    # the context the cluster is under is not the kubeconfig's current one: only the flag finds it
    cfg = idp.kube.kubeconfig(tmp_path / "kubeconfig", context="idp-test", current=None)
    ctx = _ctx(tmp_path / "src", "FROM busybox\nCOPY app.txt /app.txt\n")
    args = ["build", "--push", "-q", "-t", "myapp:v1", "--kubeconfig", str(cfg)]
    r = run_cli([*args, "--kube-context", "idp-test", "--context", str(ctx)], home=idp_home)
    assert r.code == 0, r.stderr
    image_id, pinned = r.stdout.split()
    assert pinned.startswith(f"{host}/giteaadmin/myapp:v1@sha256:"), r.stdout
    assert idp.password not in r.stdout + r.stderr
    assert idp.skopeo_inspect(f"{host}/giteaadmin/myapp:v1")["Digest"] == pinned.split("@", 1)[1]
    # without --kube-context the cluster is not found: the default registry is tried (and not there)
    r = run_cli([*args, "--retries", "1", "--context", str(ctx)], home=idp_home)
    assert r.code == 1 and "gitea.cnoe.localtest.me:8443" in r.stderr and "Traceback" not in r.stderr


def test_build_from_the_idpbuilder_registry_uses_cluster_credentials_and_ca(
    idp: IdpEnv, idp_home: Path, tmp_path: Path
) -> None:
    host = idp.route(path_routing=True)
    seed_home = tmp_path / "seed"
    digest = str(make_busybox_store(seed_home, "base:v1").digest)
    kube = ["--kubeconfig", str(idp.kubeconfig)]
    r = run_cli(["push", *kube, "base:v1"], home=seed_home)
    assert r.code == 0 and r.stdout.strip() == f"{host}/giteaadmin/base:v1@{digest}", r.stderr
    # a fresh home: the base is pulled with the cluster's credentials and CA (no flag, env or docker config)
    ctx = _ctx(tmp_path / "src", f"FROM {host}/giteaadmin/base:v1\nCOPY app.txt /app.txt\n")
    r = run_cli(
        ["build", "-q", "-t", "app:1", str(ctx)], home=idp_home, env={"KUBECONFIG": str(idp.kubeconfig)}
    )
    assert r.code == 0, r.stderr
    listed = run_cli(["images", "--digests"], home=idp_home).stdout
    assert f"{host}/giteaadmin/base" in listed and digest in listed, listed
