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

__all__ = ["ContainerResult", "detect_runtime", "run_container"]

RUNTIME_ENV = "IDPBUILDER_RUNTIME"
CANDIDATES = ("crun", "runc")
TAIL_LINES = 20
_MAX_LINE = 64 * 1024
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


def _kill_and_delete(runtime: str, state: Path, cid: str, proc: subprocess.Popen[bytes]) -> None:
    """Kill the container (it may still be being created) and its helper; delete the container."""
    base = [runtime, "--root", str(state)]
    for _ in range(20):
        if proc.poll() is not None:
            break
        subprocess.run([*base, "kill", cid, "KILL"], capture_output=True, timeout=30, check=False)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.5)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)
    subprocess.run([*base, "delete", "--force", cid], capture_output=True, timeout=30, check=False)


# Runs in a helper process that is a child subreaper: ``<runtime> create`` hands the container the helper's
# stdout/stderr (one pipe, so the output order is kept, unlike ``run`` which relays stdout and stderr
# through two goroutines), ``start`` runs it, and the helper reaps the container's init and exits with its
# status (128+N for a signal), as buildah's runtime sub-process does.
_HELPER = r"""
import ctypes, os, subprocess, sys
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
rt, root, bundle, cid, pidfile, log = sys.argv[1:7]
base = [rt, "--root", root, "--log", log, "--log-format", "json"]
if subprocess.run(base + ["create", "--bundle", bundle, "--pid-file", pidfile, cid], stdin=subprocess.DEVNULL).returncode:
    sys.exit(125)
pid = int(open(pidfile).read().strip())
started = subprocess.run(base + ["start", cid], stdin=subprocess.DEVNULL).returncode == 0
code = 125
while True:
    try:
        wpid, status = os.waitpid(-1, 0)
    except ChildProcessError:
        break
    if wpid == pid:
        code = os.waitstatus_to_exitcode(status)
        code = 128 - code if code < 0 else code
if not started and code == 0:
    code = 125
subprocess.run(base + ["delete", "--force", cid], capture_output=True)
sys.exit(code)
"""
CREATE_FAILED = 125


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

    On any exception (KeyboardInterrupt included) the container is killed and deleted before re-raising.
    """
    state.mkdir(parents=True, exist_ok=True)
    cid = f"idpb-{uuid.uuid4().hex[:20]}"
    log_file = bundle / "runtime-log.json"
    argv = [sys.executable, "-I", "-S", "-c", _HELPER, runtime, str(state), str(bundle), cid]
    argv += [str(bundle / "container.pid"), str(log_file)]
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    timer: threading.Timer | None = None
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        if timeout is not None:
            timer = threading.Timer(timeout, lambda: _kill_and_delete(runtime, state, cid, proc))
            timer.daemon = True
            timer.start()
        assert proc.stdout is not None
        for line in _lines(proc.stdout.fileno()):
            tail.append(line)
            if on_output is not None:
                on_output(line)
        status = proc.wait()
    except BaseException:
        _kill_and_delete(runtime, state, cid, proc)
        raise
    finally:
        if timer is not None:
            timer.cancel()
        if proc.stdout is not None:
            proc.stdout.close()
    return ContainerResult(status, list(tail), _runtime_error(log_file))
