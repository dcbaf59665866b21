"""Judging: compare our image with the oracle's, and decide whether one build passes."""

from __future__ import annotations

from dataclasses import replace

from tools.conformance.flatten import Entry, FlatImage
from tools.conformance.model import BuildOutcome, BuildSpec, CaseSpec

__all__ = ["MAX_DIFFS", "RUNTIME_ARTIFACTS", "compare_images", "judge_build"]

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


def _entry_text(e: Entry) -> str:
    extra = f" -> {e.link}" if e.link else (f" sha256:{e.sha256[:12]}" if e.sha256 else "")
    return f"{e.type} {e.mode:04o} {e.uid}:{e.gid} {e.size}B{extra}"


def compare_images(
    ours: FlatImage,
    theirs: FlatImage,
    *,
    ignore_config: tuple[str, ...] = (),
    ignore_paths: tuple[str, ...] = (),
    oracle: str = "buildah",
) -> list[str]:
    """Differences between two images (config fields, then rootfs entries); empty when equivalent.

    ``oracle`` names the other side in the messages.
    """
    diffs: list[str] = []
    for key in sorted(set(ours.config) | set(theirs.config)):
        if key in ignore_config:
            continue
        a, b = ours.config.get(key), theirs.config.get(key)
        if key == "WorkingDir":  # BuildKit writes "/", buildah leaves it empty: the same at run time
            a, b = a or "/", b or "/"
        if a != b:
            diffs.append(f"config {key}: ours {a!r} {oracle} {b!r}")

    def ignored(path: str, a: Entry | None, b: Entry | None) -> bool:
        if any(path == p or path.startswith(p + "/") for p in ignore_paths):
            return True
        # mount points and files a RUN sandbox leaves behind: fine on one side when empty
        one = a if b is None else b if a is None else None
        return one is not None and path in RUNTIME_ARTIFACTS and one.size == 0

    for path in sorted(set(ours.files) | set(theirs.files)):
        a, b = ours.files.get(path), theirs.files.get(path)
        if a is not None and b is not None and a.type == b.type == "symlink":
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
    oracle: str = "buildah",
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
            )
    if problems:
        more = f" (+{len(problems) - MAX_DIFFS} more)" if len(problems) > MAX_DIFFS else ""
        return f"[{spec.label}] " + "; ".join(problems[:MAX_DIFFS]) + more
    return None
