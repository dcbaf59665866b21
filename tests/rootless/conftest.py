"""Rootless tests: the real CLI run by normal accounts the tests create (with and without subordinate ids)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.users import SYSTEM_PYTHON, NormalUser

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="creating test accounts needs root")


def _prerequisites() -> str | None:
    for tool in ("useradd", "setpriv", "newuidmap", "newgidmap", "runc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not SYSTEM_PYTHON.exists():
        return f"{SYSTEM_PYTHON} is missing"
    return None


def _account(role: str, *, subids: bool) -> Iterator[NormalUser]:
    """A fresh account for this test session (its own name: sessions may run side by side), then removed."""
    if os.geteuid() != 0:
        pytest.skip("creating test accounts needs root")
    why = _prerequisites()
    if why:
        pytest.skip(why)
    user = NormalUser.make(f"idpbt-{role}-{os.getpid()}", subids=subids)
    try:
        yield user
    finally:
        user.remove()


@pytest.fixture(scope="session")
def dev_user() -> Iterator[NormalUser]:
    """A normal user with a subordinate uid/gid range (as ``useradd`` on a desktop gives one)."""
    yield from _account("dev", subids=True)


@pytest.fixture(scope="session")
def other_user() -> Iterator[NormalUser]:
    """A second normal user with its own range (for isolation between users)."""
    yield from _account("other", subids=True)


@pytest.fixture(scope="session")
def nosub_user() -> Iterator[NormalUser]:
    """A normal user without any subordinate id range."""
    yield from _account("nosub", subids=False)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user can read (CA files, build contexts). Not under pytest's tmp dir: pytest makes
    /tmp/pytest-of-USER 0700 again whenever a session starts."""
    d = Path(tempfile.mkdtemp(prefix="idpbtest-shared-", dir="/tmp"))
    os.chmod(d, 0o755)
    shared = d / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    try:
        yield shared
    finally:
        shutil.rmtree(d, ignore_errors=True)
