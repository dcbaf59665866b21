"""Helpers shared by the benchmark scripts: timed runs with peak RSS, a hermetic environment, buildah.

Import as ``bench._common`` after putting the repository root on ``sys.path`` (every script does).
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tools.conformance.procs import unmount_below

__all__ = ["TIME", "Buildah", "Sample", "Series", "hermetic_env", "median", "run_measured", "stop_group"]

TIME = "/usr/bin/time"  # GNU time: the peak RSS of the command itself, not of the benchmark's own process
# variables that would make a tool read the user's configuration instead of the bench's
_LEAKY = ("KUBECONFIG", "DOCKER_CONFIG", "DOCKER_HOST", "DOCKER_CONTEXT", "PYTHONDONTWRITEBYTECODE")
_LEAKY_PREFIXES = ("IDPBUILDER_", "REGISTRY_", "BUILDKIT_", "DOCKER_")


@dataclass
class Sample:
    """One run: wall seconds (seen by the parent), peak RSS in MB, exit code and the tail of its output."""

    wall: float
    rss_mb: float
    code: int
    out: str = ""


@dataclass
class Series:
    """Every sample of one (scenario, mode, tool)."""

    samples: list[Sample] = field(default_factory=list)

    @property
    def walls(self) -> list[float]:
        return [s.wall for s in self.samples]

    @property
    def median(self) -> float:
        return median(self.walls)

    @property
    def rss_mb(self) -> float:
        """The highest peak RSS of all samples."""
        return max((s.rss_mb for s in self.samples), default=float("nan"))

    def cell(self, digits: int = 2) -> str:
        """``median (min-max)``, or the value alone for one sample."""
        xs = self.walls
        if len(xs) == 1:
            return f"{xs[0]:.{digits}f} s"
        return f"{self.median:.{digits}f} s ({min(xs):.{digits}f}-{max(xs):.{digits}f})"


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def hermetic_env(home: Path, **extra: str) -> dict[str, str]:
    """The current environment without kubeconfig, docker, registry or idpbuilder settings, ``HOME=home``."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _LEAKY and not k.startswith(_LEAKY_PREFIXES) and k != "XDG_RUNTIME_DIR"
    }
    env.update(HOME=str(home), **extra)
    return env


def run_measured(
    cmd: Sequence[str], env: Mapping[str, str], rss_file: Path, *, cwd: Path | None = None, keep: int = 20000
) -> Sample:
    """Run ``cmd`` under GNU time: wall time from the parent, the command's peak RSS (a forked child's
    ``ru_maxrss`` would include the benchmark process it was forked from), exit code, the last ``keep``
    characters of stdout+stderr."""
    t0 = time.perf_counter()
    # its own process group: on Ctrl-C or an error the whole command (not just GNU time) is stopped, so that
    # e.g. buildah does not go on mounting below a storage the cleanup is removing
    p = subprocess.Popen(
        [TIME, "-f", "%M", "-o", str(rss_file), *cmd],
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = p.communicate()
    except BaseException:
        stop_group(p)
        raise
    wall = time.perf_counter() - t0
    try:
        rss_kb = float(rss_file.read_text().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        rss_kb = float("nan")
    return Sample(wall, rss_kb / 1024, p.returncode, out.decode(errors="replace")[-keep:])


def stop_group(p: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM to ``p``'s process group (it leads its own), SIGKILL after ``grace`` seconds; reaps ``p``."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _group_alive(p.pid):
            time.sleep(0.1)
            p.poll()
        if not _group_alive(p.pid):
            break
    p.poll()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class Buildah:
    """buildah with private overlay storage (``--root``/``--runroot`` under ``root``) and chroot isolation."""

    def __init__(self, root: Path, env: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.base = [
            "buildah",
            "--root",
            str(root / "root"),
            "--runroot",
            str(root / "run"),
            "--storage-driver",
            "overlay",
        ]
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        self.env = {**(env if env is not None else os.environ), "TMPDIR": str(root / "tmp")}

    def seed(self, layout: Path, ref: str) -> None:
        """Copy a base image from an OCI layout into buildah's storage under ``ref``."""
        # skopeo writes containers-storage directly (buildah pull oci:… names the image after the layout
        # path, which fails for paths with dot-directories such as ~/.cache)
        dest = f"containers-storage:[overlay@{self.root / 'root'}+{self.root / 'run'}]{ref}"
        subprocess.run(["skopeo", "copy", "-q", f"oci:{layout}:{ref}", dest], check=True, env=self.env)

    def build_command(
        self, ctx: Path, tag: str, *, no_cache: bool, build_args: Sequence[str] = (), tls_verify: bool = True
    ) -> list[str]:
        """``buildah bud`` (``--layers`` so that warm builds hit the cache)."""
        cmd = [*self.base, "bud", "--isolation", "chroot", "--layers", "-q", "-t", tag]
        cmd += [a for b in build_args for a in ("--build-arg", b)]
        cmd += [] if tls_verify else ["--tls-verify=false"]
        return cmd + (["--no-cache"] if no_cache else []) + [str(ctx)]

    def has_image(self, tag: str) -> bool:
        p = subprocess.run([*self.base, "inspect", "--type", "image", tag], env=self.env, capture_output=True)
        return p.returncode == 0

    def cleanup(self) -> None:
        """Remove images and storage (unmounting what the overlay driver left mounted)."""
        subprocess.run([*self.base, "rmi", "--all", "--force"], capture_output=True, env=self.env)
        unmount_below(self.root)
        shutil.rmtree(self.root, ignore_errors=True)
