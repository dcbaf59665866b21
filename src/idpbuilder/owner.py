"""Who owns a piece of temporary state: the process that made it, named by pid and start time.

Temporary files and directories the tool makes carry an owner stamp ``~<pid>-<start time>~`` in their
names (run state directories are named by the bare ``<pid>-<start time>``). The pid alone is not enough:
pids are reused, and a build runs as pid 1 of its own pid namespace; the start time (clock ticks since
boot, from /proc/PID/stat) makes the stamp unique. A command that finds state whose owner is gone removes
it (``store/reaper.py``, ``sandbox/state.py``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["OWNER_ENV", "STAMP_RE", "current_owner", "owner_alive", "process_start_time", "stamped"]

OWNER_ENV = "IDPBUILDER_RUN_OWNER"  # set for a build's namespaced child: the owner is the command's process
STAMP_RE = re.compile(r"~(\d+-\d+)~")


def process_start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (field 22 of /proc/PID/stat); None if gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its closing ')'
    rest = data[data.rfind(b")") + 2 :].split()
    try:
        return int(rest[19])
    except (IndexError, ValueError):
        return None


def current_owner() -> str:
    """``<pid>-<start time>`` of the process that owns this run (the command the user started)."""
    owner = os.environ.get(OWNER_ENV, "")
    if owner:
        return owner
    pid = os.getpid()
    return f"{pid}-{process_start_time(pid) or 0}"


def owner_alive(owner: str) -> bool:
    """Whether the process named by an owner stamp (``<pid>-<start time>``) still runs.

    Inside a build's own pid namespace the host's pids cannot be seen: there every owner counts as alive,
    so nothing is ever reaped from in there.
    """
    if os.environ.get("IDPBUILDER_ISOLATED"):
        return True
    pid_text, _, start_text = owner.partition("-")
    try:
        pid, start = int(pid_text), int(start_text)
    except ValueError:
        return False
    return process_start_time(pid) == start


def stamped(prefix: str) -> str:
    """``prefix`` with this process's owner stamp, for temp names: ``blob-~1234-5678~``."""
    return f"{prefix}~{current_owner()}~"
