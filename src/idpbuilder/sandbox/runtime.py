"""The OCI runtime (crun or runc): detection by a real probe run, and running one container.

crun is preferred, runc next, but only a runtime that really starts a container counts: on hosts with
hybrid cgroups crun fails ("cgroups in hybrid mode not supported"), and the probe finds that out once; the
verdict is cached in the store. ``IDPBUILDER_RUNTIME`` chooses one explicitly.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from idpbuilder.errors import BuildError
from idpbuilder.owner import stamped
from idpbuilder.sandbox.isolation import id_mapped, in_user_namespace
from idpbuilder.sandbox.ocispec import OciMount, build_config
from idpbuilder.sandbox.users import ExecUser

__all__ = ["ContainerResult", "detect_runtime", "run_container", "settle"]

RUNTIME_ENV = "IDPBUILDER_RUNTIME"
CANDIDATES = ("crun", "runc")
TAIL_LINES = 20
_MAX_LINE = 64 * 1024
CREATE_FAILED = 125  # the container did not start (as buildah reports it)
_probe_lock = threading.Lock()
_probe_results: dict[str, str | None] = {}  # probe key -> None (works) or why not; per process


class ContainerResult:
    """How a container ended: exit status, the last output lines, and the runtime's own error if any."""

    def __init__(self, exit_status: int, tail: list[str], runtime_error: str) -> None:
        self.exit_status = exit_status
        self.tail = tail
        self.runtime_error = runtime_error


def _host_bind_mounts(rootfs: Path) -> list[OciMount]:
    """Mirror the host's /usr, /bin, /lib… into an empty probe rootfs (read-only binds or same symlinks)."""
    mounts = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr"):
        host = Path("/") / name
        if host.is_symlink():
            os.symlink(os.readlink(host), rootfs / name)
        elif host.is_dir():
            (rootfs / name).mkdir()
            mounts.append(OciMount(f"/{name}", "bind", str(host), ("rbind", "ro", "nosuid", "nodev")))
    return mounts


def _probe(runtime: str) -> str | None:
    with tempfile.TemporaryDirectory(prefix="idpbuilder-probe-") as tmp:
        bundle = Path(tmp)
        rootfs = bundle / "rootfs"
        rootfs.mkdir()
        config = build_config(
            rootfs=str(rootfs),
            argv=["true"],
            env=["PATH=/usr/bin:/bin:/usr/sbin:/sbin"],
            user=ExecUser(0, 0),
            cwd="/",
            hostname="idpbuilder-probe",
            network="none",
            mounts=_host_bind_mounts(rootfs),
            tty_gid=id_mapped("gid", 5),
        )
        (bundle / "config.json").write_text(json.dumps(config))
        try:
            result = run_container(runtime, bundle / "state", bundle, timeout=60.0)
        except (OSError, subprocess.SubprocessError) as e:
            return str(e)
        finally:
            settle()  # the container's delete, before its state directory is removed
        if result.exit_status == 0:
            return None
        return result.runtime_error or (
            result.tail[-1] if result.tail else f"exit status {result.exit_status}"
        )


def _probe_key(runtime: str) -> str:
    """What a probe result depends on: the runtime binary, the kernel, and how we are isolated."""
    st = os.stat(runtime)
    mapping = "userns" if in_user_namespace() else "host"
    if mapping == "userns" and not id_mapped("gid", 5):
        mapping += "-single"
    return f"{runtime}|{st.st_size}|{st.st_mtime_ns}|{os.uname().release}|{mapping}"


def _probe_cached(runtime: str, cache: Path | None) -> str | None:
    """The probe's verdict: from this process, else from the store's cache file, else a real probe."""
    key = _probe_key(runtime)
    with _probe_lock:
        if key in _probe_results:
            return _probe_results[key]
        known: dict[str, str | None] = {}
        if cache is not None:
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(cache.read_text())
                if isinstance(data, dict):
                    known = {k: v for k, v in data.items() if v is None or isinstance(v, str)}
        if key in known:
            _probe_results[key] = known[key]
            return known[key]
        why = _probe(runtime)
        _probe_results[key] = why
        if cache is not None:
            known[key] = why
            tmp = cache.with_name(stamped(f".{cache.name}.") + uuid.uuid4().hex)
            try:
                tmp.write_text(json.dumps(known, indent=1))
                os.replace(tmp, cache)
            except BaseException as e:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                if not isinstance(e, OSError):
                    raise
        return why


def detect_runtime(preferred: str | None = None, *, cache: Path | None = None) -> str:
    """Path of a working OCI runtime: ``preferred`` / $IDPBUILDER_RUNTIME, else crun, else runc.

    Each candidate is probed by starting a real container once; the verdict is kept in ``cache`` (a file
    in the store) keyed by the binary, the kernel and the namespace setup, so later builds never re-probe.
    """
    wanted = preferred or os.environ.get(RUNTIME_ENV) or None
    names = [wanted] if wanted else list(CANDIDATES)
    problems = []
    for name in names:
        path = shutil.which(name)
        if path is None:
            problems.append(f"{name}: not installed")
            continue
        why = _probe_cached(path, cache)
        if why is None:
            return path
        problems.append(f"{name}: {why}")
    hint = (
        f"install runc (or crun), or name a working runtime in {RUNTIME_ENV}"
        if not wanted
        else f"check that {wanted} works here, or unset {RUNTIME_ENV} to auto-detect"
    )
    raise BuildError("no working OCI runtime for RUN (" + "; ".join(problems) + ")", hint=hint)


def _runtime_error(log_file: Path) -> str:
    """The last error the runtime logged (JSON log lines), if any."""
    err = ""
    with contextlib.suppress(OSError):
        for line in log_file.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and rec.get("level") in ("error", "fatal"):
                err = str(rec.get("msg", ""))
    return err


_reaper_lock = threading.Lock()

# Outside the build's namespaces (an unisolated build, a test calling us) a small helper process is the
# child subreaper that ``runc run --detach`` hands the container's init to: it reaps every child it gets
# and exits with the init's status (125: the container did not start). Making this process a subreaper
# instead would leave it every orphan of the machine's other programs as a zombie.
_HELPER = r"""
import ctypes, os, subprocess, sys
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
pid_file, argv = sys.argv[1], sys.argv[2:]
if subprocess.run(argv, stdin=subprocess.DEVNULL).returncode:
    sys.exit(125)
pid, code = int(open(pid_file).read().strip()), 125
while True:
    try:
        wpid, status = os.waitpid(-1, 0)
    except ChildProcessError:
        break
    if wpid == pid:
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else code
sys.exit(code)
"""


_inflight: set[int] = set()  # pids of runtime processes this module started and still waits for
_used: set[str] = set()  # the runtimes this process has run containers with


def _reap_strays(runtime: str) -> None:
    """Reap the runtime's own orphans that were reparented to us and left as zombies.

    A runtime that fails half-way (crun on hybrid cgroups) can leave a forked copy of itself behind; as
    the reaper of our descendants we must collect it. Only zombies named like the runtime and not awaited
    by one of our own ``Popen`` objects are taken.
    """
    me = os.getpid()
    name = os.path.basename(runtime)[:15]
    for pid in _children(me):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        comm, _, rest = stat.partition(" (")[2].rpartition(") ")
        fields = rest.split()
        if len(fields) < 2 or fields[0] != "Z" or int(fields[1]) != me:
            continue
        if (comm == name or comm.startswith(("runc:", "crun:"))) and pid not in _inflight:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def _children(me: int) -> list[int]:
    """Our child processes: from /proc/self/task/*/children (every thread's), else every process."""
    pids: list[int] = []
    try:
        for task in os.scandir(f"/proc/{me}/task"):
            with open(f"{task.path}/children", "rb") as f:
                pids += [int(p) for p in f.read().split()]
    except OSError:  # no CONFIG_PROC_CHILDREN: look at them all
        return [int(e.name) for e in os.scandir("/proc") if e.name.isdigit()]
    return pids


class _Container:
    """One container started by ``runc run --detach`` and waited for as our child."""

    def __init__(self, runtime: str, state: Path, bundle: Path, log_file: Path) -> None:
        self.root = [runtime, "--root", str(state)]  # kill and delete: they may outlive the bundle (its log)
        self.base = [*self.root, "--log", str(log_file), "--log-format", "json"]
        self.cid = f"idpb-{uuid.uuid4().hex[:20]}"
        self.pid_file = bundle / "container.pid"
        self.bundle = bundle
        self.init_pid: int | None = None
        self.direct = os.getpid() == 1
        self.status: int | None = None

    def start(self, out: int) -> subprocess.Popen[bytes]:
        """``runc run --detach``, the container's stdout and stderr both ``out`` (one pipe keeps their order).

        As pid 1 of the build's namespaces we are the reaper the container's init is handed to; elsewhere
        ``_HELPER`` runs the runtime and is that reaper (``self.direct`` False).
        """
        argv = [*self.base, "run", "--detach", "--bundle", str(self.bundle), "--pid-file", str(self.pid_file)]
        argv.append(self.cid)
        if not self.direct:
            argv = [sys.executable, "-I", "-S", "-c", _HELPER, str(self.pid_file), *argv]
        with _reaper_lock:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
            )
            _inflight.add(proc.pid)
        return proc

    def ended(self, runc: subprocess.Popen[bytes]) -> int:
        """Wait for ``runc run`` (or the helper) to exit; its exit status."""
        code = runc.wait()
        with _reaper_lock:
            _inflight.discard(runc.pid)
        if code != 0 and self.direct:
            _reap_strays(self.base[0])
        return code

    def exit_status(self, runc: subprocess.Popen[bytes]) -> int:
        """The container's exit status, once its output has ended (CREATE_FAILED: it did not start)."""
        code = self.ended(runc)
        if not self.direct:
            return code  # the helper exits with the init's status
        if self.read_pid() is None:
            return CREATE_FAILED
        status = self.wait()
        return CREATE_FAILED if code != 0 and status == 0 else status

    def read_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            self.init_pid = int(self.pid_file.read_text().strip())
        return self.init_pid

    def wait(self) -> int:
        """Wait for the container's init (our child now: runc has exited); its status as a shell gives it."""
        assert self.init_pid is not None
        while True:
            try:
                _, status = os.waitpid(self.init_pid, 0)
                break
            except InterruptedError:
                continue
            except ChildProcessError:  # reaped already (by a kill below)
                return self.status if self.status is not None else 137
        code = os.waitstatus_to_exitcode(status)
        self.status = 128 - code if code < 0 else code
        return self.status

    def kill(self, runc: subprocess.Popen[bytes]) -> None:
        """Kill the container (it may still be being created) and its runc."""
        for _ in range(20):
            if runc.poll() is not None and self.read_pid() is None:
                break
            subprocess.run(
                [*self.root, "kill", self.cid, "KILL"], capture_output=True, timeout=30, check=False
            )
            if runc.poll() is not None:
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                runc.wait(timeout=0.5)
        if runc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(runc.pid, signal.SIGKILL)
            runc.wait(timeout=15)

    def delete(self) -> None:
        subprocess.run(
            [*self.root, "delete", "--force", self.cid], capture_output=True, timeout=60, check=False
        )

    def delete_later(self) -> None:
        """Start ``delete`` of the exited container; the build goes on meanwhile (see ``settle``)."""
        with _reaper_lock:
            proc = subprocess.Popen(
                [*self.root, "delete", "--force", self.cid],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            _inflight.add(proc.pid)
            _deleting.append(proc)


_deleting: list[subprocess.Popen[bytes]] = []  # ``delete`` of exited containers, still running


def settle() -> None:
    """Wait for the ``delete`` calls started by ``delete_later`` (before the runtime's state goes away), and
    reap what the runtime left to us (its set-up processes, when ``run`` exits before collecting them)."""
    while True:
        with _reaper_lock:
            if not _deleting:
                runtimes = set(_used)
                break
            proc = _deleting.pop()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=60)
        with _reaper_lock:
            _inflight.discard(proc.pid)
    if os.getpid() == 1:  # the runtime's orphans come to us (a helper reaps them elsewhere)
        for runtime in runtimes:
            _reap_strays(runtime)


def _lines(fd: int) -> Iterator[str]:
    """Lines read from ``fd`` until EOF, polling so a Ctrl-C is handled promptly whichever thread got it."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    buf = b""
    while True:
        if not poller.poll(200):
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                if len(buf) >= _MAX_LINE:  # an endless line: hand it out in pieces
                    yield buf.decode("utf-8", "replace")
                    buf = b""
                break
            yield buf[:nl].decode("utf-8", "replace").rstrip("\r")
            buf = buf[nl + 1 :]
    if buf:
        yield buf.decode("utf-8", "replace").rstrip("\r")


def run_container(
    runtime: str,
    state: Path,
    bundle: Path,
    *,
    on_output: Callable[[str], None] | None = None,
    timeout: float | None = None,
) -> ContainerResult:
    """Run the bundle, streaming its stdout/stderr lines (in order) to ``on_output``; wait for its exit.

    One runtime call starts the container (``run --detach``, with our pipe as its stdout and stderr), we
    reap its init ourselves as pid 1 of the build's namespaces (elsewhere a helper does, see ``_HELPER``)
    and ``delete`` it in the background: two runtime processes per RUN. On any exception
    (KeyboardInterrupt included) the container is killed and deleted before re-raising.
    """
    settle()  # at most one container is being deleted while the next one runs
    state.mkdir(parents=True, exist_ok=True)
    log_file = bundle / "runtime-log.json"
    box = _Container(runtime, state, bundle, log_file)
    _used.add(runtime)
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    timer: threading.Timer | None = None
    r, w = os.pipe()
    try:
        runc = box.start(w)
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    try:
        if timeout is not None:
            timer = threading.Timer(timeout, lambda: box.kill(runc))
            timer.daemon = True
            timer.start()
        for line in _lines(r):
            tail.append(line)
            if on_output is not None:
                on_output(line)
        # EOF: runc has exited and every process of the container has closed the pipe
        status = box.exit_status(runc)
    except BaseException:
        box.kill(runc)
        box.ended(runc)
        if box.direct and box.read_pid() is not None:
            box.wait()
        box.delete()
        raise
    finally:
        if timer is not None:
            timer.cancel()
        os.close(r)
    error = _runtime_error(log_file)
    box.delete_later()
    return ContainerResult(status, list(tail), error)
