"""Judging: compare our image with the oracle's, and decide whether one build passes."""

from __future__ import annotations

import posixpath
import re
from dataclasses import replace
from pathlib import Path

from tools.conformance.flatten import Entry, FlatImage
from tools.conformance.model import BuildOutcome, BuildSpec, CaseSpec

__all__ = ["MAX_DIFFS", "RUNTIME_ARTIFACTS", "compare_images", "judge_build", "mount_stubs"]

MAX_DIFFS = 4

# paths a RUN sandbox may leave behind as empty mount points/files; ignored when only one builder has them
RUNTIME_ARTIFACTS = frozenset(
    {
        "dev",
        "proc",
        "sys",
        "run",
        "run/secrets",
        "run/.containerenv",
        "etc/hosts",
        "etc/hostname",
        "etc/resolv.conf",
    }
)


def mount_stubs(dockerfile: str) -> frozenset[str]:
    """The absolute ``RUN --mount`` targets of a Dockerfile, as rootfs paths (no leading slash).

    Docker 20.10's BuildKit leaves an empty directory (or file) behind at each mount target it had to
    create, and their missing parents; current BuildKit removes them. ``compare_images`` ignores those
    stubs when only the oracle has them.
    """
    out: set[str] = set()
    for m in re.finditer(r"--mount=(\S+)", dockerfile):
        for field in m.group(1).split(","):
            key, _, value = field.partition("=")
            if key.strip().lower() in ("target", "dst", "destination") and value.startswith("/"):
                out.add(posixpath.normpath(value).strip("/"))
    return frozenset(p for p in out if p)


def dockerfile_text(context: Path, dockerfile: str | None) -> str:
    """The Dockerfile a build uses (``-f`` relative to the context, else Dockerfile/dockerfile), or ""."""
    for name in [dockerfile] if dockerfile else ["Dockerfile", "dockerfile"]:
        try:
            return (context / name).read_text(errors="replace")
        except OSError:
            continue
    return ""


def _entry_text(e: Entry) -> str:
    extra = f" -> {e.link}" if e.link else (f" sha256:{e.sha256[:12]}" if e.sha256 else "")
    return f"{e.type} {e.mode:04o} {e.uid}:{e.gid} {e.size}B{extra}"


def compare_images(
    ours: FlatImage,
    theirs: FlatImage,
    *,
    ignore_config: tuple[str, ...] = (),
    ignore_paths: tuple[str, ...] = (),
    oracle: str = "docker",
    lenient: bool = False,
    stubs: frozenset[str] = frozenset(),
) -> list[str]:
    """Differences between two images (config fields, then rootfs entries); empty when equivalent.

    ``oracle`` names the other side in the messages; ``lenient`` treats an empty WorkingDir as "/" and
    ignores symlink modes (for oracles that differ from BuildKit there, like buildah); ``stubs`` are mount
    targets (see ``mount_stubs``) whose empty entries, and missing parents, only the oracle may have.
    """
    diffs: list[str] = []
    for key in sorted(set(ours.config) | set(theirs.config)):
        if key in ignore_config:
            continue
        a, b = ours.config.get(key), theirs.config.get(key)
        if lenient and key == "WorkingDir":  # buildah leaves it empty where BuildKit writes "/"
            a, b = a or "/", b or "/"
        if a != b:
            diffs.append(f"config {key}: ours {a!r} {oracle} {b!r}")

    def ignored(path: str, a: Entry | None, b: Entry | None) -> bool:
        if any(path == p or path.startswith(p + "/") for p in ignore_paths):
            return True
        # mount points and files a RUN sandbox leaves behind: fine on one side when empty
        one = a if b is None else b if a is None else None
        if one is not None and path in RUNTIME_ARTIFACTS and one.size == 0:
            return True
        return (
            a is None
            and b is not None
            and b.size == 0
            and b.type in ("dir", "file")
            and (path in stubs or any(s.startswith(path + "/") for s in stubs))
        )

    for path in sorted(set(ours.files) | set(theirs.files)):
        a, b = ours.files.get(path), theirs.files.get(path)
        if lenient and a is not None and b is not None and a.type == b.type == "symlink":
            a, b = replace(a, mode=0o777), replace(b, mode=0o777)  # a symlink's mode means nothing on Linux
        if a == b or ignored(path, a, b):
            continue
        if a is None:
            diffs.append(f"/{path}: only in {oracle} ({_entry_text(b)})" if b else f"/{path}")
        elif b is None:
            diffs.append(f"/{path}: only in ours ({_entry_text(a)})")
        else:
            diffs.append(f"/{path}: ours {_entry_text(a)}, {oracle} {_entry_text(b)}")
    return diffs


def judge_build(
    spec: BuildSpec,
    case: CaseSpec,
    ours: BuildOutcome,
    theirs: BuildOutcome | None,
    *,
    oracle: str = "docker",
    lenient: bool = False,
    stubs: frozenset[str] = frozenset(),
) -> str | None:
    """None when this build passes, else the reason it fails (``theirs``: the oracle's outcome, if run)."""
    if spec.fail is not None:
        if ours.ok:
            return f"[{spec.label}] must fail, but ours succeeded"
        if ours.error.startswith("UNCLEAR"):
            return f"[{spec.label}] failed without a clear message: {ours.error}"
        if spec.oracle and theirs is not None and theirs.ok:
            return f"[{spec.label}] oracle {oracle} did not fail (add an override)"
        return None
    if not ours.ok:
        return f"[{spec.label}] build failed: {ours.error}"
    assert ours.image is not None and ours.raw_config is not None
    problems: list[str] = []
    if spec.expect is not None:
        problems += spec.expect.check(ours.raw_config, ours.image, ours.contents)
    if spec.oracle and theirs is not None:
        if not theirs.ok:
            problems.append(f"oracle {oracle} failed ({theirs.error[:160]}); add an override")
        else:
            assert theirs.image is not None
            problems += compare_images(
                ours.image,
                theirs.image,
                ignore_config=case.ignore_config,
                ignore_paths=case.ignore_paths,
                oracle=oracle,
                lenient=lenient,
                stubs=stubs,
            )
    if problems:
        more = f" (+{len(problems) - MAX_DIFFS} more)" if len(problems) > MAX_DIFFS else ""
        return f"[{spec.label}] " + "; ".join(problems[:MAX_DIFFS]) + more
    return None
