"""A real distribution base: Debian bookworm (mmdebstrap minbase) → ``RUN apt-get install curl`` over the
host network → the built image runs ``curl --version`` under podman. The base comes from fixtures/debian.py
(cached per day; the test is skipped, with the reason, when no Debian mirror answers)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fixtures import debian
from fixtures.debian import BASE_REF, install_debian_base
from fixtures.podman import Podman

from .conftest import Idp, write_context


@pytest.fixture(scope="session")
def debian_rootfs_tar() -> Path:
    """The mmdebstrap bookworm rootfs tarball (cached per day)."""
    return debian.debian_rootfs_tar()


def test_debian_apt_get_install_curl(idp: Idp, debian_rootfs_tar: Path, fresh_podman: Podman) -> None:
    install_debian_base(idp.home, debian_rootfs_tar)
    ctx = write_context(
        idp.home.parent / "ctx",
        f"FROM {BASE_REF}\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends curl\n"
        'CMD ["curl", "--version"]\n',
    )
    t0 = time.monotonic()
    r = idp("build", "--network", "host", "--progress", "plain", "-t", "localhost/debian-curl:1", str(ctx),
            timeout=600)  # fmt: skip
    assert r.code == 0, r.stderr[-4000:]
    took = time.monotonic() - t0
    assert "Setting up curl" in r.stderr, r.stderr[-4000:]  # apt's own output, streamed under the step
    image = fresh_podman.pull(f"oci:{idp.home / 'store'}:localhost/debian-curl:1")
    run = fresh_podman.run(image)
    assert run.stdout.startswith("curl ") and "Protocols:" in run.stdout and "https" in run.stdout, run.stdout
    which = fresh_podman.run(image, "sh", "-c", "command -v curl; dpkg-query -W -f '${Status}' curl")
    assert which.stdout.splitlines() == ["/usr/bin/curl", "install ok installed"], which.stdout
    assert took < 300, f"build took {took:.0f}s"
