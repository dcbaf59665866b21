"""A store on a read-only filesystem or a full disk: read commands work, writes fail with one line and a hint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.cli import CliRunner, run_cli
from fixtures.registry import RegistryInfo

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount")


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@pytest.fixture
def ro_home(busybox_image: object, tmp_path: Path) -> Iterator[Path]:
    """A copy of the busybox home, bind-mounted read-only."""
    src = tmp_path / "src"
    shutil.copytree(busybox_image.home, src, symlinks=True)  # type: ignore[attr-defined]
    mnt = tmp_path / "mnt" / "ro"  # the CLI runner's user home goes next to it, on a writable fs
    mnt.mkdir(parents=True)
    _mount("--bind", str(src), str(mnt))
    try:
        _mount("-o", "remount,bind,ro", str(mnt))
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


@pytest.fixture
def tiny_home(tmp_path: Path) -> Iterator[Path]:
    """An empty home on a 1 MiB tmpfs."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt))
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def _clean_failure(err: str) -> None:
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith(("Error:", "Hint:"))]
    assert [ln.split(":")[0] for ln in lines[-2:]] == ["Error", "Hint"], err


def test_read_only_store_reads_and_refuses_writes_cleanly(
    ro_home: Path, registry_plain: RegistryInfo
) -> None:
    cli = CliRunner(ro_home)
    code, out, err = cli("images")
    assert code == 0, err
    assert "busybox" in out
    assert cli("inspect", "busybox").code == 0
    code, out, err = cli("push", "--progress", "quiet", "busybox", registry_plain.ref("ro/busybox:v1"))
    assert code == 0, err
    assert "@sha256:" in out

    for args in (
        ("tag", "busybox", "other:v1"),
        ("rmi", "busybox"),
        ("pull", registry_plain.ref("ro/busybox:v1")),
    ):
        code, _, err = cli(*args)
        assert code == 1, (args, err)
        _clean_failure(err)
        assert "read-only file system" in err
        assert "--store" in err

    code, _, err = run_cli(["images"], home=ro_home / "fresh", user_home=ro_home.parent / "user-home")
    assert code == 1
    _clean_failure(err)
    assert "read-only file system" in err


def test_full_disk_during_pull_is_one_line_and_leaves_no_temp_files(
    tiny_home: Path, busybox_image: object, registry_plain: RegistryInfo
) -> None:
    ref = registry_plain.ref("full/busybox:v1")
    code, _, err = CliRunner(busybox_image.home)("push", "--progress", "quiet", "busybox", ref)  # type: ignore[attr-defined]
    assert code == 0, err
    cli = CliRunner(tiny_home)
    code, _, err = cli("pull", ref)  # the busybox layer (1.2 MB) does not fit in 1 MiB
    assert code == 1, err
    _clean_failure(err)
    assert "no space left on the device" in err
    assert list((tiny_home / "tmp").iterdir()) == []
    index = json.loads((tiny_home / "store" / "index.json").read_text())
    assert index["manifests"] == []
    assert cli("images").code == 0
