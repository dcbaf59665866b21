"""End-to-end workflow tests: the real ``idpbuilder`` CLI in a subprocess against real registries, runc,
podman, skopeo, umoci and oci-image-tool. Helpers shared by the e2e tests live here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.cli import CliResult, run_cli
from fixtures.podman import Podman
from fixtures.registry import RegistryInfo

HELLO_SH = '#!/bin/sh\necho "hello from the demo image"\ncat /etc/motd\n'
HELLO_MSG = "hello from the demo image"
MOTD = "built without docker"


def demo_dockerfile(base: str) -> str:
    """The master workflow's Dockerfile (SPEC §2), FROM ``base``."""
    return (
        f"FROM {base}\n"
        'RUN echo "built without docker" > /etc/motd\n'
        "WORKDIR /app\n"
        "COPY hello.sh .\n"
        "RUN chmod +x hello.sh\n"
        'CMD ["./hello.sh"]\n'
    )


def write_context(root: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    """A build context directory holding ``Dockerfile`` and ``files`` (all mode 0644)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        p.chmod(0o644)
    return root


@dataclass
class Idp:
    """The CLI bound to one IDPBUILDER_HOME, always run as a subprocess (``python -m idpbuilder``)."""

    home: Path

    def __call__(
        self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 180
    ) -> CliResult:
        """Run ``idpbuilder ARGS`` and return (code, stdout, stderr)."""
        return run_cli(args, home=self.home, cwd=cwd, env=env, timeout=timeout)


@pytest.fixture
def idp(idp_home: Path) -> Idp:
    """The real CLI in a subprocess on a fresh home."""
    return Idp(idp_home)


@pytest.fixture
def tls_registry(seeded_registries: dict[str, RegistryInfo]) -> RegistryInfo:
    """The shared TLS + htpasswd registry holding ``library/busybox:latest``."""
    return seeded_registries["tls"]


def pull_env(info: RegistryInfo) -> dict[str, str]:
    """Environment for a build whose FROM is in ``info`` (credentials and CA as IDPBUILDER_* variables)."""
    return info.env()


# ---------------------------------------------------------------- cleanliness after a failed or stopped build
def mounts_under(path: Path) -> list[str]:
    """Mount points (from /proc/self/mountinfo) at or below ``path``."""
    prefix = str(path.resolve())
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4]
            if mnt == prefix or mnt.startswith(prefix + "/"):
                out.append(mnt)
    return out


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes whose argv mentions ``text`` (leftover runc, helpers, containers)."""
    found = []
    me = os.getpid()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == me:
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        line = " ".join(a.decode(errors="replace") for a in argv if a)
        if text in line:
            found.append(f"{d.name}: {line}")
    return found


def runc_containers(root: Path | None = None) -> list[str]:
    """Container ids ``runc list`` shows (the default state root, or ``root``)."""
    args = ["runc"] + (["--root", str(root)] if root else []) + ["list", "-q"]
    p = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    return sorted(p.stdout.split())


def scratch_entries(home: Path) -> set[str]:
    """Entries in the home's scratch areas: everything under ``tmp/``, and ``work/`` two levels deep
    (``work/layers/<digest>`` is the extracted-layer cache: its digests count, not their contents)."""
    out: set[str] = set()
    tmp = home / "tmp"
    if tmp.is_dir():
        out |= {str(p.relative_to(home)) for p in tmp.rglob("*")}
    work = home / "work"
    if work.is_dir():
        for p in work.iterdir():
            out.add(str(p.relative_to(home)))
            if p.is_dir():
                out |= {str(q.relative_to(home)) for q in p.iterdir()}
    return out


def runc_state_dirs(home: Path) -> list[str]:
    """Run state left under the home (one directory per build process while it runs: runc state, run dirs,
    secrets); the tests run without $XDG_RUNTIME_DIR, so it lives in the store's work/state."""
    state = home / "work" / "state"
    return sorted(str(p) for p in state.iterdir()) if state.is_dir() else []


@dataclass(frozen=True)
class StoreSnapshot:
    """What a failed build must not change: the index bytes and the tag → digest map."""

    index: bytes
    tags: dict[str, str]


def store_snapshot(home: Path) -> StoreSnapshot:
    """Read ``store/index.json`` and its tags."""
    raw = (home / "store" / "index.json").read_bytes()
    tags = {
        m.get("annotations", {}).get("org.opencontainers.image.ref.name", ""): m["digest"]
        for m in json.loads(raw).get("manifests", [])
    }
    return StoreSnapshot(raw, tags)


def validate_store(home: Path) -> str:
    """``oci-image-tool validate --type image STORE``; returns its output (AssertionError if invalid)."""
    p = subprocess.run(
        ["oci-image-tool", "validate", "--type", "image", str(home / "store")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = p.stdout + p.stderr
    assert p.returncode == 0 and "Validation succeeded" in out, out
    return out


# ---------------------------------------------------------------- reading pulled images
def layer_member(layout: Path, ref: str, path: str) -> tarfile.TarInfo:
    """The last (topmost) tar entry for ``path`` in the image ``ref`` of OCI layout ``layout``."""
    idx = json.loads((layout / "index.json").read_text())
    mdesc = next(
        m
        for m in idx["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref
    )
    manifest = json.loads(_blob(layout, mdesc["digest"]).read_text())
    found: tarfile.TarInfo | None = None
    want = path.lstrip("/")
    for layer in manifest["layers"]:
        with tarfile.open(_blob(layout, layer["digest"]), "r:*") as tf:
            for m in tf:
                if m.name.lstrip("./").rstrip("/") == want:
                    found = m
    assert found is not None, f"{path} is in no layer of {ref}"
    return found


def _blob(layout: Path, digest: str) -> Path:
    algo, hexd = digest.split(":", 1)
    return layout / "blobs" / algo / hexd


@pytest.fixture
def fresh_podman() -> Iterator[Podman]:
    """podman with fresh private storage (pulls are real pulls) in a short /tmp path (podman refuses a
    runroot longer than 50 characters, which pytest's tmp_path exceeds)."""
    d = Path(tempfile.mkdtemp(prefix="idpe2e-pm-", dir="/tmp"))
    try:
        yield Podman(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
