"""The master workflow (SPEC §2) end to end: build with RUN steps → images → push → podman pull + run.

Everything goes through the real CLI in a subprocess; the registries are real docker-registry servers
(TLS + htpasswd, TLS + bearer token), and the pushed image is read back by podman and skopeo.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

from fixtures.podman import Podman
from fixtures.registry import RegistryInfo, skopeo

from .conftest import (
    HELLO_MSG,
    HELLO_SH,
    MOTD,
    Idp,
    demo_dockerfile,
    layer_member,
    pull_env,
    write_context,
)

REPO = Path(__file__).resolve().parents[2]


def _pushed_ref(out: str, ref: str) -> str:
    """The ``REF@sha256:…`` line push printed (its last stdout line), checked against ``ref``."""
    line = out.strip().splitlines()[-1]
    name, sep, digest = line.partition("@")
    assert sep and name == ref and digest.startswith("sha256:") and len(digest) == 71, out
    return digest


def _check_pulled_image(podman: Podman, info: RegistryInfo, ref: str, digest: str, tmp_path: Path) -> None:
    """podman pulls ``ref`` with the registry's CA dir and auth file, runs it, and sees an executable
    /app/hello.sh; skopeo's copy of the pushed manifest has hello.sh with mode 0755 in its layers."""
    assert info.cert_dir is not None
    podman("pull", "-q", "--cert-dir", str(info.cert_dir), "--authfile", str(info.auth_json), ref)
    run = podman.run(ref)
    assert HELLO_MSG in run.stdout and MOTD in run.stdout, run.stdout + run.stderr
    stat = podman.run(ref, "stat", "-c", "%a %U %F", "/app/hello.sh")
    assert stat.stdout.strip() == "755 root regular file", stat.stdout
    assert podman.run(ref, "sh", "-c", "test -x /app/hello.sh && pwd").stdout.strip() == "/app"
    cfg = json.loads(podman("image", "inspect", ref).stdout)[0]
    assert cfg["Config"]["Cmd"] == ["./hello.sh"] and cfg["Config"]["WorkingDir"] == "/app", cfg["Config"]
    assert cfg["Digest"] == digest  # podman pulled exactly what push reported
    # the layer bits themselves, read from an independent copy of the pushed image
    layout = tmp_path / "pulled-layout"
    skopeo("copy", "--quiet", *info.skopeo_args(dest=False), f"docker://{ref}", f"oci:{layout}:demo")
    member = layer_member(layout, "demo", "app/hello.sh")
    assert member.isfile() and member.mode & 0o7777 == 0o755, oct(member.mode)
    assert layer_member(layout, "demo", "etc/motd").size == len(MOTD) + 1


def test_master_workflow_tls_basic_auth_podman(
    idp: Idp, tls_registry: RegistryInfo, fresh_podman: Podman, tmp_path: Path
) -> None:
    info = tls_registry
    assert info.username and info.password and info.ca_file
    ctx = write_context(
        tmp_path / "ctx", demo_dockerfile(info.ref("library/busybox:latest")), {"hello.sh": HELLO_SH}
    )
    ref = info.ref("giteaadmin/demo:final")

    built = idp("build", "-t", ref, ".", cwd=ctx, env=pull_env(info)).check()
    assert f"Tagged {ref}" in built.stderr
    assert "RUN chmod +x hello.sh" in built.stderr

    listed = idp("images").check()
    demo_lines = [line for line in listed.stdout.splitlines() if "demo" in line]
    assert len(demo_lines) == 1 and demo_lines[0].split()[:2] == [info.ref("giteaadmin/demo"), "final"], (
        listed.stdout
    )

    pushed = idp(
        "push", "--username", info.username, "--password", info.password, "--ca-file", str(info.ca_file), ref
    ).check()
    digest = _pushed_ref(pushed.stdout, ref)
    assert info.password not in pushed.stdout + pushed.stderr
    remote = json.loads(skopeo("inspect", *info.skopeo_args(), f"docker://{ref}").stdout)
    assert remote["Digest"] == digest

    _check_pulled_image(fresh_podman, info, ref, digest, tmp_path)


def test_master_workflow_seed_spelling_token_registry(
    idp: Idp, seeded_registries: dict[str, RegistryInfo], fresh_podman: Podman, tmp_path: Path
) -> None:
    """``build --dockerfile Dockerfile --tag REF`` then ``push --username U --token T --insecure REF`` to a
    bearer-token registry behind TLS (like Gitea behind the idpbuilder ingress); username + token acts as
    username + password (SPEC §4). The base comes from the htpasswd registry through a docker auth file."""
    base_reg, info = seeded_registries["tls"], seeded_registries["token_tls"]
    assert info.username and info.password and info.token_server and base_reg.ca_file
    ctx = write_context(
        tmp_path / "ctx", demo_dockerfile(base_reg.ref("library/busybox:latest")), {"hello.sh": HELLO_SH}
    )
    ref = info.ref("giteaadmin/demo:v1.0")
    base_env = {"REGISTRY_AUTH_FILE": str(base_reg.auth_json), "IDPBUILDER_CA_FILE": str(base_reg.ca_file)}

    idp("build", "--dockerfile", "Dockerfile", "--tag", ref, cwd=ctx, env=base_env).check()
    assert "demo" in idp("images").check().stdout

    pushed = idp("push", "--username", info.username, "--token", info.password, "--insecure", ref).check()
    digest = _pushed_ref(pushed.stdout, ref)
    assert info.password not in pushed.stdout + pushed.stderr
    # the token server issued push access to the user, never to an anonymous caller
    grants = [r for r in info.token_server.requests if any("push" in s for s in r.scopes)]
    assert grants and all(r.user == info.username and r.status == 200 for r in grants), grants
    tags = json.loads(
        skopeo("list-tags", *info.skopeo_args(), f"docker://{info.ref('giteaadmin/demo')}").stdout
    )
    assert "v1.0" in tags["Tags"]

    _check_pulled_image(fresh_podman, info, ref, digest, tmp_path)


def test_build_flags_reach_the_base_pull(idp: Idp, tls_registry: RegistryInfo, tmp_path: Path) -> None:
    """``build --ca-file/--username/--password`` (documented for --push) also authenticate the FROM pull,
    as the TLS error's hint promises; without them the pull fails with that hint."""
    info = tls_registry
    assert info.username and info.password and info.ca_file
    ctx = write_context(tmp_path / "ctx", f"FROM {info.ref('library/busybox:latest')}\nRUN echo ok > /ok\n")
    bare = idp("build", "-t", "flags:1", str(ctx))
    assert (
        bare.code == 1 and "cannot verify the TLS certificate" in bare.stderr and "--ca-file" in bare.stderr
    )
    flags = ["--username", info.username, "--password", info.password]
    debug = idp(
        "-l", "debug", "build", *flags, "--ca-file", str(info.ca_file), "-t", "flags:1", str(ctx)
    ).check()
    basic = base64.b64encode(f"{info.username}:{info.password}".encode()).decode()
    assert "Authorization" in debug.stderr  # the debug trace is there, and redacted
    assert info.password not in debug.stdout + debug.stderr and basic not in debug.stdout + debug.stderr
    # --insecure skips verification for the base pull as well (fresh home: the base must be pulled again)
    other = Idp(tmp_path / "home2")
    other.home.mkdir()
    other("build", *flags, "--insecure", "-t", "flags:2", str(ctx)).check()
    assert "flags" in other("images").check().stdout


def test_readme_demo_script() -> None:
    """``scripts/demo.py`` (the Python part of the README's first command) runs the workflow on its own."""
    p = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        check=False,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    last = p.stdout.strip().splitlines()[-1]
    assert last.startswith("master workflow OK"), p.stdout[-2000:]


def test_ci_one_step_build_push_with_dockerfile_outside_context(
    idp: Idp, seeded_registries: dict[str, RegistryInfo], fresh_podman: Podman, tmp_path: Path
) -> None:
    """SPEC §2's CI form: ``build --push -t REG/team/app:1.2 -f docker/Dockerfile ./src`` (RUN included),
    to the plain-HTTP loopback registry; stdout is the pushed ``REF@sha256:…`` and podman runs it."""
    info = seeded_registries["plain"]
    src = write_context(tmp_path / "src", "unused\n", {"hello.sh": HELLO_SH})
    (src / "Dockerfile").unlink()
    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "Dockerfile").write_text(demo_dockerfile(info.ref("library/busybox:latest")))
    ref = info.ref("team/app:1.2")
    r = idp("build", "--push", "-t", ref, "-f", "docker/Dockerfile", "./src", cwd=tmp_path).check()
    digest = _pushed_ref(r.stdout, ref)
    remote = json.loads(skopeo("inspect", *info.skopeo_args(), f"docker://{ref}").stdout)
    assert remote["Digest"] == digest
    fresh_podman("pull", "-q", "--tls-verify=false", ref)
    out = fresh_podman.run(ref).stdout
    assert HELLO_MSG in out and MOTD in out, out
