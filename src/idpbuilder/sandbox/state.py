"""Per-run state of RUN steps, owned by one process and reaped when that process is gone.

Each build process owns one directory named by its owner stamp (``<pid>-<start time>`` of the command the
user started, see ``isolation.current_owner``) under the runtime root: ``$XDG_RUNTIME_DIR/idpbuilder`` when
that is set (a per-user tmpfs), else the store's private ``work/state``. It holds the runtime's state
(``runc --root``), the run directories (overlay upper/work/merged) and the secrets: a tmpfs mounted in the
build's private mount namespace where we can (nobody outside the build sees it, and it vanishes with the
build even when killed), else a 0700 directory on ``/dev/shm``; secret files are mode 0400.

``reap`` removes what runs whose owner is gone left behind: it kills their containers (``runc delete
--force``; the processes of an isolated build are already gone with its pid namespace), unmounts what is
still mounted below their directories, overwrites their secret files, and deletes the directories. Live
runs of other processes are never touched.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from idpbuilder.owner import current_owner, owner_alive
from idpbuilder.store.reaper import runtime_roots

if TYPE_CHECKING:
    import logging

    from idpbuilder.store import Store

__all__ = ["RunState", "mounts_under", "reap"]


def _log() -> logging.Logger:
    # imported when something is logged: every command reaps, and a command that finds nothing to reap
    # should not pay for loading logging (or shutil)
    import logging

    return logging.getLogger("idpbuilder.sandbox")


_SHM = Path("/dev/shm")
_SECRETS_TMPFS_SIZE = "16m"


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` in this process's mount namespace (from /proc/self/mountinfo)."""
    base = os.path.realpath(path)
    out = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 5:
                continue
            mp = fields[4].replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
            mp = mp.replace("\\134", "\\")
            if mp == base or mp.startswith(base + "/"):
                out.append(mp)
    return out


def _private_dir(path: Path) -> Path:
    """``path`` as a directory only we can enter (0700, ours), created when missing."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise OSError(f"{path} is not a directory of ours")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def _mount_tmpfs(target: Path) -> bool:
    """Mount a private tmpfs for secrets at ``target``; False where we may not (not isolated)."""
    if not os.environ.get("IDPBUILDER_ISOLATED"):
        return False  # in the host's mount namespace a mount would outlive a killed build
    import ctypes

    from idpbuilder.sandbox.libc import errno, libc

    opts = f"mode=0700,size={_SECRETS_TMPFS_SIZE},uid={os.geteuid()},gid={os.getegid()}"
    flags = 2 | 4 | 8  # nosuid, nodev, noexec
    if libc().mount(b"tmpfs", str(target).encode(), b"tmpfs", ctypes.c_ulong(flags), opts.encode()) != 0:
        _log().debug("no tmpfs for secrets at %s: %s", target, os.strerror(errno()))
        return False
    return True


class RunState:
    """The state directory of this process's runs (see the module docstring).

    One per home and process: ``RunState.acquire(store)`` returns the shared one (the CLI stages
    ``--secret`` files in it, the RUN runner keeps its runtime state there); each ``release`` drops one
    user and the last removes the directory. ``atexit`` removes it too when a user forgot.
    """

    _shared: dict[Path, RunState] = {}

    @classmethod
    def acquire(cls, store: Store) -> RunState:
        """This process's state for ``store``'s home (created on first use)."""
        key = store.home.absolute()
        state = cls._shared.get(key)
        if state is None:
            state = cls._shared[key] = cls(store)
            atexit.register(state.close)
        state._users += 1
        return state

    def release(self) -> None:
        """Drop one user; the last one removes the state directory."""
        self._users -= 1
        if self._users <= 0:
            self.close()

    def __init__(self, store: Store) -> None:
        self._users = 0
        self._key = store.home.absolute()
        self.owner = current_owner()
        last: OSError | None = None
        for root in runtime_roots(store.home):
            try:
                self.dir = _private_dir(_private_dir(root) / self.owner)
                break
            except OSError as e:
                last = e
        else:
            raise last or OSError("no runtime directory")
        self._secrets: Path | None = None

    @property
    def runtime_root(self) -> Path:
        """The OCI runtime's ``--root`` (its container state)."""
        return _private_dir(self.dir / "runc")

    def run_dir(self, prefix: str = "run-") -> Path:
        """A new private directory for one run."""
        import tempfile

        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.dir))

    def secrets_dir(self) -> Path:
        """The directory secret files go to: a private tmpfs when possible, else a 0700 dir on /dev/shm."""
        if self._secrets is not None:
            return self._secrets
        target = _private_dir(self.dir / "secrets")
        if not _mount_tmpfs(target):
            shm_ok = _SHM.is_dir() and os.access(_SHM, os.W_OK | os.X_OK)
            if shm_ok:
                target = _private_dir(_SHM / f"idpbuilder-{os.geteuid()}-{self.owner}")
        self._secrets = target
        return target

    def write_secret(self, name: str, data: bytes, *, uid: int = 0, gid: int = 0, mode: int = 0o400) -> Path:
        """Write one secret file (created 0400 by us; then given ``uid``/``gid``/``mode``)."""
        import tempfile

        d = self.secrets_dir()
        sub = Path(tempfile.mkdtemp(prefix="s-", dir=d))
        path = sub / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o400)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        if (uid, gid) != (os.geteuid(), os.getegid()):
            os.chown(path, uid, gid)
        os.chmod(path, mode)
        os.chmod(sub, 0o711)  # the container's user may need to reach its secret
        return path

    def close(self) -> None:
        """Remove everything this process's runs left (they are finished)."""
        if RunState._shared.get(self._key) is self:
            del RunState._shared[self._key]
            atexit.unregister(self.close)
        _remove_state(self.dir, self._shm_dir())

    def _shm_dir(self) -> Path:
        return _SHM / f"idpbuilder-{os.geteuid()}-{self.owner}"


def _shred_tree(top: Path) -> None:
    """Overwrite the regular files below ``top`` with zeros (secrets on disk-backed fallbacks)."""
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            p = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                st = os.lstat(p)
                if not stat.S_ISREG(st.st_mode):
                    continue
                os.chmod(p, 0o600)
                fd = os.open(p, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    os.write(fd, b"\0" * st.st_size)
                    os.fsync(fd)
                finally:
                    os.close(fd)


def _runc_delete_all(runc_root: Path) -> None:
    """``runc delete --force`` every container whose state is under ``runc_root``."""
    if not runc_root.is_dir():
        return
    import shutil
    import subprocess

    runtimes = [r for r in (shutil.which("runc"), shutil.which("crun")) if r]
    for entry in runc_root.iterdir():
        for rt in runtimes:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    [rt, "--root", str(runc_root), "delete", "--force", entry.name],
                    capture_output=True,
                    timeout=30,
                    check=False,
                )


def _remove_state(state_dir: Path, shm_dir: Path | None) -> None:
    _runc_delete_all(state_dir / "runc")
    mounted = mounts_under(state_dir)
    if mounted:
        from idpbuilder.sandbox.rootfs import unmount

        for mp in sorted(mounted, key=len, reverse=True):
            with contextlib.suppress(OSError, Exception):  # MountError is an OSError
                unmount(Path(mp))
    for secrets in (state_dir / "secrets", shm_dir):
        if secrets is not None and secrets.is_dir():
            import shutil

            _shred_tree(secrets)
            shutil.rmtree(secrets, ignore_errors=True)
    if mounts_under(state_dir):
        _log().warning("leaving %s in place: something is still mounted below it", state_dir)
        return
    with contextlib.suppress(OSError):
        os.rmdir(state_dir)  # empty: nothing ran (a build of cached steps), no need to load shutil
        return
    import shutil

    shutil.rmtree(state_dir, ignore_errors=True)


def reap(home: Path, alive: Callable[[str], bool] = owner_alive) -> int:
    """Remove the run state of owners that are gone (see the module docstring); how many directories could
    not be removed (files of a rootless build's subordinate ids, from outside its user namespace)."""
    left = 0
    me = current_owner()
    for root in runtime_roots(home):
        try:
            entries = list(root.iterdir())
        except OSError:
            continue
        for d in entries:
            if d.name == me or not d.is_dir() or alive(d.name):
                continue
            _log().debug("reaping the state of run owner %s (%s)", d.name, d)
            _remove_state(d, None)
            left += d.exists()
    with contextlib.suppress(OSError):
        prefix = f"idpbuilder-{os.geteuid()}-"
        for d in _SHM.iterdir():
            if d.name.startswith(prefix) and not alive(d.name[len(prefix) :]):
                import shutil

                _shred_tree(d)
                shutil.rmtree(d, ignore_errors=True)
    return left
