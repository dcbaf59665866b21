"""A hardened RUN: each confinement is tried by a real RUN through the real CLI build (a subprocess).

A RUN that tries what it must not do fails inside the step (or is bounded), and the host stays as it was:
no key in the host root's keyring, no raw/packet socket on the host network, a fork bomb stopped by the pids
limit with every process gone, no mount, no new user/mount namespace, no block device read, read-only
/proc files, masked files that read as nothing. Most attempts use ``confine_probe.c`` (a static binary
compiled here and COPYed into the context: busybox has no keyctl); the rest use busybox tools.

The fast tests at the end check the seccomp resolution (caps, arches, minKernel), its generator, and that
the host never opens an image's /etc/passwd when it is a device node or a FIFO.
"""

from __future__ import annotations

import ctypes
import gzip
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from fixtures.cli import CliResult, run_cli
from fixtures.podman import Podman
from idpbuilder.errors import BuildError
from idpbuilder.sandbox import ExecUser, resolve_user
from idpbuilder.sandbox.ocispec import DEFAULT_CAPABILITIES, build_config, pids_cgroup_possible
from idpbuilder.sandbox.seccomp import kernel_option, linux_seccomp, load_profile
from idpbuilder.sandbox.users import read_regular_in_root
from tools import gen_seccomp as gen

from .conftest import needs_root, needs_runtime

PROBE_C = Path(__file__).with_name("confine_probe.c")
_KEYCTL_NR = {"x86_64": 250, "aarch64": 219}
_KEYCTL_INVALIDATE = 21


def real_run(fn: Any) -> Any:
    """A test that runs containers: root and runc/crun."""
    return needs_root(needs_runtime(fn))


# ---------------------------------------------------------------- helpers
@pytest.fixture(scope="session")
def probe_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """confine_probe.c compiled static (the busybox image has no libc)."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    out = tmp_path_factory.mktemp("probe") / "probe"
    p = subprocess.run(
        ["gcc", "-static", "-O2", "-Wall", "-o", str(out), str(PROBE_C)], capture_output=True, text=True
    )
    if p.returncode != 0:
        pytest.skip(f"cannot build a static binary here: {p.stderr.strip()[-300:]}")
    return out


@pytest.fixture
def home(idp_home: Path, busybox_image: Any) -> Path:
    busybox_image.install(idp_home)
    return idp_home


def build(home: Path, ctx: Path, run: str, probe: Path | None = None) -> tuple[CliResult, str]:
    """``idpbuilder build`` of FROM busybox (+ COPY probe /probe) + ``run``; (result, stdout+stderr)."""
    ctx.mkdir(parents=True, exist_ok=True)
    df = "FROM busybox\n"
    if probe is not None:
        shutil.copy2(probe, ctx / "probe")
        df += "COPY probe /probe\n"
    (ctx / "Dockerfile").write_text(df + run + "\n")
    r = run_cli(["build", "-t", "confine:1", str(ctx)], home=home, timeout=180)
    return r, r.stdout + r.stderr


def assert_run_failed(r: CliResult, out: str, *needles: str) -> None:
    assert r.code != 0 and "RUN failed" in out, out
    for n in needles:
        assert n in out, out


def printed(out: str, line: str) -> bool:
    """True when the RUN printed ``line`` (as a whole output line, not in the echoed command)."""
    return re.search(rf"^#\d+ {re.escape(line)}$", out, re.M) is not None


def user_keys() -> dict[str, str]:
    """description -> id of the "user" keys the host root can see (/proc/keys)."""
    keys = {}
    for line in Path("/proc/keys").read_text().splitlines():
        f = line.split(None, 8)
        if len(f) == 9 and f[7] == "user":
            keys[f[8].split(":")[0]] = f[0]
    return keys


def _invalidate(key_id: str) -> None:
    """Remove a key a failing test let a RUN add to the host keyring."""
    nr = _KEYCTL_NR.get(platform.machine())
    if nr is not None:
        ctypes.CDLL(None, use_errno=True).syscall(nr, _KEYCTL_INVALIDATE, int(key_id, 16))


def leftover_processes(text: str) -> list[str]:
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                argv = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in argv:
                found.append(f"{d.name}: {argv}")
    return found


# ---------------------------------------------------------------- real RUNs
@real_run
@pytest.mark.parametrize("what", ["add_key", "keyctl"])
def test_keyring_syscalls_refused(what: str, home: Path, probe_bin: Path, tmp_path: Path) -> None:
    """Without seccomp a RUN added keys to the host root's user keyring (keyrings are not namespaced)."""
    desc = f"idpb-confine-{uuid.uuid4().hex[:12]}"
    before = user_keys()
    try:
        r, out = build(home, tmp_path / "ctx", f"RUN /probe {what} {desc}", probe_bin)
        assert_run_failed(r, out, f"DENIED {what}: Operation not permitted")
    finally:
        added = user_keys()
        if desc in added:
            _invalidate(added[desc])
    assert desc not in added
    assert set(added) <= set(before) | {k for k in added if not k.startswith("idpb-confine-")}


@real_run
def test_packet_and_raw_sockets_refused(home: Path, probe_bin: Path, tmp_path: Path) -> None:
    """CAP_NET_RAW is dropped: a RUN on the host network cannot sniff it."""
    r, out = build(
        home, tmp_path / "ctx", "RUN /probe raw; /probe packet && echo SNIFFING || exit 1", probe_bin
    )
    assert_run_failed(r, out, "DENIED raw socket: Operation not permitted")
    assert "DENIED packet socket: Operation not permitted" in out and not printed(out, "SNIFFING")


@real_run
def test_fork_bomb_bounded(home: Path, probe_bin: Path, tmp_path: Path) -> None:
    """The pids cgroup (2048) stops it; every process is gone afterwards."""
    r, out = build(home, tmp_path / "ctx", "RUN /probe fork 3000", probe_bin)
    assert_run_failed(r, out, "BOUNDED fork:")
    m = re.search(r"BOUNDED fork: (\d+) children", out)
    assert m is not None and 1000 < int(m.group(1)) < 2048, out
    assert leftover_processes("/probe fork") == []


@real_run
def test_mount_refused(home: Path, tmp_path: Path) -> None:
    r, out = build(home, tmp_path / "ctx", "RUN mkdir -p /mnt && mount -t tmpfs none /mnt && echo MOUNTED")
    assert_run_failed(r, out, "mount: permission denied")
    assert not printed(out, "MOUNTED")


@real_run
@pytest.mark.parametrize(("flag", "clone"), [("-U", "0x10000000"), ("-m", "0x20000")], ids=["user", "mount"])
def test_unshare_refused(flag: str, clone: str, home: Path, tmp_path: Path) -> None:
    """No new namespaces: without seccomp a RUN could make a user namespace (and get every cap in it)."""
    r, out = build(home, tmp_path / "ctx", f"RUN unshare {flag} true && echo UNSHARED")
    assert_run_failed(r, out, f"unshare({clone}): Operation not permitted")
    assert not printed(out, "UNSHARED")


def _host_block_device() -> tuple[int, int]:
    for entry in sorted(Path("/sys/dev/block").iterdir()):
        if not re.fullmatch(r"\d+:\d+", entry.name):
            continue
        major, minor = (int(x) for x in entry.name.split(":"))
        if major not in (1, 7):  # a real disk rather than a ramdisk or loop device
            return major, minor
    pytest.skip("no block device on this host")


@real_run
def test_block_device_node_unreadable(home: Path, tmp_path: Path) -> None:
    """mknod is allowed (CAP_MKNOD, as Docker), opening the node is not (devices cgroup)."""
    major, minor = _host_block_device()
    r, out = build(
        home,
        tmp_path / "ctx",
        f"RUN mknod /tmp/blk b {major} {minor} && echo MADE && dd if=/tmp/blk of=/dev/null bs=512 count=1",
    )
    assert_run_failed(r, out, "MADE", "can't open '/tmp/blk'")


@real_run
@pytest.mark.parametrize("path", ["/proc/sysrq-trigger", "/proc/sys/kernel/domainname"])
def test_proc_files_read_only(path: str, home: Path, tmp_path: Path) -> None:
    if not os.path.exists(path):
        pytest.skip(f"{path} does not exist on this kernel")
    # "h" only prints the sysrq help to the kernel log, were the write to get through
    payload = "h" if path.endswith("sysrq-trigger") else "idpb-confine"
    r, out = build(home, tmp_path / "ctx", f"RUN echo {payload} > {path} && echo WRITTEN")
    assert_run_failed(r, out, f"can't create {path}")
    assert not printed(out, "WRITTEN")


@real_run
def test_masked_paths_read_nothing(home: Path, tmp_path: Path) -> None:
    script = (
        "RUN for p in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do "
        '[ -e $p ] && echo "BYTES $p $(head -c 4096 $p | wc -c)"; done; '
        'for d in /sys/dev/block /sys/firmware /sys/fs/selinux; do echo "ENTRIES $d $(ls -A $d 2>/dev/null | wc -l)"; done'
    )
    r, out = build(home, tmp_path / "ctx", script)
    assert r.code == 0, out
    bytes_read = dict(re.findall(r"BYTES (\S+) (\d+)", out))
    entries = dict(re.findall(r"ENTRIES (\S+) (\d+)", out))
    for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"):
        if os.path.exists(p):  # present on the host: present and empty in the RUN
            assert bytes_read.get(p) == "0", out
    assert entries == {"/sys/dev/block": "0", "/sys/firmware": "0", "/sys/fs/selinux": "0"}, out
    assert any(Path("/sys/dev/block").iterdir())  # the host does have block devices


@real_run
def test_limits_inside_a_run(home: Path, tmp_path: Path) -> None:
    r, out = build(
        home,
        tmp_path / "ctx",
        'RUN echo "NOFILE $(ulimit -n) NPROC $(ulimit -u)"; grep Seccomp: /proc/self/status',
    )
    assert r.code == 0, out
    m = re.search(r"NOFILE (\d+) NPROC (\d+)", out)
    assert m is not None and int(m.group(1)) <= 1024 and int(m.group(2)) <= 2048, out
    assert re.search(r"Seccomp:\s+2", out), out  # filter mode


@real_run
@pytest.mark.skipif(shutil.which("podman") is None, reason="needs podman")
def test_podman_refuses_the_same(podman: Podman, busybox_image: Any, probe_bin: Path) -> None:
    """podman refuses the keyring (ENOSYS: containers/common's profile, where Docker's says EPERM) and mount.

    It is laxer elsewhere: podman 4.3 here keeps CAP_NET_RAW (a packet socket opens) and its profile allows
    ``unshare`` (``unshare -U`` works); a RUN refuses both, as Docker and BuildKit do.
    """
    image = podman.pull(busybox_image.oci_ref)
    p = podman(
        "run", "--rm", "-v", f"{probe_bin}:/probe:ro", image, "sh", "-c",
        "/probe add_key idpb-confine-podman; mount -t tmpfs none /tmp; true",
        check=False,
    )  # fmt: skip
    out = p.stdout + p.stderr
    assert "DENIED add_key:" in out, out
    assert "mount: permission denied" in out, out
    assert "idpb-confine-podman" not in user_keys()


# ---------------------------------------------------------------- seccomp resolution (no container)
def _allowed(sec: dict[str, Any]) -> set[str]:
    return {
        n for r in sec["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and "args" not in r for n in r["names"]
    }


def test_seccomp_for_our_caps() -> None:
    sec = linux_seccomp(DEFAULT_CAPABILITIES, machine="x86_64", kernel=(6, 1))
    assert sec["defaultAction"] == "SCMP_ACT_ERRNO" and sec["defaultErrnoRet"] == 1
    assert sec["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = _allowed(sec)
    for name in (
        "read",
        "execve",
        "socket",
        "clone3",
        "setuid",
        "chroot",
        "ptrace",
        "arch_prctl",
        "modify_ldt",
    ):
        assert name in allowed or any(name in r["names"] for r in sec["syscalls"]), name
    for name in ("add_key", "keyctl", "request_key", "mount", "umount2", "unshare", "setns", "bpf", "kexec_load",
                 "init_module", "open_by_handle_at", "reboot", "syslog", "perf_event_open", "sethostname"):  # fmt: skip
        assert name not in allowed, name
    clone = [r for r in sec["syscalls"] if r["names"] == ["clone"]]
    assert len(clone) == 1 and clone[0]["args"][0]["op"] == "SCMP_CMP_MASKED_EQ"  # no CLONE_NEW* flags
    assert {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38} in sec["syscalls"]  # ENOSYS
    assert not any("cacheflush" in r["names"] or "s390_runtime_instr" in r["names"] for r in sec["syscalls"])


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the x32 ABI is an x86_64 matter")
def test_seccomp_leaves_out_x32_when_the_kernel_has_none() -> None:
    """This host's filter lists x32 only if its kernel runs x32 code (CONFIG_X86_X32_ABI)."""
    config = Path("/proc/config.gz")
    if not config.exists():
        pytest.skip("no /proc/config.gz to compare with")
    text = gzip.decompress(config.read_bytes()).decode()
    has_x32 = "CONFIG_X86_X32_ABI=y" in text.splitlines()
    assert kernel_option("CONFIG_X86_X32_ABI") is has_x32
    assert kernel_option("CONFIG_NO_SUCH_OPTION_EVER") is False
    archs = linux_seccomp(DEFAULT_CAPABILITIES)["architectures"]
    assert archs[:2] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
    assert ("SCMP_ARCH_X32" in archs) is has_x32


def test_seccomp_resolution_by_arch_caps_and_kernel() -> None:
    arm = linux_seccomp(DEFAULT_CAPABILITIES, machine="aarch64", kernel=(6, 1))
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert (
        "cacheflush" in _allowed(arm)
        and "arch_prctl" not in _allowed(arm)
        and "modify_ldt" not in _allowed(arm)
    )
    old = linux_seccomp(DEFAULT_CAPABILITIES, machine="x86_64", kernel=(4, 7))
    assert "ptrace" not in _allowed(old)  # minKernel 4.8
    admin = linux_seccomp([*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"], machine="x86_64", kernel=(6, 1))
    assert {"mount", "unshare", "setns"} <= _allowed(admin)
    assert not any(r["names"] == ["clone3"] for r in admin["syscalls"])  # excluded with CAP_SYS_ADMIN
    unknown = linux_seccomp(DEFAULT_CAPABILITIES, machine="pdp11", kernel=(6, 1))
    assert "architectures" not in unknown  # the runtime's native arch only


def test_generator_and_data_file(tmp_path: Path) -> None:
    moby = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "args": [], "comment": "", "includes": {},
             "excludes": {}},
            {"name": "mount", "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
        ],
    }  # fmt: skip
    src = tmp_path / "default.json"
    src.write_text(json.dumps(moby))
    out = tmp_path / "out.json"
    assert gen.main(["--input", str(src), "--source", "test", "--output", str(out)]) == 0
    assert gen.main(["--input", str(src), "--source", "test", "--output", str(out), "--check"]) == 0
    data = json.loads(out.read_text())
    assert data["archMap"] == {"SCMP_ARCH_X86_64": ["SCMP_ARCH_X86"]}
    assert data["syscalls"] == [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
    ]
    sec = linux_seccomp(["CAP_CHOWN"], machine="x86_64", kernel=(6, 1), profile=data)
    assert sec["syscalls"] == [
        {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW"},
    ]
    src.write_text(json.dumps({**moby, "syscalls": [{"names": ["x"], "action": "SCMP_ACT_BOGUS"}]}))
    assert gen.main(["--input", str(src), "--output", str(out)]) == 2
    # the shipped data file is the generator's output (its header says where from)
    shipped = load_profile()
    assert shipped["generatedBy"].startswith("tools/gen_seccomp.py") and "moby" in shipped["source"]
    assert len(shipped["sourceSha256"]) == 64 and len(shipped["syscalls"]) > 20


# ---------------------------------------------------------------- USER resolution never opens a device/FIFO
@needs_root
def test_passwd_device_node_is_never_opened(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    os.mknod(tmp_path / "etc/passwd", 0o644 | 0o020000, os.makedev(1, 3))  # a char device (null)
    (tmp_path / "etc/group").write_text("root:x:0:\n")
    assert read_regular_in_root(tmp_path, "/etc/passwd") is None
    assert resolve_user(tmp_path, "0").uid == 0
    with pytest.raises(BuildError, match="unable to find user root"):
        resolve_user(tmp_path, "root")


def test_passwd_fifo_is_never_opened(tmp_path: Path) -> None:
    """A FIFO is neither read nor opened: a writer waiting on it stays blocked."""
    (tmp_path / "etc").mkdir()
    fifo = tmp_path / "etc/passwd"
    os.mkfifo(fifo)
    (tmp_path / "etc/group").symlink_to("passwd")  # a link to it, resolved in the rootfs
    opened = threading.Event()

    def writer() -> None:
        fd = os.open(fifo, os.O_WRONLY)  # blocks until someone opens the FIFO for reading
        opened.set()
        os.close(fd)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        assert resolve_user(tmp_path, "1000:1000").uid == 1000
        assert read_regular_in_root(tmp_path, "/etc/group") is None
        assert not opened.wait(0.2)
    finally:
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # release the writer
        t.join(5)
    assert opened.is_set()


def test_passwd_regular_file_still_read(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("app:x:1000:1000::/home/app:/bin/sh\n")
    (tmp_path / "etc/group").symlink_to("/etc/passwd")  # absolute: resolved inside the rootfs
    assert read_regular_in_root(tmp_path, "/etc/group") == b"app:x:1000:1000::/home/app:/bin/sh\n"
    assert resolve_user(tmp_path, "app").home == "/home/app"


# ---------------------------------------------------------------- pids limit: cgroup where possible
def test_pids_cgroup_possible(tmp_path: Path) -> None:
    v1 = tmp_path / "v1"
    (v1 / "pids").mkdir(parents=True)
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    nopids = tmp_path / "nopids"
    nopids.mkdir()
    (nopids / "cgroup.controllers").write_text("cpu memory\n")
    root = os.geteuid() == 0
    assert pids_cgroup_possible(v1) is True and pids_cgroup_possible(v2) is True  # writable here
    assert pids_cgroup_possible(nopids) is False and pids_cgroup_possible(tmp_path / "none") is False
    if root:
        assert pids_cgroup_possible() is True  # this host: runc makes the cgroup as root
    user = ExecUser(0, 0)
    kw: dict[str, Any] = {"rootfs": "/r", "argv": ["x"], "env": [], "user": user, "cwd": "/", "hostname": "h"}
    no_cgroup = build_config(**kw, network="host", mounts=[], pids_limit=None)
    assert "pids" not in no_cgroup["linux"]["resources"]  # rootless: RLIMIT_NPROC bounds it instead
    assert {"type": "RLIMIT_NPROC", "hard": 2048, "soft": 2048} in no_cgroup["process"]["rlimits"] or (
        resource.getrlimit(resource.RLIMIT_NPROC)[1] < 2048
    )
    assert build_config(**kw, network="host", mounts=[], pids_limit=64)["linux"]["resources"]["pids"] == {
        "limit": 64
    }
    assert "seccomp" not in build_config(**kw, network="host", mounts=[], seccomp=False)["linux"]


@real_run
def test_security_insecure_needs_the_entitlement(home: Path, tmp_path: Path) -> None:
    """As BuildKit: RUN --security=insecure is refused without --allow security.insecure; with it the step
    runs privileged (it may mount; full capabilities), and its cache key differs from a sandboxed run."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nRUN --security=insecure mkdir -p /mnt && mount -t tmpfs none /mnt && echo MOUNTED "
        "&& grep CapEff /proc/self/status\n"
    )
    r = run_cli(["build", "-t", "insecure:1", str(ctx)], home=home, timeout=180)
    assert r.code == 1 and "needs the security.insecure entitlement" in r.stderr, r.stderr
    assert "Hint: pass --allow security.insecure" in r.stderr
    r = run_cli(
        ["build", "--progress", "plain", "--allow", "security.insecure", "-t", "insecure:1", str(ctx)],
        home=home,
        timeout=180,
    )
    out = r.stdout + r.stderr
    assert r.code == 0 and printed(out, "MOUNTED"), out
    cap_eff = int(re.search(r"CapEff:\s+([0-9a-f]+)", out).group(1), 16)  # type: ignore[union-attr]
    assert cap_eff & (1 << 21), out  # CAP_SYS_ADMIN
    (ctx / "Dockerfile").write_text(
        (ctx / "Dockerfile").read_text().replace("--security=insecure", "--security=sandbox")
    )
    r = run_cli(["build", "--progress", "plain", "-t", "insecure:2", str(ctx)], home=home, timeout=180)
    assert r.code != 0 and not printed(r.stdout + r.stderr, "MOUNTED")  # not the privileged step's cache
