"""The docker oracle: Debian's ``docker.io`` 20.10 (built-in BuildKit v0.8, or the classic builder).

Each workspace is a private ``dockerd`` (``tools.conformance.dockerd``) seeded with the base images; a
case's builds run against it after ``docker builder prune`` (so cache mounts and cached steps of one case
never leak into the next), and their images are read back from ``docker save``. A daemon taken down by a
BuildKit panic is restarted and the build counts as failed.

``DIFFERENCES`` lists the cases where docker 20.10's BuildKit is older than the behaviour the case asserts
(judged by the case's EXPECT.md instead); ``CLASSIC_DIFFERENCES`` adds what the legacy builder lacks.
"""

from __future__ import annotations

import contextlib
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tools.conformance.baseimages import BASE_REFS
from tools.conformance.buildcmd import common_args, dockerfile_args, secret_args
from tools.conformance.cases import Differences
from tools.conformance.dockerd import DOCKER, Dockerd
from tools.conformance.model import BuildOutcome, BuildSpec
from tools.conformance.procs import tail

__all__ = ["BUILDKIT_DIFFERENCES", "CLASSIC_DIFFERENCES", "DockerOracle", "docker_version"]


def docker_version() -> str:
    """``Docker version 20.10.24+dfsg1, build …`` (the client; Debian ships both from one package)."""
    try:
        p = subprocess.run([DOCKER, "--version"], capture_output=True, text=True, check=False)
    except OSError:
        return "docker (not installed)"
    return p.stdout.strip() or "docker (unknown version)"


class DockerOracle:
    """``docker build`` with BuildKit (default) or the classic builder, one private daemon per worker."""

    def __init__(self, work: Path, base_layout: Path, workers: int, *, buildkit: bool = True) -> None:
        self.buildkit = buildkit
        self.name = "docker" if buildkit else "docker-classic"
        self.version = f"{docker_version()} {'buildkit' if buildkit else 'classic'}"
        self.work = work
        self.base_layout = base_layout
        self.workers = workers
        self._free: queue.Queue[Dockerd] = queue.Queue()
        self._all: list[Dockerd] = []
        self._attached: list[Dockerd] = []
        self._lock = threading.Lock()

    def _new_daemon(self) -> Dockerd:
        with self._lock:
            d = Dockerd(self.work / f"dockerd-{len(self._all) + 1}")
            self._all.append(d)
        d.start()
        self._seed(d, self.base_layout)
        return d

    @staticmethod
    def _seed(d: Dockerd, layout: Path) -> None:
        tmp = d.dir / "tmp"
        tmp.mkdir(exist_ok=True)
        d.load_from_layout(layout, BASE_REFS[0], BASE_REFS, tmp)

    def attach(self, d: Dockerd, base_layout: Path | None = None) -> Path:
        """Use a running daemon (seeded from ``base_layout`` when given); return its workspace path.

        ``cleanup`` does not stop an attached daemon: whoever started it does.
        """
        if base_layout is not None:
            self._seed(d, base_layout)
        self._attached.append(d)
        return d.dir

    @contextlib.contextmanager
    def workspace(self) -> Iterator[Path]:
        """Borrow a daemon (started and seeded on first use) with an empty build cache."""
        try:
            d = self._free.get_nowait()
        except queue.Empty:
            d = self._new_daemon()
        try:
            d.ensure()
            d.docker("builder", "prune", "-af")
            yield d.dir
        finally:
            self._free.put(d)

    def _daemon(self, workspace: Path) -> Dockerd:
        return next(d for d in [*self._all, *self._attached] if d.dir == workspace)

    def build(self, workspace: Path, context: Path, spec: BuildSpec, ref: str, tmp: Path) -> BuildOutcome:
        """Build one spec with ``docker build`` and read the image back from ``docker save``."""
        d = self._daemon(workspace)
        cmd = ["build", "--network", "host", *dockerfile_args(spec, context), "-t", ref]
        cmd += common_args(spec) + (secret_args(spec, tmp) if self.buildkit else []) + [str(context)]
        t0 = time.monotonic()
        rc, out = d.docker(*cmd, buildkit=self.buildkit)
        seconds = time.monotonic() - t0
        if rc != 0:
            if d.ensure():
                return BuildOutcome(False, seconds, "docker daemon crashed (restarted): " + tail(out, 3))
            return BuildOutcome(False, seconds, tail(out))
        try:
            raw, image, contents = d.save(ref, tmp)
        except Exception as e:  # an image we cannot read back is a failed build
            return BuildOutcome(False, seconds, f"built, but docker save failed: {e}")
        finally:
            d.docker("rmi", "-f", ref)
        return BuildOutcome(True, seconds, "", raw, image, contents)

    def cleanup(self) -> None:
        """Stop every daemon and delete its state."""
        for d in self._all:
            d.remove()
        self._all.clear()
        shutil.rmtree(self.work / "dockerd-tmp", ignore_errors=True)


def classic(work: Path, base_layout: Path, workers: int) -> DockerOracle:
    """The docker oracle with the legacy builder (``DOCKER_BUILDKIT=0``)."""
    return DockerOracle(work, base_layout, workers, buildkit=False)


# Where docker 20.10's built-in BuildKit (v0.8, dockerfile frontend 1.2 era) is older than the behaviour
# a case asserts: those builds are judged by their EXPECT.md. Same shape as the buildah table.
BUILDKIT_DIFFERENCES: Differences = {}

# The classic builder on top: no BuildKit-only syntax at all.
CLASSIC_DIFFERENCES: Differences = {**BUILDKIT_DIFFERENCES}
