"""What every builder (ours and each oracle) shares: image names, build flags, reading the result back."""

from __future__ import annotations

import re
from pathlib import Path

from tools.conformance.flatten import load_layout_image
from tools.conformance.model import BuildOutcome, BuildSpec
from tools.conformance.procs import tail

__all__ = ["common_args", "dockerfile_args", "image_ref", "outcome_from_layout", "secret_args"]


def image_ref(case: str, index: int) -> str:
    """The tag the ``index``-th build of ``case`` gets."""
    name = re.sub(r"[^a-z0-9]+", "-", case.lower()).strip("-")
    return f"conformance.local/cases/{name}:b{index}"


def dockerfile_args(spec: BuildSpec, context: Path) -> list[str]:
    """``-f FILE`` when the spec names a Dockerfile, else nothing (default discovery)."""
    return ["-f", str(context / spec.dockerfile)] if spec.dockerfile else []


def common_args(spec: BuildSpec) -> list[str]:
    """The docker-build flags both builders take: build args, target, platform, labels."""
    args: list[str] = []
    for a in spec.build_args:
        args += ["--build-arg", a]
    if spec.target:
        args += ["--target", spec.target]
    if spec.platform:
        args += ["--platform", spec.platform]
    for label in spec.labels:
        args += ["--label", label]
    return args


def secret_args(spec: BuildSpec, tmp: Path) -> list[str]:
    """``--secret id=ID,src=FILE`` per secret, each written to a file under ``tmp``."""
    args: list[str] = []
    for sid, value in spec.secrets:
        f = tmp / f"secret-{sid}"
        f.write_text(value)
        args += ["--secret", f"id={sid},src={f}"]
    return args


def outcome_from_layout(ok: bool, seconds: float, output: str, layout: Path, ref: str) -> BuildOutcome:
    """The outcome of a build: its error, or the image ``ref`` read back from the OCI layout."""
    if not ok:
        return BuildOutcome(False, seconds, tail(output))
    try:
        raw, image, contents = load_layout_image(layout, ref)
    except Exception as e:  # a built image we cannot read is a failure of the build
        return BuildOutcome(False, seconds, f"built, but the image is unreadable: {e}")
    return BuildOutcome(True, seconds, "", raw, image, contents)
