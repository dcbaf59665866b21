"""Custom ``Expect`` checks for the cases whose EXPECT.md assertions are more than files, types and config.

Each check takes (raw image config, flattened image, small file contents) and returns the assertions that
do not hold, as short messages (empty when all hold).
"""

from __future__ import annotations

from typing import Any

from tools.conformance.flatten import FlatImage

__all__ = ["env_txt", "excluded_files", "history", "last_layer", "scratch_config"]


def history(*want: tuple[str, bool]) -> Any:
    """A custom check: the history entries after the base image's two, in order (substring, empty_layer)."""

    def check(raw: dict[str, Any], image: FlatImage, contents: dict[str, bytes]) -> list[str]:
        hist = raw.get("history") or []
        got = hist[2:]
        if len(got) != len(want):
            return [f"history has {len(got)} entries after the base, want {len(want)}"]
        problems = []
        for i, ((sub, empty), h) in enumerate(zip(want, got, strict=True)):
            if sub not in h.get("created_by", ""):
                problems.append(f"history[{i + 2}] created_by {h.get('created_by')!r} lacks {sub!r}")
            if bool(h.get("empty_layer")) != empty:
                problems.append(f"history[{i + 2}] empty_layer {h.get('empty_layer')!r}, want {empty}")
            if not h.get("created"):
                problems.append(f"history[{i + 2}] has no created time")
        return problems

    return check


def scratch_config(raw: dict[str, Any], image: FlatImage, contents: dict[str, bytes]) -> list[str]:
    problems = []
    if not raw.get("os") or not raw.get("architecture"):
        problems.append("os/architecture empty")
    cfg = raw.get("config") or {}
    if not cfg.get("WorkingDir"):
        problems.append("WorkingDir empty")
    rootfs = raw.get("rootfs") or {}
    if rootfs.get("type") != "layers" or rootfs.get("diff_ids"):
        problems.append(f"rootfs {rootfs!r}, want layers with no diff_ids")
    hist = raw.get("history") or []
    if len(hist) != 1 or "ENV foo=bar" not in hist[0].get("created_by", "") or not hist[0].get("empty_layer"):
        problems.append(f"history {hist!r}, want one empty_layer ENV foo=bar entry")
    env = cfg.get("Env") or []
    if "foo=bar" not in env or not any(e.startswith("PATH=") for e in env):
        problems.append(f"Env {env!r} lacks foo=bar or PATH")
    return problems


def env_txt(raw: dict[str, Any], image: FlatImage, contents: dict[str, bytes]) -> list[str]:
    lines = contents.get("env.txt", b"").decode(errors="replace").splitlines()
    problems = [] if "BAR=" in lines else ["/env.txt lacks BAR= (ARG BAR= must be exported)"]
    if any(line.startswith("FOO=") for line in lines):
        problems.append("/env.txt has FOO= (ARG FOO without value must not be exported)")
    return problems


def last_layer(present: tuple[str, ...], missing: tuple[str, ...]) -> Any:
    def check(raw: dict[str, Any], image: FlatImage, contents: dict[str, bytes]) -> list[str]:
        last = set(image.layer_members[-1]) if image.layer_members else set()
        out = [f"last layer lacks {p}" for p in present if p not in last]
        out += [f"last layer has {p}" for p in missing if p in last]
        return out

    return check


_EXCLUDE_FILES = {  # name -> content (symlinks: "->target"), see testExcludedFilesOnCopy/EXPECT.md
    "dir1/file-101.png": "2",
    "dir1/file-102.txt": "3",
    "dir1/file-103.jpeg": "4",
    "dir2/file-201.pdf": "6",
    "dir2/file-202.jpeg": "7",
    "dir2/file-203.png": "8",
    "dir3/file-301.mp3": "9",
    "dir3/file-302.mpeg": "10",
    "dir4/file-401.txt": "11",
    "dir4/file-402.txt": "->file-401.txt",
    "dir4/file-403.txt": "->file-404.txt",
}
_EXCLUDE_KEEP = {
    "builder1/1": ("dir1/file-102.txt", "dir2/file-201.pdf", "dir3/file-301.mp3", "dir3/file-302.mpeg")
    + ("dir4/file-401.txt", "dir4/file-402.txt", "dir4/file-403.txt"),
    "builder2/2": ("dir1/file-101.png", "dir1/file-103.jpeg", "dir2/file-202.jpeg", "dir2/file-203.png")
    + ("dir3/file-301.mp3", "dir3/file-302.mpeg"),
    "builder3/3": ("dir3/file-302.mpeg",),
    "builder4/4": ("dir3/file-302.mpeg",),
    "builder5/5": ("dir1/file-102.txt", "dir4/file-401.txt", "dir4/file-402.txt", "dir4/file-403.txt"),
    "builder6/6": (),
}


def excluded_files(raw: dict[str, Any], image: FlatImage, contents: dict[str, bytes]) -> list[str]:
    """testExcludedFilesOnCopy: per builder dir, exactly the kept files (flattened: dir*/ contents merge)."""
    problems = []
    for prefix, keep in _EXCLUDE_KEEP.items():
        if image.files.get(prefix, None) is None or image.files[prefix].type != "dir":
            problems.append(f"/{prefix} missing")
            continue
        # builder1/2 copy the context root (dirs kept), the others merge the matched dirs' contents
        flat = not prefix.startswith(("builder1", "builder2"))
        want = {(name.split("/", 1)[1] if flat else name): _EXCLUDE_FILES[name] for name in keep}
        got = {
            p[len(prefix) + 1 :]: e
            for p, e in image.files.items()
            if p.startswith(prefix + "/") and e.type != "dir" and not p.endswith("Dockerfile")
        }
        for rel in sorted(set(want) | set(got)):
            if rel not in got:
                problems.append(f"/{prefix}/{rel} missing")
            elif rel not in want:
                problems.append(f"/{prefix}/{rel} should be excluded")
            elif want[rel].startswith("->"):
                if got[rel].type != "symlink" or got[rel].link != want[rel][2:]:
                    problems.append(f"/{prefix}/{rel} should be a symlink {want[rel]}")
    return problems
