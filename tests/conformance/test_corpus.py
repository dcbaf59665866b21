"""The real-world corpus (tests/corpus/<name>/): each context built by Docker's engine and by idpbuilder,
and the images compared (config fields and flattened filesystem, exactly).

The busybox cases run by default (the busybox stand-in is the base, for ``busybox``, ``alpine`` and
``busybox:stable-musl``). The Debian cases need bases made with mmdebstrap (Debian minbase, plus golang-go,
nodejs+npm or python3-venv); making them takes minutes the first time (cached in /var/tmp after that), so
they are marked ``slow``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.debian_bases import DebianUnavailable, debian_rootfs_tar, install_rootfs_image
from fixtures.docker import DockerBases
from tools.conformance.model import BuildSpec

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# (case, build) pairs on the busybox stand-in
BUSYBOX: list[tuple[str, BuildSpec]] = [
    ("static-site-httpd", BuildSpec()),
    ("nonroot-chown", BuildSpec()),
    ("arg-driven-base", BuildSpec()),
    (
        "arg-driven-base",
        BuildSpec(label="VERSION=2.0.1", build_args=("VERSION=2.0.1", "BASE_TAG=stable-musl")),
    ),
    ("dockerignore-exceptions", BuildSpec()),
    ("dockerignore-vendor", BuildSpec()),
    ("onbuild-parent", BuildSpec(label="--target onbuild", target="onbuild")),
    ("onbuild-parent", BuildSpec()),
    ("multistage-scratch", BuildSpec()),
    ("config-instructions", BuildSpec()),
    ("workdir-paths", BuildSpec()),
    ("copy-wildcards-add", BuildSpec()),
    ("mounts-busybox", BuildSpec()),
    ("args-env", BuildSpec()),
    ("args-env", BuildSpec(label="PORT=8080", build_args=("PORT=8080", "APP_ENV=dev"))),
    ("stage-args", BuildSpec()),
    ("entrypoint-script", BuildSpec()),
    ("symlink-layout", BuildSpec()),
    ("cron-job", BuildSpec()),
    ("multi-target", BuildSpec(label="--target prod", target="prod")),
    ("multi-target", BuildSpec(label="--target dev", target="dev")),
    ("copy-from-index", BuildSpec()),
]

# Debian-based images made here: reference -> (packages on top of minbase, image config)
DEBIAN_BASES: dict[str, tuple[tuple[str, ...], dict[str, object]]] = {
    "docker.io/library/debian:bookworm-slim": ((), {"Env": [PATH_ENV], "Cmd": ["bash"]}),
    "docker.io/library/golang:1.19-bookworm": (
        ("golang-go", "ca-certificates"),
        {"Env": ["PATH=/go/bin:" + PATH_ENV[5:], "GOPATH=/go", "CGO_ENABLED=0"], "Cmd": ["bash"]},
    ),
    "docker.io/library/node:18-bookworm-slim": (
        ("nodejs", "npm"),
        {"Env": [PATH_ENV, "NODE_VERSION=18"], "Cmd": ["node"]},
    ),
    "docker.io/library/python:3.11-slim-bookworm": (
        ("python3", "python3-venv"),
        {"Env": [PATH_ENV, "LANG=C.UTF-8"], "Cmd": ["python3"]},
    ),
}

DEBIAN: list[tuple[str, BuildSpec]] = [
    ("go-scratch", BuildSpec()),
    ("go-distroless", BuildSpec()),
    ("go-test-target", BuildSpec(label="--target test", target="test")),
    ("go-test-target", BuildSpec()),
    ("node-npm-ci", BuildSpec()),
    ("node-build-static", BuildSpec()),
    ("node-nonroot", BuildSpec()),
    ("python-venv", BuildSpec()),
    ("python-app", BuildSpec()),
    ("debian-slim-service", BuildSpec()),
]


def _id(case: tuple[str, BuildSpec]) -> str:
    return case[0] if case[1].label == "default" else f"{case[0]}[{case[1].label}]"


def _check(bases: DockerBases, name: str, spec: BuildSpec) -> None:
    result = bases.compare(CORPUS / name, spec, name=name)
    assert result.docker.ok, f"docker failed to build {name}: {result.docker.error}"
    assert result.ours.ok, f"idpbuilder failed to build {name}: {result.ours.error}"
    assert result.same, f"{name} [{spec.label}]: {result.text()}"


def test_corpus_has_enough_cases() -> None:
    names = {p.name for p in CORPUS.iterdir() if (p / "Dockerfile").is_file()}
    listed = {n for n, _ in BUSYBOX + DEBIAN}
    assert names == listed, f"unlisted: {sorted(names - listed)}, missing: {sorted(listed - names)}"
    assert len(names) >= 25 and len({n for n, _ in BUSYBOX}) >= 8


@pytest.mark.parametrize("case", BUSYBOX, ids=_id)
def test_corpus_busybox(docker_bases: DockerBases, case: tuple[str, BuildSpec]) -> None:
    _check(docker_bases, *case)


@pytest.fixture(scope="session")
def debian_bases(docker_bases: DockerBases) -> DockerBases:
    """The Debian bases in the template home and in the daemon (skipped when no rootfs can be made)."""
    for ref, (packages, config) in DEBIAN_BASES.items():
        try:
            tar = debian_rootfs_tar(packages)
        except DebianUnavailable as e:
            pytest.skip(str(e))
        install_rootfs_image(docker_bases.template, tar, ref, config=config)
        docker_bases.share(ref, (ref,))
    return docker_bases


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("case", DEBIAN, ids=_id)
def test_corpus_debian(debian_bases: DockerBases, case: tuple[str, BuildSpec]) -> None:
    _check(debian_bases, *case)
