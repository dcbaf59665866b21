"""The tool's own directories are private: 0700, as containers/storage makes its root.

Extracted layers, run state and caches hold image files with their modes (setuid binaries, device nodes,
world-writable files); a 0700 home keeps every other user of the machine out of all of them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["private_home", "private_mkdir"]


def private_mkdir(path: Path) -> Path:
    """Create ``path`` and its missing parents with mode 0700 (existing ones are left as they are)."""
    missing = []
    p = Path(path)
    while not p.is_dir():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            if not d.is_dir():
                raise
    return Path(path)


def private_home(home: Path) -> Path:
    """Create the tool's home directory 0700; tighten an existing one of ours that others could enter."""
    private_mkdir(home)
    st = os.stat(home)
    if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(home, stat.S_IMODE(st.st_mode) & 0o700)
    return home
