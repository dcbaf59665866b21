"""Issue #11 item 4: a full disk (a small tmpfs as the store) gives one error line and a hint, no traceback,
and leaves no blob behind that nothing references."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from regkit import make_image, unique

from fixtures.cli import CliRunner
from fixtures.registry import RegistryInfo


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (root only)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {p.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _one_error(err: str) -> tuple[str, str]:
    assert "Traceback" not in err and "Exception ignored" not in err and "internal error" not in err, err
    errors = [ln[7:] for ln in err.splitlines() if ln.startswith("Error: ")]
    hints = [ln[6:] for ln in err.splitlines() if ln.startswith("Hint: ")]
    assert len(errors) == 1 and len(hints) == 1, err
    return errors[0], hints[0]


def _blobs(home: Path) -> list[Path]:
    d = home / "store" / "blobs" / "sha256"
    return sorted(d.iterdir()) if d.is_dir() else []


def test_copy_on_a_full_disk_is_one_line_without_traceback(small_fs: Path, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "big").write_bytes(Path("/dev/urandom").open("rb").read(5_000_000))
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY big /big\n")
    for trial in range(3):
        home = small_fs / f"h{trial}"
        code, _, err = CliRunner(home)("build", "-t", "big:1", str(ctx))
        assert code == 1
        error, hint = _one_error(err)
        assert "no space left on the device" in error and "free some disk space" in hint, err
        assert _blobs(home) == [] and list((home / "tmp").iterdir()) == []


def test_pull_on_a_full_disk_leaves_no_unreferenced_blobs(
    small_fs: Path, cli: CliRunner, idp_home: Path, registry_plain: RegistryInfo
) -> None:
    src = "example.com/robust/full:v1"
    make_image(idp_home, src, [700_000, 700_000, 700_000, 10_000])
    dest = registry_plain.ref(f"{unique('fullpull')}/app:v1")
    cli("push", src, dest).check()
    for jobs in ("1", "4"):
        home = small_fs / f"pull{jobs}"
        code, _, err = CliRunner(home)("pull", "--jobs", jobs, dest)
        assert code == 1
        error, hint = _one_error(err)
        assert "no space left on the device" in error, err
        assert _blobs(home) == [], _blobs(home)
        assert list((home / "tmp").iterdir()) == []
