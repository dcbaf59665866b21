"""Builds killed (SIGKILL) at random points leave nothing behind once the next command has run: no mount, no
running container or runc state, no secret file, no temp file, and the store validates.

The default suite runs a few trials (``IDPBUILDER_KILL_TRIALS``, default 6); the slow-marked test runs 50.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures.cli import hermetic_env
from fixtures.registry import RegistryInfo

from .conftest import Idp, mounts_under, processes_mentioning, runc_state_dirs, validate_store, write_context

SECRET = "kill-trial-secret-4f1c9e"


def _dockerfile(base: str, marker: str) -> str:
    return (
        f"FROM {base}\n"
        "RUN --mount=type=secret,id=tok cp /run/secrets/tok /dev/null && dd if=/dev/zero of=/big bs=1M count=8\n"
        f"RUN --mount=type=secret,id=tok sh -c 'sleep 0.{marker} || true; cat /run/secrets/tok > /dev/null'\n"
        "COPY data /data\n"
        f"RUN --mount=type=cache,target=/cache echo {marker} > /cache/m && sleep 0.5\n"
    )


def _leftovers(home: Path) -> list[str]:
    """Files a finished or reaped run must not leave in the home's scratch areas."""
    found = []
    for rel in ("tmp", "work/build/tmp", "work/state"):
        d = home / rel
        if d.is_dir():
            found += [str(p) for p in d.iterdir()]
    layers = home / "work" / "layers"
    if layers.is_dir():
        found += [str(p) for p in layers.iterdir() if p.name.startswith(".tmp")]
    return found


def _secret_copies(home: Path) -> list[str]:
    hits = [str(p) for p in Path("/dev/shm").iterdir() if p.name.startswith("idpbuilder-")]
    for p in home.rglob("*"):
        try:
            if p.is_file() and not p.is_symlink() and p.stat().st_size < 1 << 20 and SECRET.encode() in p.read_bytes():
                hits.append(str(p))
        except OSError:
            continue
    return hits


def _trials(idp: Idp, registry: RegistryInfo, tmp_path: Path, n: int) -> None:
    rng = random.Random(int(os.environ.get("IDPBUILDER_KILL_SEED", "0")) or None)
    base = registry.ref("library/busybox:latest")
    secret = tmp_path / "tok"
    secret.write_text(SECRET + "\n")
    env = hermetic_env(idp.home, extra=registry.env())
    for i in range(n):
        marker = f"{rng.randrange(10**6):06d}"
        ctx = write_context(tmp_path / f"ctx{i}", _dockerfile(base, marker), {"data": "x" * 1000})
        proc = subprocess.Popen(
            [sys.executable, "-m", "idpbuilder", "build", "--no-cache", "--secret", f"id=tok,src={secret}",
             "-t", f"kill:{i}", str(ctx)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(rng.uniform(0.05, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        idp("images").check()  # the next command reaps what the killed one left
        deadline = time.monotonic() + 10
        while processes_mentioning(marker) and time.monotonic() < deadline:
            time.sleep(0.1)  # the kernel tears down the build's pid namespace asynchronously
        assert processes_mentioning(marker) == [], f"trial {i}: processes left"
        assert mounts_under(idp.home) == [], f"trial {i}: mounts left"
        assert runc_state_dirs(idp.home) == [], f"trial {i}: run state left"
        assert _leftovers(idp.home) == [], f"trial {i}: temp files left"
        assert _secret_copies(idp.home) == [], f"trial {i}: secret copies left"
        validate_store(idp.home)


def test_killed_builds_leave_nothing_behind(idp: Idp, tls_registry: RegistryInfo, tmp_path: Path) -> None:
    _trials(idp, tls_registry, tmp_path, int(os.environ.get("IDPBUILDER_KILL_TRIALS", "6")))


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_fifty_killed_builds_leave_nothing_behind(idp: Idp, tls_registry: RegistryInfo, tmp_path: Path) -> None:
    _trials(idp, tls_registry, tmp_path, 50)
