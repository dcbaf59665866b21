"""The builder under test: ``idpbuilder --store HOME build``, one HOME per case seeded with the base images."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

from tools.conformance.buildcmd import common_args, dockerfile_args, outcome_from_layout, secret_args
from tools.conformance.model import BuildOutcome, BuildSpec
from tools.conformance.procs import run, tail

__all__ = ["OursBuilder", "ours_error"]


class OursBuilder:
    """Runs ``idpbuilder --store HOME build`` (one HOME per case, seeded with the base images)."""

    def __init__(self, command: tuple[str, ...], template_home: Path) -> None:
        self.command = command
        self.template = template_home
        rc, out = run([*command, "build", "--help"])
        self.available = rc == 0
        self.unavailable_reason = "" if self.available else f"`idpbuilder build` unavailable: {tail(out, 2)}"
        self.supports_secret = "--secret" in out

    def new_home(self, dest: Path) -> Path:
        """A fresh idpbuilder home whose store already holds the base images."""
        shutil.copytree(self.template / "store", dest / "store", symlinks=True)
        return dest

    def build(self, home: Path, context: Path, spec: BuildSpec, ref: str, tmp: Path) -> BuildOutcome:
        """Build one spec; on success read the image back from HOME/store."""
        cmd = [*self.command, "--store", str(home), "build", *dockerfile_args(spec, context), "-t", ref]
        cmd += common_args(spec) + secret_args(spec, tmp) + [str(context)]
        t0 = time.monotonic()
        rc, out = run(cmd, env={**os.environ, "NO_COLOR": "1"})
        seconds = time.monotonic() - t0
        if rc != 0:
            return BuildOutcome(False, seconds, ours_error(out))
        return outcome_from_layout(True, seconds, out, home / "store", ref)


def ours_error(output: str) -> str:
    """Our failure output, flagged when it is not a clear one-line ``Error:`` message."""
    text = output.strip()
    if "Traceback (most recent call last)" in text:
        return "UNCLEAR (traceback): " + tail(text, 3)
    if "internal error" in text:
        return "UNCLEAR (internal error): " + tail(text, 2)
    if not re.search(r"^Error: \S", text, re.M):
        return "UNCLEAR (no 'Error:' line): " + tail(text, 3)
    return tail(text, 4)
