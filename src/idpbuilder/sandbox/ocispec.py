"""Generate the OCI runtime ``config.json`` for a RUN step (pure: values in, dict out).

Defaults follow Docker/BuildKit: Docker's capability set, mount/pid/ipc/uts namespaces (+ network unless
host networking), /proc, a tmpfs /dev with the standard nodes, /dev/pts, /dev/shm, /dev/mqueue, a read-only
/sys, Docker's masked and read-only paths, and a devices cgroup that denies everything else.
"""

from __future__ import annotations

import resource
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from idpbuilder.sandbox.users import ExecUser

__all__ = [
    "DEFAULT_CAPABILITIES",
    "DEFAULT_PATH",
    "OciMount",
    "build_config",
    "default_env",
    "host_rlimits",
]

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_CAPABILITIES = (
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
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
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
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
_NOFILE_DEFAULT = 1048576


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


def host_rlimits() -> list[dict[str, Any]]:
    """RLIMIT_NOFILE as high as Docker asks (1048576) but never above this process's hard limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = _NOFILE_DEFAULT if hard == resource.RLIM_INFINITY else min(hard, _NOFILE_DEFAULT)
    return [{"type": "RLIMIT_NOFILE", "hard": limit, "soft": limit}]


def default_env(env: Sequence[str], user: ExecUser) -> list[str]:
    """``env`` plus PATH and HOME when missing, as Docker adds them."""
    out = list(env)
    keys = {e.partition("=")[0] for e in out}
    if "PATH" not in keys:
        out.append(f"PATH={DEFAULT_PATH}")
    if "HOME" not in keys:
        out.append(f"HOME={user.home or '/'}")
    return out


def system_mounts(*, bind_sys: bool = False, tty_gid: bool = True) -> list[OciMount]:
    """The /proc, /dev, /sys family of mounts (``bind_sys``: /sys as a recursive read-only bind;
    ``tty_gid``: /dev/pts owned by group 5, which a user namespace mapping one id only cannot do)."""
    return [
        OciMount("/proc", "proc", "proc", ("nosuid", "noexec", "nodev")),
        OciMount("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
        OciMount(
            "/dev/pts",
            "devpts",
            "devpts",
            ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", *(("gid=5",) if tty_gid else ())),
        ),
        OciMount("/dev/shm", "tmpfs", "shm", ("nosuid", "noexec", "nodev", "mode=1777", "size=65536k")),
        OciMount("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
        # a fresh sysfs even with host networking where we may (root): an rbind of the host /sys needs "rro"
        # to keep its submounts (cgroups) read-only. In a user namespace sysfs mounts only with a network
        # namespace of our own, so rootless builds with the host network bind it, as rootless podman does.
        OciMount("/sys", "bind", "/sys", ("rbind", "nosuid", "noexec", "nodev", "rro"))
        if bind_sys
        else OciMount("/sys", "sysfs", "sysfs", ("nosuid", "noexec", "nodev", "ro")),
    ]


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
) -> dict[str, Any]:
    """The config.json dict for one RUN (``mounts`` come after the system mounts)."""
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if network == "none":
        namespaces.append({"type": "network"})
    caps = list(DEFAULT_CAPABILITIES)
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
        "mounts": [m.to_json() for m in [*system_mounts(bind_sys=bind_sys, tty_gid=tty_gid), *mounts]],
        "linux": {
            "namespaces": namespaces,
            "devices": [
                {"path": p, "type": "c", "major": ma, "minor": mi, "fileMode": 0o666, "uid": 0, "gid": 0}
                for p, ma, mi in DEFAULT_DEVICES
            ],
            "resources": {"devices": allow},
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
            "rootfsPropagation": "rslave",
        },
    }
