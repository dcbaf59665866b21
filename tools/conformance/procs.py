"""Subprocess and mount helpers shared by the builders and the runner."""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["BUILD_TIMEOUT", "run", "tail", "unmount_below"]

BUILD_TIMEOUT = 180.0


def tail(text: str, n: int = 6) -> str:
    """The last ``n`` non-blank lines of ``text`` joined with `` | `` (at most 600 characters)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-n:])[-600:]


def run(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``cmd`` with stdin closed; (exit code, stdout+stderr); 124 when it outlives BUILD_TIMEOUT."""
    try:
        p = subprocess.run(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=BUILD_TIMEOUT,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else ""
        return 124, out + f"\ntimed out after {BUILD_TIMEOUT:.0f}s"
    return p.returncode, p.stdout.decode(errors="replace")


def unmount_below(root: Path) -> None:
    """Unmount every mount under ``root`` (buildah's overlay driver leaves layer mounts behind)."""
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mounts") as f:
        points = [line.split()[1].replace("\\040", " ") for line in f]
    for m in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        if subprocess.run(["umount", m], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", m], capture_output=True)
