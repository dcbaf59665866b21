"""Offline start: Docker Hub references come from a registry mirror (``--registry-mirror`` /
``IDPBUILDER_REGISTRY_MIRRORS``) first, keeping their Docker Hub names; ``FROM busybox`` builds through it."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from fixtures.cli import CliRunner
from fixtures.plugin import BusyboxImage, RegistryKind
from fixtures.registry import RegistryInfo, copy_to_registry


@pytest.fixture
def mirror(
    busybox_image: BusyboxImage, registry_factory: Callable[[RegistryKind], RegistryInfo]
) -> RegistryInfo:
    """A private loopback registry holding library/busybox:latest, acting as a Docker Hub mirror."""
    info = registry_factory("plain")
    copy_to_registry(busybox_image.oci_ref, info, "library/busybox:latest")
    return info


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_pull_busybox_through_mirror_env(
    cli: CliRunner, mirror: RegistryInfo, busybox_image: BusyboxImage
) -> None:
    code, out, err = cli("pull", "busybox", env={"IDPBUILDER_REGISTRY_MIRRORS": f"http://{mirror.host}"})
    assert code == 0, err
    assert out.strip() == f"docker.io/library/busybox:latest@{busybox_image.digest}"
    code, out, _ = cli("images", "--format", "json")
    assert '"Name": "docker.io/library/busybox:latest"' in out


def test_dead_mirror_is_skipped_for_the_next(cli: CliRunner, mirror: RegistryInfo) -> None:
    dead = f"127.0.0.1:{_dead_port()}"
    code, out, err = cli(
        "pull", "--registry-mirror", dead, "--registry-mirror", mirror.host, "library/busybox:latest"
    )
    assert code == 0, err
    assert out.startswith("docker.io/library/busybox:latest@sha256:")
    assert f"mirror {dead}:" in err and "trying the next mirror" in err


def test_flag_beats_env_and_comma_lists(cli: CliRunner, mirror: RegistryInfo) -> None:
    dead = f"127.0.0.1:{_dead_port()}"
    code, _, err = cli(
        "pull",
        "--registry-mirror",
        f"{dead},{mirror.host}",
        "busybox",
        env={"IDPBUILDER_REGISTRY_MIRRORS": "https://bad.invalid/path"},
    )
    assert code == 0, err


def test_build_from_busybox_resolves_through_mirror(
    cli: CliRunner, mirror: RegistryInfo, tmp_path: Path
) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nLABEL offline=yes\nCOPY hello.txt /hello.txt\n")
    (ctx / "hello.txt").write_text("hello\n")
    code, out, err = cli(
        "build", "-t", "offline:v1", str(ctx), env={"IDPBUILDER_REGISTRY_MIRRORS": mirror.host}
    )
    assert code == 0, err
    code, out, _ = cli("images")
    names = {tuple(line.split()[:2]) for line in out.splitlines()[1:]}
    assert {("busybox", "latest"), ("offline", "v1")} <= names
    code, out, _ = cli("inspect", "-f", '{{index .Config.Labels "offline"}}', "offline:v1")
    assert out == "yes\n"


def test_bad_mirror_is_a_usage_error(cli: CliRunner) -> None:
    code, out, err = cli("pull", "--registry-mirror", "https://mirror.example/some/path", "busybox")
    assert code == 2 and out == ""
    lines = err.rstrip().splitlines()
    assert "must be a host[:port] or URL without a path" in lines[-2] and lines[-1].startswith("Hint: ")


def test_other_registries_are_not_mirrored(cli: CliRunner, mirror: RegistryInfo) -> None:
    code, out, err = cli(
        "pull",
        mirror.ref("library/busybox:latest"),
        env={"IDPBUILDER_REGISTRY_MIRRORS": f"127.0.0.1:{_dead_port()}"},
    )
    assert code == 0 and "mirror" not in err, err
    assert out.startswith(f"{mirror.host}/library/busybox:latest@")
