"""``idpbuilder login`` with no arguments on an idpbuilder machine: the discovered Gitea, the cluster's account."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from cluster.idpenv import IdpEnv, home_with_myapp, idp  # noqa: F401  (fixtures)
from fixtures.cli import run_cli


def test_login_without_arguments_uses_the_cluster(
    idp: IdpEnv,  # noqa: F811
    home_with_myapp: tuple[Path, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    home, digest = home_with_myapp
    host = idp.route(path_routing=True)
    dc = tmp_path / "dc"
    env = {"KUBECONFIG": str(idp.kubeconfig), "DOCKER_CONFIG": str(dc)}
    code, out, err = run_cli(["-l", "debug", "login"], home=home, env=env)
    assert code == 0, err
    assert out == "Login Succeeded\n"
    assert idp.password not in out + err
    entry = json.loads((dc / "config.json").read_text())["auths"][host]
    assert base64.b64decode(entry["auth"]).decode() == f"giteaAdmin:{idp.password}"
    # the cluster's account is gone from the cluster: push reads the docker config instead
    idp.kube.remove("/api/v1/namespaces/gitea/secrets/gitea-credential")
    code, out, err = run_cli(["push", "myapp:v1"], home=home, env=env)
    assert code == 0, err
    assert out.strip() == f"{host}/giteaadmin/myapp:v1@{digest}"
    code, out, _ = run_cli(["logout"], home=home, env=env)
    assert code == 0 and out == f"Removing login credentials for {host}\n"


def test_login_without_cluster_or_credentials_fails_with_a_hint(idp_home: Path, tmp_path: Path) -> None:
    code, out, err = run_cli(["login"], home=idp_home, env={"DOCKER_CONFIG": str(tmp_path / "dc")})
    assert code == 2 and out == ""  # a login with nothing to log in with: a bad command line
    lines = err.strip().splitlines()
    assert lines[-2] == "Error: no credentials to log in to gitea.cnoe.localtest.me:8443 with"
    assert lines[-1].startswith("Hint: pass --username and --password-stdin")
