"""USER resolution against /etc/passwd + /etc/group, and the generated OCI config."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from idpbuilder.errors import BuildError
from idpbuilder.sandbox import ExecUser, resolve_user
from idpbuilder.sandbox.ocispec import DEFAULT_CAPABILITIES, build_config, default_env

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:App:/home/app:/bin/sh\nbroken line\n"
GROUP = "root:x:0:\nappgrp:x:1001:\nwheel:x:10:app,other\ndocker:x:999:app\nstaff:x:50:other\n"


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(PASSWD)
    (tmp_path / "etc/group").write_text(GROUP)
    return tmp_path


@pytest.mark.parametrize(
    ("user", "want"),
    [
        ("", ExecUser(0, 0, (0,), "/root")),
        ("root", ExecUser(0, 0, (0,), "/root")),
        ("app", ExecUser(1000, 1001, (1001, 10, 999), "/home/app")),
        ("1000", ExecUser(1000, 1001, (1001, 10, 999), "/home/app")),
        ("app:wheel", ExecUser(1000, 10, (10,), "/home/app")),
        ("app:4242", ExecUser(1000, 4242, (4242,), "/home/app")),
        ("4242", ExecUser(4242, 0, (0,), "/")),
        ("4242:staff", ExecUser(4242, 50, (50,), "/")),
        ("0:0", ExecUser(0, 0, (0,), "/root")),
    ],
)
def test_resolve_user(rootfs: Path, user: str, want: ExecUser) -> None:
    assert resolve_user(rootfs, user) == want


@pytest.mark.parametrize("user", ["ghost", "app:nogroup", "99999999999"])
def test_resolve_user_errors(rootfs: Path, user: str) -> None:
    with pytest.raises(BuildError):
        resolve_user(rootfs, user)


def test_passwd_symlink_stays_in_rootfs(tmp_path: Path) -> None:
    host = tmp_path / "host-passwd"
    host.write_text("evil:x:0:0::/:/bin/sh\n")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").symlink_to(host)  # absolute: resolved inside the rootfs, where it does not exist
    with pytest.raises(BuildError, match="unable to find user evil"):
        resolve_user(root, "evil")


def test_config_defaults() -> None:
    user = ExecUser(1000, 1001, (10,), "/home/app")
    cfg = build_config(
        rootfs="/r",
        argv=["sh", "-c", "x"],
        env=default_env(["A=1"], user),
        user=user,
        cwd="/w",
        hostname="h",
        network="none",
        mounts=[],
    )
    p = cfg["process"]
    assert p["terminal"] is False and p["args"] == ["sh", "-c", "x"] and p["cwd"] == "/w"
    assert p["user"] == {"uid": 1000, "gid": 1001, "additionalGids": [10], "umask": 0o022}
    assert (
        p["env"][0] == "A=1" and any(e.startswith("PATH=") for e in p["env"]) and "HOME=/home/app" in p["env"]
    )
    # Docker's 14 default capabilities minus CAP_NET_RAW (a RUN shares the host network)
    assert (
        sorted(p["capabilities"]["bounding"]) == sorted(DEFAULT_CAPABILITIES)
        and len(DEFAULT_CAPABILITIES) == 13
        and "CAP_NET_RAW" not in DEFAULT_CAPABILITIES
    )
    limits = {r["type"]: r for r in p["rlimits"]}
    for name, kind, want in (
        ("RLIMIT_NOFILE", resource.RLIMIT_NOFILE, 1024),
        ("RLIMIT_NPROC", resource.RLIMIT_NPROC, 2048),
    ):
        hard = resource.getrlimit(kind)[1]
        cap = want if hard == resource.RLIM_INFINITY else min(want, hard)
        assert limits[name]["hard"] == limits[name]["soft"] == cap
    assert cfg["linux"]["resources"]["pids"] == {"limit": 2048}
    assert {"/sys/dev/block", "/sys/fs/selinux", "/proc/kcore", "/proc/keys"} <= set(
        cfg["linux"]["maskedPaths"]
    )
    assert "noexec" in cfg["mounts"][1]["options"]
    assert cfg["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    ns = {n["type"] for n in cfg["linux"]["namespaces"]}
    assert ns == {"pid", "ipc", "uts", "mount", "network"}
    dests = [m["destination"] for m in cfg["mounts"]]
    assert dests[:6] == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"]
    assert "ro" in cfg["mounts"][5]["options"]
    host = build_config(
        rootfs="/r", argv=["x"], env=[], user=user, cwd="/", hostname="h", network="host", mounts=[]
    )
    assert "network" not in {n["type"] for n in host["linux"]["namespaces"]}
    assert default_env(["PATH=/x", "HOME=/h"], user) == ["PATH=/x", "HOME=/h"]
