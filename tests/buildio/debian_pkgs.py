"""Debian bookworm bases with extra packages for the example builds: ``mmdebstrap --variant=minbase`` plus a
package list, cached in ``$IDPBUILDER_TEST_CACHE`` under the same name scheme as ``fixtures/debian.py``'s
package-list variant (a hash of the suite and the sorted packages), so every test session shares one tarball.

    python -m tests.buildio.debian_pkgs golang-go ca-certificates     # make (or find) it, print its path
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

from idpbuilder.image import LayerWriter, commit_image
from idpbuilder.oci import Platform
from idpbuilder.store.layout import Store

__all__ = ["Unavailable", "install_rootfs", "rootfs_tar"]

SUITE = "bookworm"
CACHE = Path(os.environ.get("IDPBUILDER_TEST_CACHE", "/var/tmp/idpbuilder-test-cache"))
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Unavailable(RuntimeError):
    """No such rootfs can be made here (the message says why); tests skip on it."""


def _mirror() -> str | None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from fixtures.debian import host_debian_mirror

    return host_debian_mirror()


def rootfs_tar(packages: tuple[str, ...]) -> Path:
    """A minbase bookworm rootfs with ``packages`` (no recommends) as a tarball, made once then reused."""
    key = hashlib.sha256(" ".join([SUITE, "minbase", "norecommends", *sorted(packages)]).encode()).hexdigest()
    out = CACHE / f"debian-{SUITE}-{key[:16]}.tar"
    if out.exists():
        return out
    if shutil.which("mmdebstrap") is None:
        raise Unavailable("mmdebstrap is not installed (apt-get install mmdebstrap)")
    mirror = _mirror()
    if mirror is None:
        raise Unavailable(f"no Debian {SUITE} mirror in the host's apt sources")
    CACHE.mkdir(parents=True, exist_ok=True)
    part = out.with_suffix(f".{os.getpid()}.tmp.tar")  # mmdebstrap picks the format from the suffix
    include = [f"--include={','.join(sorted(packages))}"] if packages else []
    cmd = ["mmdebstrap", "--variant=minbase", "--mode=root", "--skip=output/dev", "--quiet",
           "--aptopt=APT::Install-Recommends false", *include, SUITE, str(part), mirror]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, check=False)
    if p.returncode != 0:
        part.unlink(missing_ok=True)
        raise Unavailable(f"mmdebstrap failed ({p.returncode}): {p.stderr[-2000:]}")
    part.rename(out)
    return out


def install_rootfs(home: Path, tar_path: Path, ref: str) -> str:
    """Pack ``tar_path`` into one layer, commit an image (PATH, ``bash``) tagged ``ref``; its manifest digest."""
    store = Store.open(home)
    try:
        with tarfile.open(tar_path) as src, LayerWriter(store, compression="gzip", level=1) as w:
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
        image: dict[str, Any] = {
            "architecture": plat.architecture,
            "os": plat.os,
            "created": created,
            "config": {"Env": [PATH_ENV], "Cmd": ["bash"]},
            "rootfs": {"type": "layers", "diff_ids": [str(layer.diff_id)]},
            "history": [{"created": created, "created_by": f"mmdebstrap --variant=minbase {SUITE}"}],
        }
        desc = commit_image(store, image, [layer])
        store.set_ref(ref, desc)
        return str(desc.digest)
    finally:
        store.close()


if __name__ == "__main__":
    print(rootfs_tar(tuple(sys.argv[1:])))
