"""The buildah oracle: Debian's buildah with overlay storage and chroot isolation, plus where it differs.

``DIFFERENCES`` lists the cases where buildah 1.28 is known to differ from BuildKit; those builds are
judged by the case's ``Expect`` (from EXPECT.md) instead of by comparison with buildah.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tools.conformance.baseimages import BASE_REFS
from tools.conformance.buildcmd import common_args, dockerfile_args, outcome_from_layout, secret_args
from tools.conformance.cases import Differences
from tools.conformance.model import BuildOutcome, BuildSpec
from tools.conformance.procs import run, tail, unmount_below

__all__ = ["DIFFERENCES", "BuildahOracle"]


class BuildahOracle:
    """``buildah bud --isolation chroot`` with overlay storage, one storage root (workspace) per worker."""

    name = "buildah"

    def __init__(self, work: Path, base_layout: Path, roots: int) -> None:
        self.version = subprocess.run(
            ["buildah", "--version"], check=True, capture_output=True, text=True
        ).stdout.strip()
        self.work = work
        self.base_layout = base_layout
        self.root_count = roots
        self._roots: queue.Queue[Path] = queue.Queue()
        self._made = 0
        self._lock = threading.Lock()

    def _base(self, root: Path) -> list[str]:
        return [
            "buildah",
            "--root",
            str(root / "root"),
            "--runroot",
            str(root / "run"),
            "--storage-driver",
            "overlay",
        ]

    @staticmethod
    def _env(root: Path) -> dict[str, str]:
        # buildah keeps RUN --mount=type=cache dirs under $TMPDIR (default /var/tmp, shared by every run)
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        return {**os.environ, "TMPDIR": str(root / "tmp")}

    def _prepare(self, root: Path) -> None:
        b = self._base(root)
        rc, out = run([*b, "pull", "-q", f"oci:{self.base_layout}:{BASE_REFS[0]}"], env=self._env(root))
        if rc != 0:
            raise RuntimeError(f"buildah pull of the base image failed: {tail(out)}")
        image_id = out.strip().splitlines()[-1]
        rc, out = run([*b, "tag", image_id, *BASE_REFS])
        if rc != 0:
            raise RuntimeError(f"buildah tag failed: {tail(out)}")

    @contextlib.contextmanager
    def workspace(self) -> Iterator[Path]:
        """Borrow a storage root (created and seeded with the base image on first use)."""
        try:
            r = self._roots.get_nowait()
        except queue.Empty:
            with self._lock:
                self._made += 1
                r = self.work / f"buildah-{self._made}"
            r.mkdir(parents=True, exist_ok=True)
            self._prepare(r)
        try:
            yield r
        finally:
            self._roots.put(r)

    def build(self, root: Path, context: Path, spec: BuildSpec, ref: str, tmp: Path) -> BuildOutcome:
        """Build one spec with buildah and read the result back through an OCI layout."""
        b = self._base(root)
        df = (
            ["-f", str(context / spec.oracle_dockerfile)]
            if spec.oracle_dockerfile
            else dockerfile_args(spec, context)
        )
        cmd = [*b, "bud", "--isolation", "chroot", "--layers", "-q", *df, "-t", ref, *spec.oracle_args]
        cmd += common_args(spec) + secret_args(spec, tmp) + [str(context)]
        t0 = time.monotonic()
        rc, out = run(cmd, env=self._env(root))
        seconds = time.monotonic() - t0
        if rc != 0:
            return BuildOutcome(False, seconds, tail(out))
        layout = tmp / "buildah-oci"
        shutil.rmtree(layout, ignore_errors=True)
        rc, out = run([*b, "push", "-q", ref, f"oci:{layout}:img"], env=self._env(root))
        if rc != 0:
            return BuildOutcome(False, seconds, "push to OCI layout failed: " + tail(out))
        return outcome_from_layout(True, seconds, out, layout, "img")

    def cleanup(self) -> None:
        """Remove every storage root this oracle made."""
        while True:
            try:
                r = self._roots.get_nowait()
            except queue.Empty:
                break
            run([*self._base(r), "rm", "--all"], env=self._env(r))
            run([*self._base(r), "rmi", "--all", "--force"], env=self._env(r))
            unmount_below(r)
            shutil.rmtree(r, ignore_errors=True)


# Where Debian's buildah 1.28 differs from BuildKit, the EXPECT.md assertion judges instead of buildah:
# case -> (how buildah differs, labels of the affected builds; empty = all builds; ("-",) = none: the
# builds stay compared with buildah and only the self-check marks the EXPECT difference as known)
DIFFERENCES: Differences = {
    "testAddChecksum": ("no ADD --checksum", ()),
    "testAddInvalidChmod": ("accepts --chmod=10000", ("Dockerfile.10000",)),
    "testCopyInvalidChmod": ("accepts --chmod=10000", ("Dockerfile.10000",)),
    "testArgDefaultExpansion": ("no ${VAR:?msg} expansion", ()),
    "testGlobalArgErrors": ("no ${VAR:?msg} expansion", ()),
    "testDefaultEnvWithArgs": ("no ${VAR#prefix} expansion in FROM", ()),
    "testBuiltinArgs": ("undeclared proxy build-args not passed to RUN", ()),
    "testChmodNonOctal": ("no RUN heredocs", ()),
    "testCmdShell": ("shell-form ENTRYPOINT ignores SHELL", ()),
    "testCopyHeredoc": ("no COPY heredocs", ()),
    "testCopyHeredocSpecialSymbols": ("no COPY heredocs", ()),
    "testHeredocIndent": ("no heredocs", ()),
    "testHeredocVarSubstitution": ("no heredocs", ()),
    "testRunBasicHeredoc": ("no RUN heredocs", ()),
    "testRunComplexHeredoc": ("no RUN heredocs", ()),
    "testRunFakeHeredoc": ("no RUN heredocs", ()),
    "testRunShebangHeredoc": ("no RUN heredocs", ()),
    "testCopyLinkDotDestDir": ("no COPY --link", ()),
    "testCopyLinkEmptyDestDir": ("no COPY --link", ()),
    "testCopyParents": ("no COPY --parents", ()),
    "testCopyRelativeParents": ("no COPY --parents, no heredocs", ()),
    "testCopyParentsMissingDirectory": ("no COPY --parents, no heredocs", ()),
    "testExcludedFilesOnCopy": ("no COPY/ADD --exclude", ()),
    "testCopySocket": ("skips sockets instead of writing an empty file", ()),
    "testDockerfileADDFromURL": ("fails on a URL with an empty basename", ("Dockerfile.noname",)),
    "testDockerfileAddArchive": ("no ADD --unpack", ("Dockerfile.unpack-false", "Dockerfile.url-unpack")),
    "testDockerfileScratchConfig": ("empty WorkingDir and no PATH on scratch", ()),
    "testInvalidJSONCommands": ("accepts invalid JSON exec form, drops ENTRYPOINT []string", ()),
    "testMountDuplicate": ("layer cache ignores bind-mounted context changes", ("after a.txt edit",)),
    "testMultiStageCaseInsensitive": ("--target is case-sensitive", ()),
    "testPlatformArgsExplicit": ("FROM --platform=$BUILDPLATFORM with a foreign --platform", ()),
    "testPlatformArgsImplicit": ("no automatic TARGETOS in FROM", ()),
    "testSecretFileParams": ("RUN --mount=type=secret rejects required=false / uid / gid", ()),
    "testSecretAsEnviron": ("RUN --mount=type=secret has no env=", ()),
    "testOnBuildInheritedStageWithFrom": ("ONBUILD COPY --from=<stage> cannot see the stage", ()),
    "testCopyChmod": ("--chmod not applied to the parent dirs it creates", ()),
    "testTargetStageNameArg": ("no TARGETSTAGE built-in ARG", ()),
    "testUserAdditionalGids": ("OCI-format config drops SHELL (Docker/BuildKit record it)", ()),
    "testDockerfileAddChownArchive": ("ADD --chown not applied to extracted archive entries", ()),
    "testWorkdirCreatesDir": ("WORKDIR on scratch creates nothing without a RUN", ()),
    "testExportedHistory": ("history created_by in classic #(nop) form (compare the rest)", ("-",)),
    "testExportedHistoryFlattenArgs": (
        "history created_by in classic #(nop) form (compare the rest)",
        ("-",),
    ),
}
