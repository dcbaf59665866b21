"""The build's own namespaces: rootless builds, and nothing a build starts or mounts outliving it.

A command that builds runs in ``G``, a grandchild of the process the user started (``P``). ``P`` forks
``C``, which unshares the namespaces (``P`` itself never changes namespaces, so a failure leaves it as it
was and the build runs unisolated where namespaces cannot be made); ``P`` writes ``C``'s id maps; ``C``
forks ``G`` and waits for it:

* ``G`` is pid 1 of a new **pid namespace** and lives in a new, private **mount namespace** (with its own
  ``/proc``). Every process of the build (runc and the containers it starts included) is inside that pid
  namespace, and every mount (overlay rootfs, secret tmpfs) inside that mount namespace.
* ``C`` and ``G`` have ``PR_SET_PDEATHSIG=SIGKILL``: when ``P`` dies, even by SIGKILL, ``C`` and then ``G``
  die, and with the init of a pid namespace the kernel kills every process in it; the mount namespace and
  its mounts go with the last of them. So a killed build leaves no mount, no running container and no secret behind; only files on disk,
  which the store's reaper removes (their directories are stamped with ``P``'s pid and start time).
* For a **non-root user** ``C`` and ``G`` also live in a new **user namespace** mapping the user to 0 and their
  ``/etc/subuid`` / ``/etc/subgid`` ranges to 1…N (set by Debian's setuid ``newuidmap``/``newgidmap``, as
  buildah's ``unshare`` and podman do; no setuid helper of our own). Layer extraction, RUN, the diff into a
  layer and ``COPY --chown`` all happen in there, so files get exactly the owners a root build gives them.
  Without a subordinate range the map is the user alone (0 → uid): images still build, all files root-owned.

``P`` returns ``G``'s exit status. ``G`` has a process group of its own and makes it the terminal's
foreground group (so Ctrl-C reaches ``G`` once); signals sent to ``P`` are forwarded to ``G``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import select
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from idpbuilder._records import dataclass
from idpbuilder.errors import BuildError
from idpbuilder.owner import OWNER_ENV, process_start_time
from idpbuilder.sandbox.libc import errno as _errno
from idpbuilder.sandbox.libc import libc as _libc

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
        e = _errno()
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
    import shutil

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
    import subprocess

    for tool, ranges in (("newuidmap", uid_map), ("newgidmap", gid_map)):
        res = subprocess.run(
            [tool, str(pid), *_map_text(ranges)], capture_output=True, text=True, check=False
        )
        if res.returncode != 0:
            return f"{tool}: {(res.stderr or res.stdout).strip() or f'exit {res.returncode}'}"
    return None


def _write_maps(
    pid: int, uid_map: Sequence[IdRange], gid_map: Sequence[IdRange], helpers: bool
) -> str | None:
    """P: give C's user namespace its id maps; None on success, else why not."""
    if helpers:
        return _map_with_helpers(pid, uid_map, gid_map)
    try:  # only our own id: allowed without helpers, once setgroups is denied
        Path(f"/proc/{pid}/setgroups").write_text("deny")
        Path(f"/proc/{pid}/uid_map").write_text(" ".join(_map_text(uid_map)))
        Path(f"/proc/{pid}/gid_map").write_text(" ".join(_map_text(gid_map)))
    except OSError as e:
        return str(e)
    return None


class _Pipe:
    """One direction of P <-> C messages: short text lines."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        self._buf = b""

    def send(self, text: str) -> None:
        os.write(self.w, text.encode() + b"\n")

    def recv(self) -> str:
        """The next line; "" at EOF (the other side is gone)."""
        while b"\n" not in self._buf:
            chunk = os.read(self.r, 4096)
            if not chunk:
                return ""
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode(errors="replace")


def _terminal_fd() -> int | None:
    """A standard stream on our controlling terminal while we are its foreground process group."""
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            if os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp():
                return fd
    return None


def _take_terminal(tty: int | None) -> None:
    """G: a process group of its own, made the terminal's foreground group (Ctrl-C reaches G once)."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    if tty is None:
        return
    old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.tcsetpgrp(tty, os.getpgrp())
    signal.signal(signal.SIGTTOU, old)


def _relay(child: int, init_pid: int, tty: int | None) -> int:
    """P: forward signals sent to P to G (``init_pid``), wait for C (``child``); its exit status."""

    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(init_pid, signum)

    old = {
        s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
    }
    try:
        while True:
            try:
                _, status = os.waitpid(child, 0)
                break
            except InterruptedError:
                continue
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if tty is not None:
        prev = signal.signal(
            signal.SIGTTOU, signal.SIG_IGN
        )  # P is a background group now: take the terminal back
        with contextlib.suppress(OSError):
            os.tcsetpgrp(tty, os.getpgrp())
        signal.signal(signal.SIGTTOU, prev)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _become_init(alive_r: int) -> None:
    """G: die with C; a private mount tree and a /proc of our pid namespace."""
    _check(_libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    if select.select([alive_r], [], [], 0)[0]:  # C died before the prctl: its end of the pipe closed
        os._exit(137)
    os.close(alive_r)
    import ctypes

    _check(_libc().mount(None, b"/", None, ctypes.c_ulong(_MS_REC | _MS_PRIVATE), None), "make / private")
    _check(
        _libc().mount(b"proc", b"/proc", b"proc", ctypes.c_ulong(_MS_NOSUID | _MS_NODEV | _MS_NOEXEC), None),
        "mount /proc",
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _run_g(
    run: Callable[[Isolation], int],
    info: Isolation,
    tty: int | None,
    alive_r: int,
    handlers: dict[signal.Signals, Any],
) -> NoReturn:
    """G: pid 1 of the build's namespaces; runs the command and exits with its status."""
    code = 1
    try:
        # pid 1 gets only the signals it has handlers for: Ctrl-C and what P forwards end the build cleanly
        for s, h in handlers.items():
            signal.signal(s, h if callable(h) else _interrupt)
        _take_terminal(tty)
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


def _run_c(
    run: Callable[[Isolation], int], info: Isolation, flags: int, up: _Pipe, down: _Pipe, tty: int | None
) -> NoReturn:
    """C: unshare, wait for P to map ids (rootless), fork G, wait for it; exit with G's status."""
    code = 1
    try:
        _check(_libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
        # P forwards signals to G and the terminal sends them to G: C ignores them, G gets the originals
        handlers = {
            s: signal.signal(s, signal.SIG_IGN)
            for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
        }
        if _libc().unshare(flags) != 0:
            up.send(f"ERR {_errno()}")
            os._exit(0)
        up.send("UNSHARED")
        if info.rootless:
            if down.recv() != "MAPPED":
                os._exit(1)
            os.setresgid(0, 0, 0)
            if not info.single_id:
                os.setgroups([])
            os.setresuid(0, 0, 0)
        alive_r, alive_w = os.pipe()
        g = os.fork()
        if g == 0:
            os.close(alive_w)
            _run_g(run, info, tty, alive_r, handlers)
        os.close(alive_r)
        up.send(f"G {g}")
        while True:
            try:
                _, status = os.waitpid(g, 0)
                break
            except InterruptedError:
                continue
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else code
    finally:
        os._exit(code)


def isolate(run: Callable[[Isolation], int], *, warn: Callable[[str], None]) -> int:
    """Run ``run`` in G (see the module docstring) and return its exit status in P.

    Where the namespaces cannot be made (a container without CAP_SYS_ADMIN, user namespaces disabled)
    ``run`` runs in this process as before, with a warning for a non-root user (RUN will not work). Nested
    calls and processes with threads (forking them is unsafe) also run ``run`` directly.
    """
    rootless = os.geteuid() != 0
    if os.environ.get(_ISOLATED_ENV) or threading.active_count() > 1:
        return run(Isolation(rootless=in_user_namespace()))
    uid_map, gid_map, helpers = _id_maps(warn) if rootless else ((), (), False)
    info = Isolation(rootless=rootless, uid_map=uid_map, gid_map=gid_map)
    flags = _CLONE_NEWNS | _CLONE_NEWPID | (_CLONE_NEWUSER if rootless else 0)
    sys.stdout.flush()
    sys.stderr.flush()
    tty = _terminal_fd()
    pid = os.getpid()
    saved = {k: os.environ.get(k) for k in (OWNER_ENV, _ISOLATED_ENV)}
    os.environ[OWNER_ENV] = f"{pid}-{process_start_time(pid) or 0}"
    os.environ[_ISOLATED_ENV] = "1"
    up, down = _Pipe(), _Pipe()
    try:
        child = os.fork()
        if child == 0:
            os.close(up.r)
            os.close(down.w)
            _run_c(run, info, flags, up, down, tty)
        os.close(up.w)
        os.close(down.r)
        first = up.recv()
        if first != "UNSHARED":
            os.waitpid(child, 0)
            for k, v in saved.items():  # not isolated after all
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            why = (
                os.strerror(int(first.split()[1])) if first.startswith("ERR ") else "the helper process died"
            )
            if rootless:
                warn(
                    f"cannot create a user namespace ({why}): building without one, so RUN steps cannot "
                    "run; allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; "
                    "on Ubuntu 24.04 an AppArmor profile) or build as root"
                )
            else:
                import logging

                logging.getLogger("idpbuilder.sandbox").debug(
                    "no private mount/pid namespaces for the build (%s): a killed build may leave mounts", why
                )
            return run(Isolation(rootless=False))
        if rootless:
            problem = _write_maps(child, uid_map, gid_map, helpers)
            if problem is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)
                user = pwd.getpwuid(os.getuid()).pw_name
                raise BuildError(
                    f"cannot map your subordinate ids into the build's user namespace ({problem})",
                    hint="check /etc/subuid and /etc/subgid; " + SUBUID_HINT.format(user=user),
                )
            down.send("MAPPED")
        line = up.recv()
        init_pid = int(line.split()[1]) if line.startswith("G ") else child
        return _relay(child, init_pid, tty)
    finally:
        for fd in (up.r, down.w):
            with contextlib.suppress(OSError):
                os.close(fd)
