"""A real distribution base: Debian bookworm (mmdebstrap minbase) → ``RUN apt-get install curl`` over the
host network → the built image runs ``curl --version`` under podman.

The mmdebstrap tarball takes 15-90 s to make, so it is cached on disk per day (apt's indexes change
daily) in ``$IDPBUILDER_TEST_CACHE`` (default /var/tmp/idpbuilder-test-cache); the test is skipped, with
the reason, when no Debian mirror answers.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from fixtures.images import PATH_ENV
from fixtures.podman import Podman
from idpbuilder.image import LayerWriter, commit_image
from idpbuilder.oci import Platform
from idpbuilder.store.layout import Store

from .conftest import Idp, write_context

SUITE = "bookworm"
BASE_REF = "localhost/debian:bookworm-minbase"
CACHE = Path(os.environ.get("IDPBUILDER_TEST_CACHE", "/var/tmp/idpbuilder-test-cache"))


def host_debian_mirror() -> str | None:
    """The first Debian mirror URI in the host's apt sources (deb822 ``.sources`` or one-line lists)."""
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for f in files:
        if not f.is_file() or not (f.suffix in (".sources", ".list") or f.name == "sources.list"):
            continue
        text = f.read_text(errors="replace")
        if f.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
                if uris and suites and SUITE in suites.group(1).split() and "/debian" in uris.group(1):
                    return uris.group(1).rstrip("/")
        else:
            for line in text.splitlines():
                m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
                if m and m.group(2) == SUITE and "/debian" in m.group(1):
                    return m.group(1).rstrip("/")
    return None


def _reachable(mirror: str) -> str | None:
    """None when ``MIRROR/dists/bookworm/InRelease`` answers, else why not."""
    url = f"{mirror}/dists/{SUITE}/InRelease"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=15) as r:
            return None if r.status == 200 else f"{url} answered {r.status}"
    except (urllib.error.URLError, OSError) as e:
        return f"{url} is unreachable: {e}"


@pytest.fixture(scope="session")
def debian_rootfs_tar() -> Path:
    """A ``mmdebstrap --variant=minbase --mode=root`` bookworm rootfs as a tarball (cached per day)."""
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed (apt-get install mmdebstrap)")
    mirror = host_debian_mirror()
    if mirror is None:
        pytest.skip(f"no Debian {SUITE} mirror in /etc/apt/sources.list or sources.list.d")
    why = _reachable(mirror)
    if why is not None:
        pytest.skip(f"the host's Debian mirror is not reachable: {why}")
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / f"debian-{SUITE}-minbase-{dt.date.today().isoformat()}.tar"
    if not out.exists():
        for old in CACHE.glob(f"debian-{SUITE}-minbase-*.tar"):
            old.unlink()
        part = out.with_suffix(f".{os.getpid()}.tmp.tar")  # mmdebstrap picks the format from the suffix
        p = subprocess.run(
            ["mmdebstrap", "--variant=minbase", "--mode=root", "--skip=output/dev", "--quiet", SUITE,
             str(part), mirror],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        if p.returncode != 0:
            part.unlink(missing_ok=True)
            raise AssertionError(f"mmdebstrap failed ({p.returncode}):\n{p.stderr[-3000:]}")
        part.rename(out)
    return out


def install_debian_base(home: Path, rootfs_tar: Path) -> None:
    """Pack the rootfs tarball into one gzip layer (our LayerWriter) and tag it ``BASE_REF`` in ``home``."""
    store = Store.open(home)
    try:
        with tarfile.open(rootfs_tar) as src, LayerWriter(store, compression="gzip") as w:
            for m in src:
                name = m.name.removeprefix("./").rstrip("/")
                if not name:
                    continue
                m.name = name
                if m.islnk():
                    m.linkname = m.linkname.removeprefix("./")
                w.add_entry(m, src.extractfile(m) if m.isreg() else None)
        layer = w.result
        plat = Platform.host()
        created = "2025-01-01T00:00:00Z"
        config: dict[str, Any] = {
            "architecture": plat.architecture,
            "os": plat.os,
            "created": created,
            "config": {"Env": [PATH_ENV], "Cmd": ["bash"]},
            "rootfs": {"type": "layers", "diff_ids": [str(layer.diff_id)]},
            "history": [{"created": created, "created_by": f"mmdebstrap --variant=minbase {SUITE}"}],
        }
        store.set_ref(BASE_REF, commit_image(store, config, [layer]))
    finally:
        store.close()


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
