"""Remove temporary files that processes which are gone left in the home (killed pulls, builds, loads).

Every temp name carries its owner's stamp (``idpbuilder.owner``); an entry whose owner no longer runs is
removed. Live processes' files are never touched. Files that belong to ids of a rootless build's user
namespace may not be removable from outside it: those stay until the next build, which reaps from inside.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from idpbuilder.owner import STAMP_RE, owner_alive

__all__ = ["RUNTIME_DIR_ENV", "TEMP_DIRS", "has_run_state", "reap_temp_files", "runtime_roots"]

RUNTIME_DIR_ENV = "XDG_RUNTIME_DIR"
STATE_DIR = "state"  # run state under the home's work dir when there is no usable $XDG_RUNTIME_DIR
SHM = Path("/dev/shm")

# where temp files are made, relative to the home
TEMP_DIRS = (
    "tmp",
    "work",
    "work/layers",
    "work/build",
    "work/build/tmp",
    "work/build/members",
    "work/cache-mounts",
    "certs",
)


def reap_temp_files(home: Path, alive: Callable[[str], bool] = owner_alive) -> int:
    """Remove stamped temp entries of dead owners under ``home``; how many could not be removed (files of
    a rootless build's subordinate ids, from outside its user namespace)."""
    left = 0
    known: dict[str, bool] = {}
    for rel in TEMP_DIRS:
        try:
            entries = list(os.scandir(home / rel))
        except OSError:
            continue
        for e in entries:
            m = STAMP_RE.search(e.name)
            if m is None:
                continue
            owner = m.group(1)
            if owner not in known:
                known[owner] = alive(owner)
            if known[owner]:
                continue
            with contextlib.suppress(OSError):
                if e.is_dir(follow_symlinks=False):
                    import shutil  # rare: keep it off the start-up path of every command

                    shutil.rmtree(e.path, ignore_errors=True)
                else:
                    os.unlink(e.path)
            left += os.path.lexists(e.path)
    return left


def runtime_roots(home: Path) -> list[Path]:
    """Where RUN state may live for this user: $XDG_RUNTIME_DIR/idpbuilder (if set), the home's."""
    roots = []
    xdg = os.environ.get(RUNTIME_DIR_ENV, "")
    if xdg and os.path.isabs(xdg) and os.path.isdir(xdg) and os.access(xdg, os.W_OK | os.X_OK):
        roots.append(Path(xdg) / "idpbuilder")
    roots.append(home / "work" / STATE_DIR)
    return roots


def has_run_state(home: Path) -> bool:
    """Whether any RUN state (of anyone) may exist for this user: a cheap test before reaping it."""
    for root in runtime_roots(home):
        with contextlib.suppress(OSError), os.scandir(root) as it:
            if any(True for _ in it):
                return True
    prefix = f"idpbuilder-{os.geteuid()}-"
    with contextlib.suppress(OSError), os.scandir(SHM) as it:
        return any(e.name.startswith(prefix) for e in it)
    return False
