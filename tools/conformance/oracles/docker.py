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
            return BuildOutcome(False, seconds, docker_error(out))
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


def docker_error(output: str) -> str:
    """The error lines of a failed ``docker build`` (its progress output is mostly noise)."""
    lines = [ln.strip() for ln in output.splitlines()]
    errors = [ln for ln in lines if "error" in ln.lower() or "failed" in ln.lower()]
    return " | ".join(dict.fromkeys(errors[-4:]))[-600:] if errors else tail(output)


def classic(work: Path, base_layout: Path, workers: int) -> DockerOracle:
    """The docker oracle with the legacy builder (``DOCKER_BUILDKIT=0``)."""
    return DockerOracle(work, base_layout, workers, buildkit=False)


# Where docker 20.10's built-in BuildKit (v0.8, dockerfile frontend 1.2 era) is older than the behaviour
# a case asserts: those builds are judged by their EXPECT.md. Same shape as the buildah table.
# (Empty mount-target directories it leaves behind, "stubs", are not listed: the judge ignores them for
# every case, see ``judge.mount_stubs``.)
_HEREDOC = "dockerfile frontend 1.2: no heredocs (added in 1.4)"
BUILDKIT_DIFFERENCES: Differences = {
    "testAddChecksum": ("no ADD --checksum (dockerfile 1.6)", ()),
    "testAddInvalidChmod": ("accepts --chmod=64a and --chmod=10000 (validated since BuildKit 0.12)", ()),
    "testCopyInvalidChmod": ("accepts --chmod=64a and --chmod=10000 (validated since BuildKit 0.12)", ()),
    "testAddURLChmod": ("ADD --chmod=$ARG not expanded (expansion in flags: dockerfile 1.5)", ()),
    "testCopyChmod": ("--chmod=$ARG not expanded and not applied to created parents (dockerfile 1.5+)", ()),
    "testArgDefaultExpansion": ("no ${VAR:?msg} expansion (dockerfile 1.5)", ()),
    "testGlobalArgErrors": ("no ${VAR:?msg} expansion (dockerfile 1.5)", ()),
    "testDefaultEnvWithArgs": ("no ${VAR#prefix}/${VAR%suffix} expansion (dockerfile 1.6)", ()),
    "testChmodNonOctal": (_HEREDOC, ()),
    "testCopyHeredoc": (_HEREDOC, ()),
    "testCopyHeredocSpecialSymbols": (_HEREDOC, ()),
    "testHeredocIndent": (_HEREDOC, ()),
    "testHeredocVarSubstitution": (_HEREDOC, ()),
    "testRunBasicHeredoc": (_HEREDOC, ()),
    "testRunComplexHeredoc": (_HEREDOC, ()),
    "testRunFakeHeredoc": (_HEREDOC, ()),
    "testRunShebangHeredoc": (_HEREDOC, ()),
    "testCopyLinkDotDestDir": ("no COPY --link (dockerfile 1.4)", ()),
    "testCopyLinkEmptyDestDir": ("no COPY --link (dockerfile 1.4)", ()),
    "testCopyParents": ("no COPY --parents (dockerfile 1.7 labs)", ()),
    "testCopyRelativeParents": ("no COPY --parents (dockerfile 1.7 labs)", ()),
    "testCopyParentsMissingDirectory": ("no COPY --parents (dockerfile 1.7 labs)", ()),
    "testExcludedFilesOnCopy": ("no COPY/ADD --exclude (dockerfile 1.7 labs)", ()),
    "testDockerfileAddArchive": (
        "no ADD --unpack (dockerfile 1.17)",
        ("Dockerfile.unpack-false", "Dockerfile.url-unpack"),
    ),
    "testDockerfileAddChownArchive": (
        "ADD --chown not applied to extracted archive entries (BuildKit 0.10)",
        (),
    ),
    "testInvalidJSONCommands": (
        "accepts invalid JSON exec form as shell form, drops ENTRYPOINT []string",
        (),
    ),
    "testMountArg": ("no variable expansion in RUN --mount options (dockerfile 1.4)", ()),
    "testMountEnvVar": ("no ENV expansion in RUN --mount options (dockerfile 1.4)", ()),
    "testMountDuplicate": (
        "two bind mounts of the context: a context edit misses the cache key",
        ("after a.txt edit",),
    ),
    "testOnBuildInheritedStageWithFrom": (
        "ONBUILD COPY --from=<stage> cannot see the stage (BuildKit 0.13)",
        (),
    ),
    "testOutOfOrderStage": ("COPY --from a later stage is not rejected (dockerfile 1.5)", ("Dockerfile",)),
    "testPlatformArgsExplicit": ("cannot export an image for a foreign OS (darwin)", ()),
    "testSecretAsEnviron": ("no RUN --mount=type=secret,env= (dockerfile 1.10)", ()),
    "testTargetStageNameArg": ("no TARGETSTAGE built-in ARG (dockerfile 1.11)", ()),
    "testUserAdditionalGids": ("RUN does not get the user's supplementary groups (BuildKit 0.12)", ()),
}

# The classic builder on top: none of BuildKit's RUN --mount, secrets or --chmod.
_NO_BUILDKIT = "the classic builder has no RUN --mount / secrets / --chmod"
CLASSIC_DIFFERENCES: Differences = {
    **BUILDKIT_DIFFERENCES,
    **{
        name: (_NO_BUILDKIT, ())
        for name in (
            "testCacheMountDefaultID",
            "testCacheMountUser",
            "testMountContext",
            "testMountRWCache",
            "testMountTmpfs",
            "testMountFromError",
            "testMountInvalid",
            "testSecretFileParams",
            "testSecretRequiredWithoutValue",
            "testSymlinkedDockerfile",
        )
    },
}
