"""Resolve a Dockerfile ``USER`` (``name|uid[:group|gid]``) against the rootfs's /etc/passwd and /etc/group.

Follows runc/moby ``GetExecUser``: a numeric user need not exist in /etc/passwd; a name must. Without an
explicit group the primary group comes from /etc/passwd and the supplementary groups are the primary group
followed by every group in /etc/group that lists the user (as containerd and BuildKit set them).

The files are image data: they are resolved inside the rootfs (symlinks never leave it) and opened with
O_PATH first, so the host never opens a device node or FIFO an image put there; only a regular file is
read. Anything else counts as absent (no users, as BuildKit, which reads them as data, sees it).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from idpbuilder._records import dataclass
from idpbuilder.errors import BuildError
from idpbuilder.sandbox.fs import lexical_parts, open_dir_in_root, resolve_in_root

__all__ = ["ExecUser", "parse_group", "parse_passwd", "read_regular_in_root", "resolve_user"]

_MAX_ID = 2**31 - 1
_MAX_BYTES = 16 << 20


@dataclass(frozen=True)
class ExecUser:
    """The identity a RUN process gets."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()
    home: str = "/"


@dataclass(frozen=True)
class _PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class _GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def parse_passwd(text: str) -> list[_PasswdEntry]:
    """Entries of an /etc/passwd file (malformed lines are skipped)."""
    out = []
    for line in text.splitlines():
        f = line.split(":")
        if len(f) < 4 or line.startswith("#"):
            continue
        uid, gid = _int(f[2]), _int(f[3])
        if uid is None or gid is None:
            continue
        out.append(_PasswdEntry(f[0], uid, gid, f[5] if len(f) > 5 and f[5] else "/"))
    return out


def parse_group(text: str) -> list[_GroupEntry]:
    """Entries of an /etc/group file (malformed lines are skipped)."""
    out = []
    for line in text.splitlines():
        f = line.split(":")
        if len(f) < 3 or line.startswith("#"):
            continue
        gid = _int(f[2])
        if gid is None:
            continue
        members = tuple(m.strip() for m in f[3].split(",") if m.strip()) if len(f) > 3 else ()
        out.append(_GroupEntry(f[0], gid, members))
    return out


def read_regular_in_root(rootfs: Path, path: str, *, limit: int = _MAX_BYTES) -> bytes | None:
    """The bytes of the regular file ``path`` inside ``rootfs``; None when it is missing or not a regular
    file (a device node, FIFO or socket is never opened: only an O_PATH descriptor is taken, and a regular
    file is then reopened for reading through /proc/self/fd)."""
    try:
        parts = lexical_parts(resolve_in_root(rootfs, path))
    except (BuildError, OSError):
        return None
    if not parts:
        return None
    root_fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            dfd = open_dir_in_root(root_fd, parts[:-1])
        except OSError:
            return None
        try:
            pfd = os.open(parts[-1], os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        except OSError:
            return None
        finally:
            os.close(dfd)
        try:
            st = os.fstat(pfd)
            if not stat.S_ISREG(st.st_mode):
                return None
            fd = os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        finally:
            os.close(pfd)
        with os.fdopen(fd, "rb") as f:
            again = os.fstat(f.fileno())
            if (again.st_dev, again.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(again.st_mode):
                return None
            return f.read(limit)
    finally:
        os.close(root_fd)


def _check(kind: str, value: int, spec: str) -> int:
    if not 0 <= value <= _MAX_ID:
        raise BuildError(f"invalid {kind} in USER {spec!r}: {value} is out of range")
    return value


def resolve_user(rootfs: Path, user: str) -> ExecUser:
    """Resolve ``user`` ("" = root) inside ``rootfs``; BuildError when a named user or group is unknown."""
    spec = user.strip()
    user_arg, _, group_arg = spec.partition(":")
    user_arg = user_arg or "0"
    pw_text = read_regular_in_root(rootfs, "/etc/passwd")
    passwd = parse_passwd(pw_text.decode("utf-8", "replace")) if pw_text is not None else []
    num = _int(user_arg)
    entry = next((e for e in passwd if e.name == user_arg or (num is not None and e.uid == num)), None)
    if entry is None and num is None:
        raise BuildError(
            f"unable to find user {user_arg}: no matching entries in passwd file",
            hint="create the user in an earlier RUN step (useradd/adduser) or use a numeric uid",
        )
    uid = entry.uid if entry is not None else _check("uid", num or 0, spec)
    gid = entry.gid if entry is not None else 0
    home = entry.home if entry is not None else "/"
    gr_text = read_regular_in_root(rootfs, "/etc/group")
    groups = parse_group(gr_text.decode("utf-8", "replace")) if gr_text is not None else []
    extra: list[int] = []
    if group_arg:
        gnum = _int(group_arg)
        g = next((e for e in groups if e.name == group_arg or (gnum is not None and e.gid == gnum)), None)
        if g is None and gnum is None:
            raise BuildError(
                f"unable to find group {group_arg}: no matching entries in group file",
                hint="create the group in an earlier RUN step (groupadd/addgroup) or use a numeric gid",
            )
        gid = g.gid if g is not None else _check("gid", gnum or 0, spec)
    elif entry is not None:
        for g in groups:
            if entry.name in g.members and g.gid not in extra:
                extra.append(g.gid)
    # like containerd/BuildKit, the primary gid leads the supplementary list (`id` shows groups=0(root),10(wheel))
    return ExecUser(uid, gid, (gid, *(g for g in extra if g != gid)), home)
