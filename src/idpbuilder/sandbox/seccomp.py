"""Docker's default seccomp profile, resolved into the OCI ``linux.seccomp`` section of a RUN.

The rules are data: ``seccomp_default.json`` next to this module, generated from moby's
``profiles/seccomp/default.json`` by ``tools/gen_seccomp.py``. ``linux_seccomp`` resolves them as moby's
``setupSeccomp`` does: the host architecture picks the ``archMap`` entry (x86_64 → X86_64, X86, X32;
aarch64 → AARCH64, ARM), and a rule is kept only when its ``includes`` hold (every listed cap in the
bounding set, the host arch listed, the kernel at least ``minKernel``) and no ``excludes`` does. Anything
not allowed fails with the profile's default errno (EPERM), so ``add_key``, ``keyctl``, ``mount``,
``unshare``, ``setns``, ``bpf``… are refused inside a RUN whatever the capabilities.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Sequence
from importlib import resources
from typing import Any

__all__ = ["host_arch", "kernel_option", "kernel_version", "linux_seccomp", "load_profile"]

DATA_FILE = "seccomp_default.json"
# uname machine -> (moby's native arch name used by includes/excludes "arches", the libseccomp arch)
_MACHINES: dict[str, tuple[str, str]] = {
    "x86_64": ("amd64", "SCMP_ARCH_X86_64"),
    "amd64": ("amd64", "SCMP_ARCH_X86_64"),
    "i386": ("x86", "SCMP_ARCH_X86"),
    "i486": ("x86", "SCMP_ARCH_X86"),
    "i586": ("x86", "SCMP_ARCH_X86"),
    "i686": ("x86", "SCMP_ARCH_X86"),
    "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
    "arm64": ("arm64", "SCMP_ARCH_AARCH64"),
    "armv6l": ("arm", "SCMP_ARCH_ARM"),
    "armv7l": ("arm", "SCMP_ARCH_ARM"),
    "armv8l": ("arm", "SCMP_ARCH_ARM"),
    "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"),
    "ppc64": ("ppc64", "SCMP_ARCH_PPC64"),
    "s390x": ("s390x", "SCMP_ARCH_S390X"),
    "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"),
    "loongarch64": ("loong64", "SCMP_ARCH_LOONGARCH64"),
    "mips64": ("mips64", "SCMP_ARCH_MIPS64"),
}


@functools.cache
def load_profile() -> dict[str, Any]:
    """The generated profile data (parsed once per process)."""
    text = resources.files("idpbuilder.sandbox").joinpath(DATA_FILE).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def host_arch(machine: str | None = None) -> tuple[str, str] | None:
    """(moby arch name, SCMP_ARCH_*) of ``machine`` (default: this host's ``uname -m``); None if unknown."""
    return _MACHINES.get(machine if machine is not None else os.uname().machine)


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """(major, minor) of a kernel release string (default: the running kernel), as moby parses it."""
    m = re.match(r"(\d+)\.(\d+)", release if release is not None else os.uname().release)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


@functools.cache
def kernel_option(name: str) -> bool | None:
    """Whether the running kernel was built with ``name`` (``CONFIG_…``); None when its config is unreadable.

    Read from /proc/config.gz, else /boot/config-<release>.
    """
    import zlib

    try:
        with open("/proc/config.gz", "rb") as f:
            text = zlib.decompress(f.read(), 47).decode("utf-8", "replace")  # 47: gzip or zlib header
    except (OSError, zlib.error):
        try:
            with open(f"/boot/config-{os.uname().release}", encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            return None
    for line in text.splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1].strip() in ("y", "m")
        if line == f"# {name} is not set":
            return False
    return False


def _min_kernel(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


def _applies(rule: dict[str, Any], caps: frozenset[str], arch: str | None, kernel: tuple[int, int]) -> bool:
    exc = rule.get("excludes") or {}
    if arch is not None and arch in exc.get("arches", ()):
        return False
    if any(c in caps for c in exc.get("caps", ())):
        return False
    if "minKernel" in exc and kernel >= _min_kernel(exc["minKernel"]):
        return False
    inc = rule.get("includes") or {}
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if not all(c in caps for c in inc.get("caps", ())):
        return False
    return not ("minKernel" in inc and kernel < _min_kernel(inc["minKernel"]))


def linux_seccomp(
    capabilities: Sequence[str],
    *,
    machine: str | None = None,
    kernel: tuple[int, int] | None = None,
    profile: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The OCI ``linux.seccomp`` object for a process whose bounding set is ``capabilities``."""
    prof = load_profile() if profile is None else profile
    caps = frozenset(capabilities)
    found = host_arch(machine)
    arch = found[0] if found else None
    kern = kernel_version() if kernel is None else kernel
    out: dict[str, Any] = {"defaultAction": prof["defaultAction"]}
    if "defaultErrnoRet" in prof:
        out["defaultErrnoRet"] = prof["defaultErrnoRet"]
    if found is not None and found[1] in prof.get("archMap", {}):
        subs = prof["archMap"][found[1]]
        if machine is None and "SCMP_ARCH_X32" in subs and kernel_option("CONFIG_X86_X32_ABI") is False:
            # a kernel without the x32 ABI never runs an x32 syscall (ENOSYS before any filter matters);
            # leaving it out makes the filter a third smaller and runc ~7 ms faster per RUN
            subs = [a for a in subs if a != "SCMP_ARCH_X32"]
        out["architectures"] = [found[1], *subs]
    syscalls = []
    for rule in prof["syscalls"]:
        if not _applies(rule, caps, arch, kern):
            continue
        entry: dict[str, Any] = {"names": list(rule["names"]), "action": rule["action"]}
        if "errnoRet" in rule:
            entry["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            entry["args"] = [dict(a) for a in rule["args"]]
        syscalls.append(entry)
    out["syscalls"] = syscalls
    return out
