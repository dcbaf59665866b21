"""End to end: ``idpbuilder push myapp:v1`` with nothing but ``KUBECONFIG`` set.

The fake cluster (mTLS) hands out the registry location (``localbuilds``), the Gitea admin credentials
(``gitea/gitea-credential``) and the CA (``default/idpbuilder-cert``); the registry is the real
docker-registry behind TLS signed by that CA, in token mode with the Gitea-like token server. The result is
checked with skopeo, trusting the same CA.
"""

from __future__ import annotations

import socket
from pathlib import Path

from fixtures.cli import run_cli

from .idpenv import IdpEnv


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
    assert code == 2 and "Gitea rejects the image name 'my__app'" in err and "Traceback" not in err
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
