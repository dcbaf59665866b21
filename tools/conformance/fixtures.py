"""A case's build context: its content hash, a writable copy, the repairs and edits applied to it."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
from pathlib import Path

from tools.conformance.model import CaseSpec

__all__ = ["apply_edits", "content_hash", "repair_context", "writable_copy"]


def content_hash(case_dir: Path) -> str:
    """sha256 over every name, type, mode, link target and content under ``case_dir``."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(case_dir):
        dirs.sort()
        for name in sorted(files + dirs):
            p = Path(root) / name
            st = p.lstat()
            h.update(f"{p.relative_to(case_dir)}\0{st.st_mode:o}\0".encode())
            if p.is_symlink():
                h.update(os.readlink(p).encode())
            elif p.is_file():
                h.update(p.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


def writable_copy(src: Path, dest: Path) -> Path:
    """Copy ``src`` to ``dest`` (symlinks kept) with the owner's write bit set everywhere."""
    shutil.copytree(src, dest, symlinks=True)
    for p in [dest, *dest.rglob("*")]:
        if not p.is_symlink():
            p.chmod(p.stat().st_mode | 0o200)
    return dest


def repair_context(context: Path, spec: CaseSpec) -> list[str]:
    """Recreate the symlinks and sockets the fixture copy lost; return what was repaired."""
    done: list[str] = []
    for rel, target in spec.symlinks:
        p = context / rel
        if p.is_symlink():
            continue
        if p.is_file() and p.read_text().strip() != target:
            raise RuntimeError(f"cannot repair {rel}: it holds neither a symlink nor its link text")
        p.unlink(missing_ok=True)
        os.symlink(target, p)
        done.append(rel)
    for rel in spec.sockets:
        p = context / rel
        if p.exists() or p.is_symlink():
            continue
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.bind(str(p))
        done.append(rel)
    return done


def apply_edits(context: Path, edits: tuple[tuple[str, str], ...]) -> None:
    """Overwrite context files with new content (a build's ``edits``)."""
    for rel, text in edits:
        p = context / rel
        p.chmod(0o644)
        p.write_text(text)
