"""Helpers for the build input/output tests: the CLI in a subprocess with bytes on stdin, a busybox store."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.cli import CliResult, hermetic_env
from fixtures.images import BUSYBOX_REF, make_busybox_store
from fixtures.podman import Podman


def run_bytes(home: Path, *args: str, stdin: bytes = b"", cwd: Path | None = None) -> tuple[int, bytes, str]:
    """``idpbuilder ARGS`` in a subprocess with ``stdin`` bytes; (code, stdout bytes, stderr text)."""
    p = subprocess.run(
        [sys.executable, "-m", "idpbuilder", *args],
        input=stdin,
        capture_output=True,
        timeout=300,
        cwd=cwd,
        env=hermetic_env(home),
    )
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def ok(r: CliResult) -> CliResult:
    """``r`` after asserting exit 0 (stderr shown otherwise)."""
    assert r.code == 0, r.stderr[-3000:]
    return r


@pytest.fixture
def bb_home(idp_home: Path) -> Path:
    """A fresh IDPBUILDER_HOME holding the busybox image as ``BUSYBOX_REF``."""
    make_busybox_store(idp_home, BUSYBOX_REF)
    return idp_home


@pytest.fixture
def fresh_podman() -> Iterator[Podman]:
    """podman with fresh private storage in a short /tmp path (podman refuses a long runroot)."""
    d = Path(tempfile.mkdtemp(prefix="idpbio-pm-", dir="/tmp"))
    try:
        yield Podman(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
