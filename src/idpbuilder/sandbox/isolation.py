"""The build's own namespaces: rootless builds, and nothing a build starts or mounts outliving it.

A command that builds runs in a child ``G`` of the process the user started (``P``):

* ``G`` is pid 1 of a new **pid namespace** and lives in a new, private **mount namespace** (with its own
  ``/proc``). Every process of the build (runc and the containers it starts included) is inside that pid
  namespace, and every mount (overlay rootfs, secret tmpfs) inside that mount namespace.
* ``G`` has ``PR_SET_PDEATHSIG=SIGKILL``: when ``P`` dies, even by SIGKILL, ``G`` dies, and with the init of
  a pid namespace the kernel kills every process in it; the mount namespace and its mounts go with the last
  of them. So a killed build leaves no mount, no running container and no secret behind; only files on disk,
  which the store's reaper removes (their directories are stamped with ``P``'s pid and start time).
* For a **non-root user** both also live in a new **user namespace** mapping the user to 0 and their
  ``/etc/subuid`` / ``/etc/subgid`` ranges to 1…N (set by Debian's setuid ``newuidmap``/``newgidmap``, as
  buildah's ``unshare`` and podman do; no setuid helper of our own). Layer extraction, RUN, the diff into a
  layer and ``COPY --chown`` all happen in there, so files get exactly the owners a root build gives them.
  Without a subordinate range the map is the user alone (0 → uid): images still build, all files root-owned.

``P`` waits for ``G`` and exits with its status. ``G`` has a process group of its own, which ``P`` makes the
terminal's foreground group (so Ctrl-C reaches ``G`` once); signals sent to ``P`` are forwarded to ``G``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import os
import pwd
import select
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from idpbuilder.errors import BuildError
from idpbuilder.owner import OWNER_ENV, process_start_time

__all__ = [
    "IdRange",
    "Isolation",
    "id_mapped",
    "in_user_namespace",
    "overlay_xattr_prefix",
    "isolate",
    "subordinate_ranges",
]

_ISOLATED_ENV = "IDPBUILDER_ISOLATED"
_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWPID = 0x20000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 2, 4, 8
_MS_REC, _MS_PRIVATE = 1 << 14, 1 << 18
_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
SUBUID_HINT = (
    "add a subordinate id range for {user} (as root: `usermod --add-subuids 100000-165535 "
    "--add-subgids 100000-165535 {user}`) and install uidmap (newuidmap/newgidmap)"
)


@dataclass(frozen=True)
class IdRange:
    """One line of a uid_map/gid_map: ``count`` ids from ``inside`` map to ``outside``."""

    inside: int
    outside: int
    count: int


@dataclass(frozen=True)
class Isolation:
    """How this build is isolated (what ``isolate`` set up)."""

    rootless: bool
    uid_map: tuple[IdRange, ...] = ()
    gid_map: tuple[IdRange, ...] = ()

    @property
    def single_id(self) -> bool:
        """Only the user itself is mapped (no subordinate range): every file is owned by root."""
        return self.rootless and sum(r.count for r in self.uid_map) <= 1


def subordinate_ranges(path: Path, user: str, uid: int) -> list[tuple[int, int]]:
    """(start, count) ranges of ``/etc/subuid``-style ``path`` for ``user`` (by name or number)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        fields = line.strip().split(":")
        if len(fields) != 3 or fields[0] not in (user, str(uid)):
            continue
        try:
            start, count = int(fields[1]), int(fields[2])
        except ValueError:
            continue
        if start > 0 and count > 0:
            out.append((start, count))
    return out


def in_user_namespace() -> bool:
    """True inside a user namespace other than the initial one (what runc calls RunningInUserNS)."""
    try:
        lines = Path("/proc/self/uid_map").read_text().split()
    except OSError:
        return False
    return lines != ["0", "0", "4294967295"]


def id_mapped(kind: str, xid: int) -> bool:
    """Whether ``xid`` is mapped in this process's user namespace (``kind``: "uid" or "gid")."""
    try:
        lines = Path(f"/proc/self/{kind}_map").read_text().splitlines()
    except OSError:
        return True
    for line in lines:
        f = line.split()
        if len(f) == 3 and int(f[0]) <= xid < int(f[0]) + int(f[2]):
            return True
    return False


def overlay_xattr_prefix() -> str:
    """Where overlayfs keeps its bookkeeping: ``trusted.overlay.`` (root), ``user.overlay.`` in a user
    namespace, where trusted xattrs cannot be written and overlay is mounted with ``userxattr``."""
    return "user.overlay." if in_user_namespace() else "trusted.overlay."


def _check(rc: int, what: str) -> None:
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _map_text(ranges: Sequence[IdRange]) -> list[str]:
    return [str(x) for r in ranges for x in (r.inside, r.outside, r.count)]


def _id_maps(warn: Callable[[str], None]) -> tuple[tuple[IdRange, ...], tuple[IdRange, ...], bool]:
    """(uid map, gid map, via newuidmap) for this user: 0 -> the user, 1.. -> the subordinate ranges."""
    uid, gid = os.getuid(), os.getgid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    single = (IdRange(0, uid, 1),), (IdRange(0, gid, 1),), False
    subuids = subordinate_ranges(Path("/etc/subuid"), user, uid)
    subgids = subordinate_ranges(Path("/etc/subgid"), user, uid)
    if not subuids or not subgids:
        warn(
            f"no subordinate uid/gid range for {user} in /etc/subuid and /etc/subgid: building with only "
            "your own id mapped, so every file in the image is owned by root and RUN cannot change owners; "
            + SUBUID_HINT.format(user=user)
        )
        return single
    if not (shutil.which("newuidmap") and shutil.which("newgidmap")):
        warn(
            "newuidmap/newgidmap are missing (package uidmap): building with only your own id mapped, so "
            "every file in the image is owned by root; install uidmap"
        )
        return single

    def chain(first: int, ranges: list[tuple[int, int]]) -> tuple[IdRange, ...]:
        out, nxt = [IdRange(0, first, 1)], 1
        for start, count in ranges:
            out.append(IdRange(nxt, start, count))
            nxt += count
        return tuple(out)

    return chain(uid, subuids), chain(gid, subgids), True


def _map_with_helpers(pid: int, uid_map: Sequence[IdRange], gid_map: Sequence[IdRange]) -> str | None:
    """Run newuidmap/newgidmap for ``pid``; None on success, else what they said."""
    for tool, ranges in (("newuidmap", uid_map), ("newgidmap", gid_map)):
        res = subprocess.run(
            [tool, str(pid), *_map_text(ranges)], capture_output=True, text=True, check=False
        )
        if res.returncode != 0:
            return f"{tool}: {(res.stderr or res.stdout).strip() or f'exit {res.returncode}'}"
    return None


def _enter_user_namespace(flags: int, warn: Callable[[str], None]) -> Isolation:
    """unshare(CLONE_NEWUSER | flags) and become root (0) in it, mapped as ``_id_maps`` says."""
    uid_map, gid_map, helpers = _id_maps(warn)
    me = os.getpid()
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    helper = os.fork() if helpers else 0
    if helpers and helper == 0:  # the mapping helper: still outside the new namespace
        try:
            os.close(go_w)
            os.close(done_r)
            ok = os.read(go_r, 1) == b"1"
            why = _map_with_helpers(me, uid_map, gid_map) if ok else "unshare failed"
            os.write(done_w, (why or "").encode()[:4000] or b"ok")
        finally:
            os._exit(0)
    for fd in (go_r, done_w):
        os.close(fd)
    try:
        try:
            _check(_libc.unshare(_CLONE_NEWUSER | flags), "unshare(CLONE_NEWUSER)")
        except OSError as e:
            with contextlib.suppress(OSError):
                os.write(go_w, b"0")
            raise BuildError(
                f"cannot create a user namespace for a rootless build: {e.strerror}",
                hint="allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; on "
                "Ubuntu 24.04 and later an AppArmor profile for idpbuilder) or build as root",
            ) from None
        if helpers:
            os.write(go_w, b"1")
            answer = os.read(done_r, 4096).decode(errors="replace")
            os.waitpid(helper, 0)
            if answer != "ok":
                raise BuildError(
                    f"cannot map your subordinate ids into the build's user namespace ({answer})",
                    hint="check /etc/subuid and /etc/subgid; "
                    + SUBUID_HINT.format(user=pwd.getpwuid(os.getuid()).pw_name),
                )
        else:
            Path("/proc/self/setgroups").write_text("deny")
            Path("/proc/self/uid_map").write_text(" ".join(_map_text(uid_map)))
            Path("/proc/self/gid_map").write_text(" ".join(_map_text(gid_map)))
    finally:
        for fd in (go_w, done_r):
            os.close(fd)
    os.setresgid(0, 0, 0)
    if helpers:
        os.setgroups([])
    os.setresuid(0, 0, 0)
    return Isolation(rootless=True, uid_map=uid_map, gid_map=gid_map)


def _terminal_fd() -> int | None:
    """A standard stream on our controlling terminal while we are its foreground process group."""
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            if os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp():
                return fd
    return None


def _relay(child: int) -> int:
    """P: hand G the terminal, forward signals sent to P, wait; G's exit status (128+N for signal N)."""

    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(s, forward)
    with contextlib.suppress(OSError):
        os.setpgid(child, child)
    tty = _terminal_fd()
    if tty is not None:  # Ctrl-C now reaches G alone, exactly once
        with contextlib.suppress(OSError):
            os.tcsetpgrp(tty, child)
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    if tty is not None:
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # P is a background group now: take the terminal back
        with contextlib.suppress(OSError):
            os.tcsetpgrp(tty, os.getpgrp())
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _become_init(alive_r: int) -> None:
    """G: die with P; a private mount tree and a /proc of our pid namespace."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    _check(_libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    # P may have died before the prctl: its end of the pipe is then closed
    if select.select([alive_r], [], [], 0)[0]:
        os._exit(137)
    _check(_libc.mount(None, b"/", None, ctypes.c_ulong(_MS_REC | _MS_PRIVATE), None), "make / private")
    _check(
        _libc.mount(b"proc", b"/proc", b"proc", ctypes.c_ulong(_MS_NOSUID | _MS_NODEV | _MS_NOEXEC), None),
        "mount /proc",
    )


def isolate(run: Callable[[Isolation], int], *, warn: Callable[[str], None]) -> int:
    """Run ``run`` in G (see the module docstring) and return its exit status in P.

    Nested calls, and processes that already have threads (unshare needs a single thread: in-process test
    runs), run ``run`` directly when root; a non-root caller cannot build without the namespace.
    """
    rootless = os.geteuid() != 0
    if os.environ.get(_ISOLATED_ENV) or threading.active_count() > 1:
        if rootless and not in_user_namespace():
            raise BuildError(
                "cannot set up a rootless build from a process with threads",
                hint="run idpbuilder as a command, not from a threaded program",
            )
        return run(Isolation(rootless=in_user_namespace()))
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.getpid()
    os.environ[OWNER_ENV] = f"{pid}-{process_start_time(pid) or 0}"
    os.environ[_ISOLATED_ENV] = "1"
    flags = _CLONE_NEWNS | _CLONE_NEWPID
    if rootless:
        info = _enter_user_namespace(flags, warn)
    else:
        try:
            _check(_libc.unshare(flags), "unshare(CLONE_NEWNS|CLONE_NEWPID)")
        except OSError as e:
            raise BuildError(
                f"cannot create the build's mount and pid namespaces: {e.strerror}",
                hint="run as root with CAP_SYS_ADMIN (in a container: --privileged or CAP_SYS_ADMIN), "
                "or as a normal user with user namespaces allowed",
            ) from None
        info = Isolation(rootless=False)
    alive_r, alive_w = os.pipe()
    child = os.fork()
    if child:
        os.close(alive_r)
        return _relay(child)
    code = 1
    try:
        os.close(alive_w)
        _become_init(alive_r)
        code = run(info)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        code = 130
    except BaseException as e:  # ``run`` maps errors to exit codes; this is a last resort
        with contextlib.suppress(Exception):
            sys.stderr.write(f"Error: cannot start the build's namespaces: {e}\n")
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()  # what a normal exit runs (run state cleanup); os._exit would skip it
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
