#!/usr/bin/env python3
"""Rootless build benchmark: ``idpbuilder build`` as a normal user vs as root, and vs rootless ``podman build``
(``--isolation chroot`` and ``--isolation oci``), side by side.

Two Dockerfiles — the master one (``example/Dockerfile`` with ``--build-arg BASE=<registry>/library/busybox``)
and a Debian one (mmdebstrap minbase bookworm base; ``RUN apt-get update && apt-get install -y
--no-install-recommends curl`` from the package mirror) — each built cold (``--no-cache``, base image already
present) and warm (every step cached). Four builders, interleaved, the order rotating every round:

- ``ours-root``:      idpbuilder as root (its own store)
- ``ours-rootless``:  idpbuilder as a normal user with a subordinate id range (user namespace, overlayfs, runc)
- ``podman-chroot``:  rootless ``podman build --isolation chroot`` as the same user
- ``podman-oci``:     rootless ``podman build --isolation oci`` (runc) as the same user

Both idpbuilder runs use the same install (the test user's venv: Debian's python3, the pinned dependencies, a
copy of this checkout's ``src/idpbuilder``; root runs a root-owned copy of it). Each podman isolation has its
own storage (``--root``/``--runroot``), so neither reuses the other's cache. Base images come from a plain
HTTP ``docker-registry`` on loopback (the test fixtures' ``start_registry``) and are pulled before timing.
Prints medians, min-max and the ratios ours-rootless/ours-root, ours-rootless/podman-chroot and
ours-rootless/podman-oci.

    .venv/bin/python bench/rootless_bench.py [--rounds 3] [--debian-rounds 1] [--skip-debian]

Not part of the test command. Needs root (it creates the account ``idpbbench``, with its own subordinate id
range, and keeps it for the next run), podman, runc, docker-registry, skopeo, setpriv, newuidmap, mmdebstrap
and the Debian mirror (Debian scenario).
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the repository root (tools/, a dev package) and tests/ (the fixtures)
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from fixtures.registry import RegistryInfo, copy_to_registry, start_registry  # noqa: E402
from fixtures.users import NormalUser  # noqa: E402

USER = "idpbbench"
BUILDERS = ("ours-root", "ours-rootless", "podman-chroot", "podman-oci")
MODES = ("cold", "warm")
DEBIAN_RUN = "RUN apt-get update && apt-get install -y --no-install-recommends curl\n"
CONTAINERS_CONF = """\
# written by bench/rootless_bench.py: crun does not work on this host (hybrid cgroups), no systemd/journald
[containers]
default_ulimits = ["nofile=1024:1024"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
STORAGE_CONF = '[storage]\ndriver = "{driver}"\n'


@dataclass
class Series:
    """Wall seconds of every run of one (scenario, mode, builder)."""

    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def cell(self) -> str:
        """``median (min-max)``, or just the value when there is one run."""
        if len(self.seconds) == 1:
            return f"{self.median:.2f} s"
        return f"{self.median:.2f} s ({min(self.seconds):.2f}-{max(self.seconds):.2f})"


Results = dict[tuple[str, str, str], Series]  # (scenario, mode, builder) -> runs


def run_timed(cmd: Sequence[str], *, env: dict[str, str], cwd: Path) -> float:
    """Run ``cmd``; exit with its output on failure; return the wall time seen by the parent."""
    t0 = time.perf_counter()
    p = subprocess.run(
        list(cmd), env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False
    )
    seconds = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(
            f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout.decode(errors='replace')[-3000:]}"
        )
    return seconds


# ---------------------------------------------------------------------------------------------- builders


class Builder:
    """One way of building: a command prefix, the environment and who runs it."""

    name = ""

    def __init__(self, user: NormalUser) -> None:
        self.user = user

    def as_user(self, argv: Sequence[str]) -> list[str]:
        u = self.user
        return ["setpriv", f"--reuid={u.uid}", f"--regid={u.gid}", "--init-groups", "--", *argv]

    def command(self, ctx: Path, tag: str, build_args: Sequence[str], *, no_cache: bool) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return self.user.env()

    def build(self, ctx: Path, tag: str, build_args: Sequence[str], *, no_cache: bool) -> float:
        return run_timed(
            self.command(ctx, tag, build_args, no_cache=no_cache), env=self.env(), cwd=self.user.home
        )


class Ours(Builder):
    """idpbuilder, as root (``python`` a root-owned copy of the user's venv) or as the user (its venv)."""

    def __init__(self, user: NormalUser, *, rootless: bool, python: Path, home: Path, env_home: Path) -> None:
        super().__init__(user)
        self.name = "ours-rootless" if rootless else "ours-root"
        self.rootless = rootless
        self.python = python
        self.home = home  # --store
        self.env_home = env_home

    def command(self, ctx: Path, tag: str, build_args: Sequence[str], *, no_cache: bool) -> list[str]:
        argv = [
            str(self.python),
            "-m",
            "idpbuilder",
            "--store",
            str(self.home),
            "build",
            "--progress",
            "quiet",
        ]
        argv += [*(a for b in build_args for a in ("--build-arg", b)), "-t", tag]
        argv += [*(["--no-cache"] if no_cache else []), str(ctx)]
        return self.as_user(argv) if self.rootless else argv

    def env(self) -> dict[str, str]:
        env = self.user.env()
        # root gets a hermetic environment: no kubeconfig, docker config or XDG runtime dir of its own
        if not self.rootless:
            env.update(HOME=str(self.env_home), USER="root", LOGNAME="root")
            env.pop("XDG_RUNTIME_DIR")
        return env

    def images(self) -> dict[str, str]:
        """Tag -> manifest digest in the store (read as root)."""
        idx = json.loads((self.home / "store" / "index.json").read_text())
        return {
            m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
            for m in idx["manifests"]
            if "org.opencontainers.image.ref.name" in m.get("annotations", {})
        }


class Podman(Builder):
    """Rootless podman as the user, one isolation, its own storage."""

    def __init__(self, user: NormalUser, isolation: str) -> None:
        super().__init__(user)
        self.name = f"podman-{isolation}"
        self.isolation = isolation
        self.root = user.home / f"bench-podman-{isolation}"
        self.runroot = user.runtime_dir / f"bench-podman-{isolation}"

    def podman(self, *args: str) -> list[str]:
        return self.as_user(["podman", "--root", str(self.root), "--runroot", str(self.runroot), *args])

    def command(self, ctx: Path, tag: str, build_args: Sequence[str], *, no_cache: bool) -> list[str]:
        argv = ["build", "--isolation", self.isolation, "--network", "host", "--tls-verify=false", "--layers"]
        argv += [*(a for b in build_args for a in ("--build-arg", b)), "-q", "-t", tag]
        return self.podman(*argv, *(["--no-cache"] if no_cache else []), str(ctx))

    def exists(self, tag: str) -> bool:
        p = subprocess.run(
            self.podman("image", "exists", tag), env=self.env(), cwd=self.user.home, check=False
        )
        return p.returncode == 0

    def info(self) -> str:
        fmt = (
            '{{.Store.GraphDriverName}} native-diff={{index .Store.GraphStatus "Native Overlay Diff"}} '
            "runtime={{.Host.OCIRuntime.Name}} rootless={{.Host.Security.Rootless}} podman={{.Version.Version}}"
        )
        p = subprocess.run(self.podman("info", "--format", fmt), env=self.env(), cwd=self.user.home,
                           capture_output=True, text=True, check=False)  # fmt: skip
        return (p.stdout.strip() or p.stderr.strip()).replace("\n", " ")

    def cleanup(self) -> None:
        """Remove its storage (the layers belong to the user's subordinate ids: rm inside ``podman unshare``)."""
        env, cwd = self.env(), self.user.home
        subprocess.run(
            self.podman("rmi", "--all", "--force"), env=env, cwd=cwd, capture_output=True, check=False
        )
        subprocess.run(self.as_user(["podman", "unshare", "rm", "-rf", str(self.root), str(self.runroot)]),
                       env=env, cwd=cwd, capture_output=True, check=False)  # fmt: skip


def stop_pause_process(uid: int) -> None:
    """Kill the rootless podman pause process this bench left for the user ``uid`` (by its pid file)."""
    # under NormalUser's XDG_RUNTIME_DIR
    pidfile = Path(f"/tmp/idpbtest-xdg-{uid}") / "libpod" / "tmp" / "pause.pid"
    try:
        pid = int(pidfile.read_text())
        if os.stat(f"/proc/{pid}").st_uid == uid:
            os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass


# ------------------------------------------------------------------------------------------------ setup


def shared_dir(path: Path) -> Path:
    """A directory the bench user can read (contexts)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o755)
    return path


def seed_busybox(reg: RegistryInfo, work: Path) -> str:
    from fixtures.images import BUSYBOX_REF, make_busybox_store

    make_busybox_store(work / "busybox-home")
    copy_to_registry(f"oci:{work / 'busybox-home' / 'store'}:{BUSYBOX_REF}", reg, "library/busybox:latest")
    return reg.ref("library/busybox:latest")


def seed_debian(reg: RegistryInfo, work: Path) -> str | None:
    """The mmdebstrap bookworm minbase base in the registry (None, with the reason printed, when unavailable)."""
    import pytest

    from fixtures.debian import BASE_REF, debian_rootfs_tar, install_debian_base

    try:
        tar = debian_rootfs_tar()
    except pytest.skip.Exception as e:
        print(f"skipping Debian: {e}", file=sys.stderr)
        return None
    install_debian_base(work / "debian-home", tar)
    copy_to_registry(
        f"oci:{work / 'debian-home' / 'store'}:{BASE_REF}", reg, "library/debian:bookworm-minbase"
    )
    return reg.ref("library/debian:bookworm-minbase")


def podman_storage_driver(user: NormalUser) -> str:
    """overlay when rootless podman can use it here, else vfs."""
    probe = Podman(user, "probe")
    probe.root = user.home / "bench-podman-probe"
    for driver in ("overlay", "vfs"):
        (user.home / ".config" / "containers" / "storage.conf").write_text(STORAGE_CONF.format(driver=driver))
        p = subprocess.run(
            probe.podman("info"), env=probe.env(), cwd=user.home, capture_output=True, check=False
        )
        probe.cleanup()
        if p.returncode == 0:
            return driver
    sys.exit("rootless podman does not run here with overlay nor vfs storage (see `podman info` as the user)")


def write_podman_config(user: NormalUser) -> str:
    conf = user.home / ".config" / "containers"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "containers.conf").write_text(CONTAINERS_CONF)
    subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(user.home / ".config")], check=True)
    driver = podman_storage_driver(user)
    subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(conf)], check=True)
    return driver


# ------------------------------------------------------------------------------------------------- bench


def bench(
    scenario: str, ctx: Path, build_args: list[str], builders: list[Builder], rounds: int, results: Results
) -> None:
    """Prime every builder (pull the base, fill the cache), then cold and warm rounds, rotating the order."""
    tag = f"localhost/bench/{scenario}:latest"
    for b in builders:
        s = b.build(ctx, tag, build_args, no_cache=False)
        print(f"  {scenario:8} prime {b.name:14} {s:6.2f} s", file=sys.stderr)
    for mode in MODES:
        for r in range(rounds):
            order = builders[r % len(builders) :] + builders[: r % len(builders)]
            for b in order:
                s = b.build(ctx, tag, build_args, no_cache=mode == "cold")
                results.setdefault((scenario, mode, b.name), Series()).seconds.append(s)
                print(f"  {scenario:8} {mode:5} {b.name:14} {s:6.2f} s", file=sys.stderr)
    for b in builders:
        ok = tag in b.images() if isinstance(b, Ours) else isinstance(b, Podman) and b.exists(tag)
        assert ok, f"{b.name}: {tag} missing after the build"


def ratios(results: Results, scenario: str, mode: str) -> tuple[float, float, float]:
    """ours-rootless / ours-root, / podman-chroot, / podman-oci (medians)."""
    ours = results[(scenario, mode, "ours-rootless")].median
    return (
        ours / results[(scenario, mode, "ours-root")].median,
        ours / results[(scenario, mode, "podman-chroot")].median,
        ours / results[(scenario, mode, "podman-oci")].median,
    )


def table(results: Results) -> str:
    """The results as a Markdown table (medians, min-max) with the three ratios."""
    head = ["image", "mode", *BUILDERS, "rootless/root", "rootless/podman-chroot", "rootless/podman-oci"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    scenarios = list(dict.fromkeys(k[0] for k in results))
    for scenario in scenarios:
        for mode in MODES:
            if (scenario, mode, "ours-rootless") not in results:
                continue
            cells = [results[(scenario, mode, b)].cell() for b in BUILDERS]
            rs = [f"**{r:.2f}x**" for r in ratios(results, scenario, mode)]
            lines.append("| " + " | ".join([scenario, mode, *cells, *rs]) + " |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="rounds per busybox mode (default 3)")
    ap.add_argument("--debian-rounds", type=int, default=1, help="rounds per Debian mode (default 1)")
    ap.add_argument("--skip-debian", action="store_true", help="only the busybox (master) Dockerfile")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.debian_rounds < 1:
        ap.error("--rounds and --debian-rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    args = parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("run as root: the bench creates the normal account it builds as")
    for tool in ("podman", "runc", "setpriv", "newuidmap", "docker-registry", "skopeo"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (bash scripts/setup.sh)")
    load0 = os.getloadavg()
    try:  # a previous run's (NormalUser.make empties the runtime dir that holds its pid file)
        stop_pause_process(pwd.getpwnam(USER).pw_uid)
    except KeyError:
        pass
    user = NormalUser.make(USER, subids=True)
    work = Path(tempfile.mkdtemp(prefix="rootless-bench-", dir="/var/tmp"))
    os.chmod(work, 0o711)  # the user reaches the contexts below it, lists nothing
    driver = write_podman_config(user)
    root_venv = work / "root-venv"  # the same install as the user's, owned by root
    shutil.copytree(user.venv, root_venv, symlinks=True)
    subprocess.run(["chown", "-R", "0:0", str(root_venv)], check=True)
    env_home = work / "root-env-home"
    env_home.mkdir()
    builders: list[Builder] = [
        Ours(user, rootless=False, python=root_venv / "bin" / "python", home=work / "root-idp", env_home=env_home),
        Ours(user, rootless=True, python=user.venv / "bin" / "python", home=user.home / "bench-idp", env_home=env_home),
        Podman(user, "chroot"),
        Podman(user, "oci"),
    ]  # fmt: skip
    podman_info = {b.name: b.info() for b in builders if isinstance(b, Podman)}
    reg = start_registry(work / "registry")
    results: Results = {}
    try:
        shared = shared_dir(work / "ctx")
        busybox_ctx = shared_dir(shared / "busybox")
        for f in ("Dockerfile", "hello.sh"):
            shutil.copy(REPO / "example" / f, busybox_ctx / f)
            os.chmod(busybox_ctx / f, 0o755 if f.endswith(".sh") else 0o644)
        scenarios = [("busybox", busybox_ctx, [f"BASE={seed_busybox(reg, work)}"], args.rounds)]
        if not args.skip_debian:
            base = seed_debian(reg, work)
            if base is not None:
                debian_ctx = shared_dir(shared / "debian")
                (debian_ctx / "Dockerfile").write_text(f"FROM {base}\n{DEBIAN_RUN}")
                os.chmod(debian_ctx / "Dockerfile", 0o644)
                scenarios.append(("debian", debian_ctx, [], args.debian_rounds))
        for name, ctx, build_args, rounds in scenarios:
            bench(name, ctx, build_args, builders, rounds, results)
    finally:
        reg.stop()
        for b in builders:
            if isinstance(b, Podman):
                b.cleanup()
        stop_pause_process(user.uid)
        shutil.rmtree(user.home / "bench-idp", ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    load1 = os.getloadavg()
    print(f"podman {driver} storage, rootless: {podman_info}")
    print(f"load average {load0[0]:.1f} at start, {load1[0]:.1f} at the end ({os.cpu_count()} cores)")
    print(f"cold = --no-cache with the base present; warm = every step cached; n = {args.rounds} (busybox) / "
          f"{args.debian_rounds} (debian); median (min-max)")  # fmt: skip
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
