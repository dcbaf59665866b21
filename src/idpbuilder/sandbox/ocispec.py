"""Generate the OCI runtime ``config.json`` for a RUN step (values in, dict out; the only host facts read
are this process's hard rlimits, whether a pids cgroup can be made, and the arch and kernel for seccomp).

Defaults follow Docker/BuildKit/podman, hardened for a RUN that shares the host network: Docker's
capability set without CAP_NET_RAW (no raw or packet sockets to sniff host traffic), Docker's default
seccomp profile resolved for those caps and the host arch (``sandbox.seccomp``), mount/pid/ipc/uts
namespaces (+ network unless host networking), /proc, a noexec tmpfs /dev with the standard nodes,
/dev/pts, /dev/shm, /dev/mqueue, a read-only /sys, podman's masked and read-only paths, a devices cgroup
that denies everything else, a pids cgroup limit of 2048 (podman's default) with RLIMIT_NPROC 2048 as
the fallback where no cgroup can be made, and RLIMIT_NOFILE 1024:1024 (containerd/BuildKit, podman).
"""

from __future__ import annotations

import os
import resource
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from idpbuilder._records import dataclass
from idpbuilder.sandbox.seccomp import linux_seccomp
from idpbuilder.sandbox.users import ExecUser

__all__ = [
    "DEFAULT_CAPABILITIES",
    "DEFAULT_PATH",
    "MASKED_PATHS",
    "NOFILE_LIMIT",
    "NPROC_LIMIT",
    "PIDS_LIMIT",
    "READONLY_PATHS",
    "OciMount",
    "build_config",
    "default_env",
    "host_rlimits",
    "pids_cgroup_possible",
]

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Docker's default set minus CAP_NET_RAW: a RUN shares the host network by default
DEFAULT_CAPABILITIES = (
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
)
MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/dev/block",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
    "/sys/fs/selinux",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
# (path, major, minor) of the device nodes every container gets in its /dev tmpfs
DEFAULT_DEVICES = (
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
)
# mount targets the runtime itself needs; they are never part of a layer
SYSTEM_DIRS = ("/proc", "/dev", "/sys")
PIDS_LIMIT = 2048  # podman's default pids cgroup limit
NPROC_LIMIT = 2048  # RLIMIT_NPROC: the fork-bomb bound where no pids cgroup can be made (rootless)
NOFILE_LIMIT = 1024  # RLIMIT_NOFILE soft and hard, as containerd's default spec (BuildKit) and podman


@dataclass(frozen=True)
class OciMount:
    """One entry of config.json ``mounts``."""

    destination: str
    type: str
    source: str
    options: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"destination": self.destination, "type": self.type, "source": self.source}
        if self.options:
            d["options"] = list(self.options)
        return d


def _capped(kind: int, want: int) -> int:
    _, hard = resource.getrlimit(kind)
    return want if hard == resource.RLIM_INFINITY else min(hard, want)


def host_rlimits() -> list[dict[str, Any]]:
    """RLIMIT_NOFILE 1024:1024 and RLIMIT_NPROC 2048:2048, never above this process's hard limits (an
    unprivileged runtime cannot raise them)."""
    nofile = _capped(resource.RLIMIT_NOFILE, NOFILE_LIMIT)
    nproc = _capped(resource.RLIMIT_NPROC, NPROC_LIMIT)
    return [
        {"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile},
        {"type": "RLIMIT_NPROC", "hard": nproc, "soft": nproc},
    ]


def pids_cgroup_possible(cgroup_root: Path = Path("/sys/fs/cgroup")) -> bool:
    """True when the runtime can make a pids cgroup for the container (where runc makes it: below the v1
    ``pids`` hierarchy, or the cgroup2 root with the pids controller): as real root, not rootless."""
    v1 = cgroup_root / "pids"
    if v1.is_dir():
        return os.access(v1, os.W_OK)
    try:
        controllers = (cgroup_root / "cgroup.controllers").read_text().split()
    except OSError:
        return False
    return "pids" in controllers and os.access(cgroup_root, os.W_OK)


def default_env(env: Sequence[str], user: ExecUser) -> list[str]:
    """``env`` plus PATH and HOME when missing, as Docker adds them."""
    out = list(env)
    keys = {e.partition("=")[0] for e in out}
    if "PATH" not in keys:
        out.append(f"PATH={DEFAULT_PATH}")
    if "HOME" not in keys:
        out.append(f"HOME={user.home or '/'}")
    return out


def system_mounts(
    *, bind_sys: bool = False, tty_gid: bool = True, writable_sys: bool = False
) -> list[OciMount]:
    """The /proc, /dev, /sys family of mounts (``bind_sys``: /sys as a recursive read-only bind;
    ``tty_gid``: /dev/pts owned by group 5, which a user namespace mapping one id only cannot do)."""
    return [
        OciMount("/proc", "proc", "proc", ("nosuid", "noexec", "nodev")),
        OciMount("/dev", "tmpfs", "tmpfs", ("nosuid", "noexec", "strictatime", "mode=755", "size=65536k")),
        OciMount(
            "/dev/pts",
            "devpts",
            "devpts",
            (
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                *(("gid=5",) if tty_gid else ()),
            ),
        ),
        OciMount("/dev/shm", "tmpfs", "shm", ("nosuid", "noexec", "nodev", "mode=1777", "size=65536k")),
        OciMount("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
        # a fresh sysfs even with host networking where we may (root): an rbind of the host /sys needs "rro"
        # to keep its submounts (cgroups) read-only. In a user namespace sysfs mounts only with a network
        # namespace of our own, so rootless builds with the host network bind it, as rootless podman does.
        OciMount(
            "/sys", "bind", "/sys", ("rbind", "nosuid", "noexec", "nodev", "rw" if writable_sys else "rro")
        )
        if bind_sys
        else OciMount(
            "/sys", "sysfs", "sysfs", ("nosuid", "noexec", "nodev", "rw" if writable_sys else "ro")
        ),
    ]


# every capability by number (linux/capability.h), for privileged RUNs (--security=insecure)
ALL_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
    "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip


def bounding_capabilities() -> list[str]:
    """The capabilities this process may pass on: its bounding set (what a privileged RUN gets)."""
    try:
        for line in open("/proc/self/status", encoding="ascii"):
            if line.startswith("CapBnd:"):
                mask = int(line.split()[1], 16)
                return [c for i, c in enumerate(ALL_CAPABILITIES) if mask >> i & 1]
    except OSError:
        pass
    return list(DEFAULT_CAPABILITIES)


def build_config(
    *,
    rootfs: str,
    argv: Sequence[str],
    env: Sequence[str],
    user: ExecUser,
    cwd: str,
    hostname: str,
    network: str,
    mounts: Sequence[OciMount],
    rlimits: list[dict[str, Any]] | None = None,
    bind_sys: bool = False,
    tty_gid: bool = True,
    pids_limit: int | None | Literal["auto"] = "auto",
    seccomp: bool = True,
    privileged: bool = False,
) -> dict[str, Any]:
    """The config.json dict for one RUN (``mounts`` come after the system mounts).

    ``pids_limit`` None leaves out the pids cgroup limit: runc refuses to start a container whose limit
    it cannot set, so "auto" (the default) sets PIDS_LIMIT only where a pids cgroup can be made (root) and
    leaves rootless runs to RLIMIT_NPROC. ``seccomp`` False leaves out the filter. ``privileged`` (RUN
    --security=insecure, as BuildKit's insecure mode): every capability we hold, no seccomp filter, no
    masked or read-only paths, a writable /sys, every device allowed.
    """
    if pids_limit == "auto":
        pids_limit = PIDS_LIMIT if pids_cgroup_possible() else None
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if network == "none":
        namespaces.append({"type": "network"})
    caps = bounding_capabilities() if privileged else list(DEFAULT_CAPABILITIES)
    user_json: dict[str, Any] = {"uid": user.uid, "gid": user.gid, "umask": 0o022}
    if user.additional_gids:
        user_json["additionalGids"] = list(user.additional_gids)
    allow = [{"allow": False, "access": "rwm"}]
    allow += [
        {"allow": True, "type": "c", "major": ma, "minor": mi, "access": "rwm"}
        for _, ma, mi in DEFAULT_DEVICES
    ]
    allow += [
        {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},  # /dev/ptmx
        {"allow": True, "type": "c", "major": 136, "access": "rwm"},  # /dev/pts/*
        {"allow": True, "type": "c", "access": "m"},  # mknod is allowed, opening is not (docker)
        {"allow": True, "type": "b", "access": "m"},
    ]
    if privileged:
        allow = [{"allow": True, "access": "rwm"}]
    resources: dict[str, Any] = {"devices": allow}
    if pids_limit is not None:
        resources["pids"] = {"limit": pids_limit}
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "devices": [
            {"path": p, "type": "c", "major": ma, "minor": mi, "fileMode": 0o666, "uid": 0, "gid": 0}
            for p, ma, mi in DEFAULT_DEVICES
        ],
        "resources": resources,
        "maskedPaths": [] if privileged else list(MASKED_PATHS),
        "readonlyPaths": [] if privileged else list(READONLY_PATHS),
        "rootfsPropagation": "rslave",
    }
    if seccomp and not privileged:
        linux["seccomp"] = linux_seccomp(caps)
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": False,
            "user": user_json,
            "args": list(argv),
            "env": list(env),
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": host_rlimits() if rlimits is None else rlimits,
            "noNewPrivileges": False,
        },
        "root": {"path": rootfs, "readonly": False},
        "hostname": hostname,
        "mounts": [
            m.to_json()
            for m in [*system_mounts(bind_sys=bind_sys, tty_gid=tty_gid, writable_sys=privileged), *mounts]
        ],
        "linux": linux,
    }
