"""A private Docker daemon (Debian's ``docker.io`` 20.10) for the docker oracle and the tests.

``Dockerd(state_dir)`` starts ``dockerd`` with its own data root, exec root, pid file and socket (no
iptables, no bridge: builds use ``--network host``), so it never touches a system daemon. Its built-in
BuildKit (v0.8) panics on a few Dockerfiles and takes the daemon down with it: ``ensure()`` restarts it
(images survive in the data root). ``read_docker_archive`` reads ``docker save`` output directly (skopeo's
conversion to OCI drops the Docker-only config fields ``OnBuild``, ``Healthcheck`` and ``Shell``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tools.conformance.flatten import FlatImage, config_summary, flatten_layers
from tools.conformance.procs import run, tail, unmount_below

__all__ = ["DOCKER", "DOCKERD", "Dockerd", "DockerdError", "read_docker_archive"]

DOCKER = "/usr/bin/docker"  # Debian's client (a newer static client may sit in /usr/local/bin)
DOCKERD = "/usr/sbin/dockerd"
START_TIMEOUT = 60.0


class DockerdError(RuntimeError):
    """The daemon could not be started or answered a command with an error."""


class Dockerd:
    """One private ``dockerd``: data root and log under ``state_dir``, exec root and API socket in a short
    directory under /tmp (unix socket paths are limited to 107 bytes)."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        # sockets (the API's, containerd's) need a short path: exec root and API socket live in /tmp
        self.run_dir = Path(tempfile.mkdtemp(prefix="idpd-", dir="/tmp"))
        self.socket = self.run_dir / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._lock = threading.Lock()

    @staticmethod
    def installed() -> bool:
        """Whether Debian's docker.io (client and daemon) is installed."""
        return os.access(DOCKER, os.X_OK) and os.access(DOCKERD, os.X_OK)

    def env(self, *, buildkit: bool = True) -> dict[str, str]:
        """The environment for the ``docker`` client talking to this daemon."""
        return {
            **os.environ,
            "DOCKER_HOST": self.host,
            "DOCKER_BUILDKIT": "1" if buildkit else "0",
            "DOCKER_CONFIG": str(self.dir / "client"),
            "BUILDKIT_PROGRESS": "plain",
        }

    def start(self, attempts: int = 3) -> None:
        """Start the daemon and wait until it answers (``DockerdError`` with its log tail if it does not).

        Its containerd sometimes misses the first dial when the machine is busy: up to ``attempts`` tries.
        """
        for i in range(attempts):
            try:
                self._start_once()
                return
            except DockerdError:
                if i == attempts - 1:
                    raise

    def _start_once(self) -> None:
        if not self.installed():
            raise DockerdError(f"{DOCKERD} not installed (apt-get install docker.io)")
        for d in ("root", "client"):
            (self.dir / d).mkdir(parents=True, exist_ok=True)
        (self.run_dir / "exec").mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        log = open(self.dir / "dockerd.log", "ab")
        cmd = [
            DOCKERD,
            "--data-root", str(self.dir / "root"),
            "--exec-root", str(self.run_dir / "exec"),
            "--pidfile", str(self.dir / "dockerd.pid"),
            "-H", self.host,
            "--iptables=false", "--ip-masq=false", "--bridge=none",
            "--storage-driver", "overlay2",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.socket.exists() and self.ping():
                return
            time.sleep(0.3)
        self.stop()
        raise DockerdError(f"dockerd did not start: {self.log_tail()}")

    def log_tail(self) -> str:
        """The end of the daemon's log."""
        try:
            return tail((self.dir / "dockerd.log").read_text(errors="replace"), 8)
        except OSError:
            return "(no log)"

    def ping(self) -> bool:
        """Whether the daemon answers ``docker version``."""
        try:
            p = subprocess.run(
                [DOCKER, "version", "--format", "{{.Server.Version}}"],
                env=self.env(), capture_output=True, timeout=20, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return False
        return p.returncode == 0

    def alive(self) -> bool:
        """Whether the daemon process still runs."""
        return self.proc is not None and self.proc.poll() is None

    def ensure(self) -> bool:
        """Restart the daemon when it died (BuildKit panics take it down); True when it was restarted."""
        with self._lock:
            if self.alive() and self.ping():
                return False
            self.stop()
            self.restarts += 1
            self.start()
            return True

    def stop(self) -> None:
        """Stop the daemon (SIGTERM, then SIGKILL of its process group) and unmount what it left."""
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        if p is not None:  # its containerd and shims run in the same session
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        unmount_below(self.dir)
        unmount_below(self.run_dir)

    def remove(self) -> None:
        """Stop the daemon and delete its state."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def docker(self, *args: str, buildkit: bool = True, cwd: Path | None = None) -> tuple[int, str]:
        """Run ``docker ARGS`` against this daemon: (exit code, output)."""
        return run([DOCKER, *args], env=self.env(buildkit=buildkit), cwd=cwd)

    def check(self, *args: str) -> str:
        """Run ``docker ARGS``; its output, or ``DockerdError``."""
        rc, out = self.docker(*args)
        if rc != 0:
            raise DockerdError(f"docker {' '.join(args)} failed: {tail(out)}")
        return out

    def version(self) -> str:
        """The server version line."""
        return self.check("version", "--format", "{{.Server.Version}}").strip()

    def load_from_layout(self, layout: Path, ref: str, tags: tuple[str, ...], tmp: Path) -> None:
        """Load image ``ref`` of an OCI layout into the daemon (skopeo -> docker-archive) as every tag."""
        archive = tmp / "load.tar"
        archive.unlink(missing_ok=True)
        rc, out = run(["skopeo", "copy", "-q", f"oci:{layout}:{ref}", f"docker-archive:{archive}:{tags[0]}"])
        if rc != 0:
            raise DockerdError(f"skopeo copy of {ref} failed: {tail(out)}")
        self.check("load", "-q", "-i", str(archive))
        archive.unlink()
        for t in tags[1:]:
            self.check("tag", tags[0], t)

    def pull(self, src: str, tags: tuple[str, ...]) -> None:
        """``docker pull SRC`` (e.g. from a loopback registry) and tag it as every name in ``tags``."""
        self.check("pull", "-q", src)
        for t in tags:
            self.check("tag", src, t)

    def save(self, ref: str, tmp: Path) -> tuple[dict[str, Any], FlatImage, dict[str, bytes]]:
        """``docker save REF`` read back: (raw config, flat image, small files)."""
        archive = tmp / "docker-save.tar"
        archive.unlink(missing_ok=True)
        rc, out = self.docker("save", "-o", str(archive), ref)
        if rc != 0 and "empty export" in out:  # docker cannot save an image without layers
            return self._inspect_only(ref)
        if rc != 0:
            raise DockerdError(f"docker save {ref} failed: {tail(out)}")
        try:
            return read_docker_archive(archive, tmp / "docker-save")
        finally:
            archive.unlink(missing_ok=True)

    def _inspect_only(self, ref: str) -> tuple[dict[str, Any], FlatImage, dict[str, bytes]]:
        """An image with no layers, from ``docker image inspect`` (its config as the daemon holds it)."""
        info = json.loads(self.check("image", "inspect", ref))[0]
        config = {
            "architecture": info.get("Architecture"),
            "os": info.get("Os"),
            "config": info.get("Config"),
        }
        if info.get("Variant"):
            config["variant"] = info["Variant"]
        return config, FlatImage(config_summary(config), {}, []), {}


def read_docker_archive(archive: Path, scratch: Path) -> tuple[dict[str, Any], FlatImage, dict[str, bytes]]:
    """The first image of a ``docker save`` tarball: (raw config, flat image, small regular files)."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tf:
            tf.extractall(scratch, filter="data")
        manifest = json.loads((scratch / "manifest.json").read_text())[0]
        config = json.loads((scratch / manifest["Config"]).read_text())
        layers = [("application/vnd.docker.image.rootfs.diff.tar", scratch / p) for p in manifest["Layers"]]
        files, members, contents = flatten_layers(layers)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return config, FlatImage(config_summary(config), files, members), contents
