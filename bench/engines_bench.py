#!/usr/bin/env python3
"""Engines benchmark: ``idpbuilder`` side by side with Docker's engine (a private dockerd 20.10, BuildKit),
``buildah bud --isolation chroot`` and ``skopeo copy``, in one run, interleaved, the order rotating every
round.

Scenarios (``--only build,copy,push``):

* ``build``: the master Dockerfile (``example/Dockerfile``: ARG BASE -> FROM busybox, 2 RUNs, WORKDIR, COPY,
  CMD) with its base in a loopback plain registry and already in every tool's store. cold = ``--no-cache``,
  warm = fully cached. idpbuilder / docker build / buildah bud.
* ``copy``: ``FROM busybox`` + ``COPY . /data`` of ~170 MB of real files (Python's stdlib, locales, shared
  libraries), cold and warm. idpbuilder / docker build / buildah bud.
* ``push``: a ~400 MB image in 3 gzip layers (3 COPYs of ~130 MB of real files, built once with idpbuilder
  and cached under ``.work/bench/engines``) pushed to a plain HTTP registry and to a TLS + htpasswd one.
  cold = registry storage wiped and restarted before the push, warm = the same push again.
  idpbuilder push / skopeo copy (from our OCI store) / docker push (the image loaded into dockerd).

Every run is its own process in a hermetic environment (private HOME, no kubeconfig; docker: its own
DOCKER_CONFIG); wall time from the parent, peak RSS from GNU time (for docker that is the client's: the
daemon does the work). Prints medians, min-max, the ratios and a goals table; exit status 0 when every goal
is met, 1 when not, 2 when a tool failed.

    .venv/bin/python bench/engines_bench.py [--rounds 3] [--only build,copy,push] [--json FILE]

Not part of the test command (one quick round: ``.venv/bin/pytest -m slow tests/test_engines_bench.py``).
Needs root, Debian's docker.io (/usr/bin/docker, /usr/sbin/dockerd), buildah, skopeo and docker-registry.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# the repository root (bench/, tools/: dev code, not in the wheel) and tests/ (the registry fixtures)
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from bench._common import Buildah, Sample, Series, hermetic_env, median, run_measured  # noqa: E402
from fixtures.registry import RegistryInfo, copy_to_registry, start_registry  # noqa: E402
from idpbuilder.store.layout import Store  # noqa: E402
from tools.conformance.baseimages import add_busybox_image  # noqa: E402
from tools.conformance.dockerd import DOCKER, Dockerd  # noqa: E402

EXE = REPO / ".venv" / "bin" / "idpbuilder"  # the entry point users run
SCENARIOS = ("build", "copy", "push")
MODES = ("cold", "warm")
TOOLS = ("idpbuilder", "docker", "buildah", "skopeo")
BASE_REF = "bench.local/library/busybox:latest"  # in the template store; docker and buildah pull it by the registry's name
PUSH_REF = "bench.local/engines/big:latest"
MiB = 1 << 20
MB = 1_000_000
COPY_SOURCES: list[tuple[str, list[str], int]] = [  # (context dir, source dirs, bytes): ~170 MB
    ("python", ["/usr/lib/python3.11", "/usr/lib/python3"], 55 * MB),
    ("locale", ["/usr/share/locale"], 55 * MB),
    ("lib", ["/usr/lib/x86_64-linux-gnu", "/usr/lib"], 60 * MB),
]
PUSH_SOURCES: list[tuple[str, list[str], int]] = [  # one COPY (layer) each: ~130 MB of files
    ("lib", ["/usr/lib/x86_64-linux-gnu", "/usr/lib"], 130 * MB),
    ("share", ["/usr/share"], 130 * MB),
    ("python", ["/usr/lib/python3", "/usr/lib/python3.11", "/usr/lib/llvm-14", "/usr/lib"], 130 * MB),
]
MAX_FILE = 24 * MiB  # no single huge file: many files of varied sizes
GOAL_BUILD = 0.8  # ours / docker, master build cold and warm
GOAL_COPY = 0.7  # ours / docker, large COPY cold
GOAL_PUSH_SKOPEO = 0.6  # ours / skopeo, cold push
GOAL_PUSH_DOCKER = 1.0  # ours / docker push, cold push
GOAL_WARM_PUSH_S = 0.1
GOAL_RSS_MB = 100.0

Key = tuple[str, str, str]  # (scenario row, mode, tool)
Results = dict[Key, Series]


class BenchError(RuntimeError):
    """A tool failed or a setup step went wrong: no numbers to compare."""


# ------------------------------------------------------------------------------------------- contexts


def select_files(sources: Sequence[str], budget: int) -> list[tuple[Path, Path]]:
    """Regular files (at most MAX_FILE each) from ``sources`` in sorted walk order until ``budget`` bytes:
    (source file, ``<source dir name>/<path below it>``). Deterministic for a given machine."""
    picked: list[tuple[Path, Path]] = []
    seen: set[Path] = set()
    total = 0
    for src in sources:
        root = Path(src)
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            here = Path(dirpath)
            if here in seen:  # /usr/lib after /usr/lib/x86_64-linux-gnu: each file once
                dirnames.clear()
                continue
            seen.add(here)
            for name in sorted(filenames):
                p = here / name
                try:
                    st = p.lstat()
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_FILE or not os.access(p, os.R_OK):
                    continue
                picked.append((p, Path(root.name) / p.relative_to(root)))
                total += st.st_size
                if total >= budget:
                    return picked
    return picked


def selection_digest(files: Sequence[tuple[Path, Path]]) -> str:
    """A digest of the selection (paths, sizes, mtimes): a cached context or image is reused only when equal."""
    h = hashlib.sha256()
    for p, _ in files:
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def make_context(ctx: Path, parts: Sequence[tuple[str, list[str], int]]) -> tuple[int, int, str]:
    """Copy every part's selection into ``ctx/<part>/`` (mode 0644/0755, mtime kept): (bytes, files, digest)."""
    nbytes = nfiles = 0
    h = hashlib.sha256()
    for name, sources, budget in parts:
        files = select_files(sources, budget)
        h.update(selection_digest(files).encode())
        for src, rel in files:
            dest = ctx / name / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            st = src.stat()
            os.chmod(dest, 0o755 if st.st_mode & 0o111 else 0o644)
            os.utime(dest, ns=(st.st_mtime_ns, st.st_mtime_ns))
            nbytes += st.st_size
            nfiles += 1
    return nbytes, nfiles, h.hexdigest()


# ---------------------------------------------------------------------------------------------- docker


STEP = re.compile(r"^#(\d+) (\[.*?\] .*|[a-z].*)$")
DONE = re.compile(r"^#(\d+) DONE (\d+(?:\.\d+)?)s$")


def docker_steps(progress: str) -> list[tuple[str, float]]:
    """BuildKit's plain progress -> [(step name, seconds)] for the steps that ran (CACHED ones are left out)."""
    names: dict[str, str] = {}
    steps: list[tuple[str, float]] = []
    for line in progress.splitlines():
        line = line.strip()
        m = DONE.match(line)
        if m:
            steps.append((names.get(m.group(1), "#" + m.group(1)), float(m.group(2))))
            continue
        m = STEP.match(line)
        if m and m.group(1) not in names and not m.group(2).startswith("sha256:"):
            names[m.group(1)] = m.group(2)
    return steps


@dataclass
class Docker:
    """The ``docker`` client (Debian's, /usr/bin/docker) talking to our private daemon."""

    daemon: Dockerd
    env: dict[str, str]

    def build_command(self, ctx: Path, tag: str, *, no_cache: bool, build_args: Sequence[str]) -> list[str]:
        cmd = [DOCKER, "build", "--network", "host", "--progress", "plain", "-t", tag]
        cmd += [a for b in build_args for a in ("--build-arg", b)]
        return cmd + (["--no-cache"] if no_cache else []) + [str(ctx)]

    def check(self, *args: str, stdin: str | None = None) -> str:
        p = subprocess.run([DOCKER, *args], env=self.env, input=stdin, capture_output=True, text=True)
        if p.returncode != 0:
            raise BenchError(f"docker {' '.join(args[:2])} failed: {p.stderr.strip()[-800:]}")
        return p.stdout


def session_cpu(sid: int) -> float:
    """CPU seconds (user + system, with reaped children) of every process in session ``sid``: the private
    dockerd runs in its own session with its containerd."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()  # from field 3 (state) on
        if int(fields[3]) == sid:  # field 6: session
            total += sum(int(x) for x in fields[11:15])  # fields 14-17: utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------------------ runs


class Bench:
    """The run's directories, tools and results."""

    def __init__(self, work: Path, cache: Path, rounds: int, stack: ExitStack) -> None:
        self.work = work
        self.cache = cache
        self.rounds = rounds
        self.stack = stack
        self.results: Results = {}
        self.notes: dict[str, Any] = {}
        self.breakdown: dict[str, list[tuple[str, float]]] = {}  # "row mode" -> docker's BuildKit steps
        self.daemon_cpu: dict[str, list[float]] = {}  # "row mode" -> CPU seconds of dockerd per docker run
        self.user_home = work / "home"
        self.base_env = hermetic_env(self.user_home)
        self.ours_home = work / "idp-home"
        self.ours_env = {**self.base_env, "IDPBUILDER_HOME": str(self.ours_home)}
        self.rss = work / "rss.txt"
        self._dockerd: Dockerd | None = None
        self._buildah: Buildah | None = None
        self._plain: RegistryInfo | None = None
        self._base: str | None = None

    # -- shared services, started on first use and stopped by the ExitStack

    @property
    def dockerd(self) -> Docker:
        if self._dockerd is None:
            d = Dockerd(Path(tempfile.mkdtemp(prefix="idp-engd-", dir="/var/tmp")))
            self.stack.callback(d.remove)
            d.start()
            self._dockerd = d
            self.notes["docker"] = d.version()
        env = {**self.base_env, "DOCKER_HOST": self._dockerd.host, "DOCKER_BUILDKIT": "1"}
        env["DOCKER_CONFIG"] = str(self._dockerd.dir / "client")  # private: no user credentials
        return Docker(self._dockerd, env)

    @property
    def buildah(self) -> Buildah:
        if self._buildah is None:
            b = Buildah(self.work / "buildah", self.base_env)
            self.stack.callback(b.cleanup)
            self._buildah = b
        return self._buildah

    def registry(self, kind: str) -> RegistryInfo:
        """A fresh docker-registry under the work dir (``plain`` or ``tls`` with htpasswd)."""
        info = start_registry(
            self.work / f"registry-{kind}",
            tls=kind == "tls",
            auth="htpasswd" if kind == "tls" else "none",
            name=kind,
        )
        self.stack.callback(info.stop)
        return info

    def base(self) -> str:
        """The busybox base in the plain loopback registry (pushed once); its reference there."""
        if self._base is None:
            self._plain = self.registry("plain")
            home = self.work / "base-home"
            store = Store.open(home)
            try:
                add_busybox_image(store, refs=(BASE_REF,))
            finally:
                store.close()
            copy_to_registry(f"oci:{home / 'store'}:{BASE_REF}", self._plain, "library/busybox:latest")
            self._base = self._plain.ref("library/busybox:latest")
        return self._base

    # -- one measured run

    def run(self, tool: str, cmd: Sequence[str], env: dict[str, str], *, what: str) -> Sample:
        s = run_measured(cmd, env, self.rss)
        if s.code != 0:
            raise BenchError(f"{tool} failed ({s.code}) in {what}: {' '.join(cmd)}\n{s.out[-3000:]}")
        return s

    def measure(self, row: str, mode: str, tool: str, cmd: Sequence[str], env: dict[str, str]) -> Sample:
        """One timed run, recorded; for docker also the CPU time its daemon (dockerd, containerd) spent."""
        sid = self._dockerd.proc.pid if tool == "docker" and self._dockerd and self._dockerd.proc else None
        cpu0 = session_cpu(sid) if sid else 0.0
        s = self.run(tool, cmd, env, what=f"{row} {mode}")
        self.results.setdefault((row, mode, tool), Series()).samples.append(s)
        extra = ""
        if sid:
            cpu = session_cpu(sid) - cpu0
            self.daemon_cpu.setdefault(f"{row} {mode}", []).append(cpu)
            extra = f"  (daemon CPU {cpu:.2f} s)"
        print(f"  {row:14} {mode:4} {tool:10} {s.wall:7.3f} s {s.rss_mb:6.0f} MB{extra}", file=sys.stderr,
              flush=True)  # fmt: skip
        return s

    # -- builds

    def build_cmds(
        self, ctx: Path, name: str, build_args: Sequence[str], *, no_cache: bool
    ) -> list[tuple[str, list[str], dict[str, str]]]:
        ours = [str(EXE), "build", "--progress", "quiet", "-t", f"localhost/bench/{name}:latest"]
        ours += [a for b in build_args for a in ("--build-arg", b)]
        ours += [*(["--no-cache"] if no_cache else []), str(ctx)]
        d = self.dockerd
        b = self.buildah
        return [
            ("idpbuilder", ours, self.ours_env),
            ("docker", d.build_command(ctx, f"bench/{name}:latest", no_cache=no_cache, build_args=build_args), d.env),
            ("buildah", b.build_command(ctx, f"localhost/bench/{name}:latest", no_cache=no_cache,
                                        build_args=build_args, tls_verify=False), b.env),
        ]  # fmt: skip

    def bench_build(self, row: str, ctx: Path, name: str, build_args: Sequence[str]) -> None:
        """Prime (untimed: pulls the base, fills the cache), then cold and warm rounds, rotating the order."""
        for mode in MODES:
            for tool, cmd, env in self.build_cmds(ctx, name, build_args, no_cache=False):
                s = self.run(tool, cmd, env, what=f"{row} priming")
                print(f"  {row:14} prime {tool:10} {s.wall:7.3f} s", file=sys.stderr, flush=True)
            for r in range(self.rounds):
                runs = self.build_cmds(ctx, name, build_args, no_cache=mode == "cold")
                runs = runs[r % len(runs) :] + runs[: r % len(runs)]
                for tool, cmd, env in runs:
                    self.measure(row, mode, tool, cmd, env)
        self.check_built(name)
        for mode in MODES:  # where docker's time goes: its median run's BuildKit steps
            samples = sorted(self.results[(row, mode, "docker")].samples, key=lambda s: s.wall)
            self.breakdown[f"{row} {mode}"] = docker_steps(samples[len(samples) // 2].out)

    def check_built(self, name: str) -> None:
        store = Store.open(self.ours_home)
        try:
            if store.lookup(f"localhost/bench/{name}:latest") is None:
                raise BenchError(f"idpbuilder: localhost/bench/{name}:latest is not in its store")
        finally:
            store.close()
        self.dockerd.check("image", "inspect", f"bench/{name}:latest")
        if not self.buildah.has_image(f"localhost/bench/{name}:latest"):
            raise BenchError(f"buildah: localhost/bench/{name}:latest is not in its storage")

    def scenario_build(self) -> None:
        ctx = self.work / "ctx-master"
        ctx.mkdir()
        for f in ("Dockerfile", "hello.sh"):
            shutil.copy2(REPO / "example" / f, ctx / f)
        self.bench_build("master build", ctx, "master", [f"BASE={self.base()}"])

    def scenario_copy(self) -> None:
        ctx = self.work / "ctx-copy"
        ctx.mkdir()
        t = time.monotonic()
        nbytes, nfiles, _ = make_context(ctx, COPY_SOURCES)
        (ctx / "Dockerfile").write_text(f"FROM {self.base()}\nCOPY . /data\n")
        self.notes["copy_context"] = {"bytes": nbytes, "files": nfiles}
        print(f"large COPY context: {nbytes / 1e6:.0f} MB in {nfiles} files (copied in "
              f"{time.monotonic() - t:.1f} s)", flush=True)  # fmt: skip
        self.bench_build("large COPY", ctx, "copy", [])

    # -- push

    def push_image(self, rebuild: bool) -> tuple[Path, int, int]:
        """The push image in the cached idpbuilder home (built once from 3 COPYs): (home, compressed, raw bytes)."""
        home = self.cache / "push-home"
        marker = home / "engines-image.json"
        want = hashlib.sha256(
            "".join(selection_digest(select_files(s, b)) for _, s, b in PUSH_SOURCES).encode()
        ).hexdigest()
        if marker.is_file() and not rebuild:
            info = json.loads(marker.read_text())
            store = Store.open(home)
            try:
                desc = store.lookup(PUSH_REF)
            finally:
                store.close()
            if desc is not None and str(desc.digest) == info["digest"] and info["selection"] == want:
                return home, int(info["compressed"]), int(info["raw"])
        shutil.rmtree(home, ignore_errors=True)
        ctx = self.work / "ctx-push"
        ctx.mkdir()
        raw, nfiles, selection = make_context(ctx, PUSH_SOURCES)
        (ctx / "Dockerfile").write_text(
            "FROM scratch\n" + "".join(f"COPY {n} /data/{n}\n" for n, _, _ in PUSH_SOURCES)
        )
        t = time.monotonic()
        env = {**self.base_env, "IDPBUILDER_HOME": str(home)}
        s = self.run("idpbuilder", [str(EXE), "build", "--progress", "quiet", "-t", PUSH_REF, str(ctx)], env,
                     what="building the push image")  # fmt: skip
        shutil.rmtree(ctx)
        store = Store.open(home)
        try:
            desc = store.lookup(PUSH_REF)
            assert desc is not None
            manifest = store.read_json(desc.digest)
        finally:
            store.close()
        compressed = sum(int(layer["size"]) for layer in manifest["layers"])
        marker.write_text(json.dumps({"digest": str(desc.digest), "compressed": compressed, "raw": raw,
                                      "files": nfiles, "selection": selection}))  # fmt: skip
        print(f"built the push image in {time.monotonic() - t:.0f} s ({s.rss_mb:.0f} MB RSS)", flush=True)
        return home, compressed, raw

    def scenario_push(self, rebuild: bool) -> None:
        home, compressed, raw = self.push_image(rebuild)
        self.notes["push_image"] = {"compressed": compressed, "raw": raw, "layers": len(PUSH_SOURCES)}
        print(f"push image: {PUSH_REF}, {len(PUSH_SOURCES)} gzip layers, {compressed / 1e6:.0f} MB compressed "
              f"({raw / 1e6:.0f} MB of files), cached in {home}", flush=True)  # fmt: skip
        d = self.dockerd
        d.daemon.load_from_layout(home / "store", PUSH_REF, (PUSH_REF,), self.work)  # untimed
        env = {**self.base_env, "IDPBUILDER_HOME": str(home)}
        # bytecode written once, as for users
        subprocess.run([str(EXE), "--help"], env=env, capture_output=True)
        for kind in ("plain", "tls"):
            info = self.registry(kind)
            row = "push plain" if kind == "plain" else "push TLS+basic"
            dest = info.ref("bench/big:latest")
            d.check("tag", PUSH_REF, dest)
            if info.tls:
                self.docker_trust(info)
                assert info.username is not None and info.password is not None
                d.check("login", "-u", info.username, "--password-stdin", info.host, stdin=info.password)
            ours = [str(EXE), "push", "--progress", "quiet", "--jobs", "4", *info.cli_args(), PUSH_REF, dest]
            skopeo = ["skopeo", "copy", "--quiet", *info.skopeo_args(dest=True), f"oci:{home / 'store'}:{PUSH_REF}",
                      f"docker://{dest}"]  # fmt: skip
            runs = [
                ("idpbuilder", ours, env),
                ("skopeo", skopeo, env),
                ("docker", [DOCKER, "push", dest], d.env),
            ]
            for r in range(self.rounds):
                for tool, cmd, tenv in runs[r % 3 :] + runs[: r % 3]:
                    info.wipe()
                    self.measure(row, "cold", tool, cmd, tenv)
                    self.measure(row, "warm", tool, cmd, tenv)

    def docker_trust(self, info: RegistryInfo) -> None:
        """The registry's CA in /etc/docker/certs.d/<host:port>/ca.crt (what dockerd reads), removed at the end."""
        assert info.ca_file is not None
        certs = Path("/etc/docker/certs.d")
        created = not certs.exists()
        (certs / info.host).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(info.ca_file, certs / info.host / "ca.crt")

        def undo() -> None:
            shutil.rmtree(certs / info.host, ignore_errors=True)
            if created:
                try:
                    certs.rmdir()
                except OSError:
                    pass

        self.stack.callback(undo)


# ---------------------------------------------------------------------------------------------- report


def ratio(results: Results, row: str, mode: str, tool: str) -> float | None:
    a, b = results.get((row, mode, "idpbuilder")), results.get((row, mode, tool))
    if a is None or b is None:
        return None
    return a.median / b.median


def rows_of(results: Results) -> Iterator[tuple[str, str]]:
    seen: dict[tuple[str, str], None] = {}
    for row, mode, _ in results:
        seen.setdefault((row, mode), None)
    yield from seen


def table(results: Results) -> str:
    """Markdown: medians (min-max) per tool, our ratio to each other tool, peak RSS per tool."""
    head = ["scenario", "mode", *TOOLS, "ours/docker", "ours/buildah", "ours/skopeo", "peak RSS MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row, mode in rows_of(results):
        cells = [row, mode]
        for tool in TOOLS:
            s = results.get((row, mode, tool))
            cells.append("-" if s is None else s.cell(3 if row.startswith("push") and mode == "warm" else 2))
        for tool in TOOLS[1:]:
            r = ratio(results, row, mode, tool)
            cells.append("-" if r is None else f"**{r:.2f}x**")
        rss = [f"{t} {results[(row, mode, t)].rss_mb:.0f}" for t in TOOLS if (row, mode, t) in results]
        cells.append(" / ".join(rss))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass
class Goal:
    name: str
    target: str
    measured: str
    met: bool


def goals(results: Results) -> list[Goal]:
    """Every goal whose scenario ran, measured on the medians (RSS: the highest peak of our runs)."""
    out: list[Goal] = []

    def vs(row: str, mode: str, tool: str, limit: float) -> None:
        r = ratio(results, row, mode, tool)
        if r is not None:
            out.append(Goal(f"{row} {mode}: ours / {tool}", f"<= {limit:.1f}x", f"{r:.2f}x", r <= limit))

    vs("master build", "cold", "docker", GOAL_BUILD)
    vs("master build", "warm", "docker", GOAL_BUILD)
    vs("large COPY", "cold", "docker", GOAL_COPY)
    for row in ("push plain", "push TLS+basic"):
        vs(row, "cold", "skopeo", GOAL_PUSH_SKOPEO)
        vs(row, "cold", "docker", GOAL_PUSH_DOCKER)
        warm = results.get((row, "warm", "idpbuilder"))
        if warm is not None:
            m = warm.median
            out.append(
                Goal(f"{row} warm: ours", f"<= {GOAL_WARM_PUSH_S} s", f"{m:.3f} s", m <= GOAL_WARM_PUSH_S)
            )
    for row in dict.fromkeys(r for r, _, _ in results):
        rss = max(s.rss_mb for (r, _, t), s in results.items() if r == row and t == "idpbuilder")
        out.append(
            Goal(f"{row}: our peak RSS", f"< {GOAL_RSS_MB:.0f} MB", f"{rss:.0f} MB", rss < GOAL_RSS_MB)
        )
    return out


def goals_table(gs: Sequence[Goal]) -> str:
    lines = ["| goal | target | measured | |", "|---|---|---|---|"]
    lines += [f"| {g.name} | {g.target} | {g.measured} | {'met' if g.met else '**not met**'} |" for g in gs]
    return "\n".join(lines)


def docker_text(b: Bench) -> str:
    """Where docker's time goes: per row its median wall time, the median CPU time of the daemon and, for
    builds, BuildKit's steps of the median run."""
    lines = []
    for key, cpus in b.daemon_cpu.items():
        row, mode = key.rsplit(" ", 1)
        wall = b.results[(row, mode, "docker")].median
        line = f"  {key}: wall {wall:.2f} s, daemon CPU {median(cpus):.2f} s"
        if key in b.breakdown:
            steps = [f"{n} {s:.2f}" for n, s in b.breakdown[key] if s >= 0.05]
            line += "; steps (s): " + (", ".join(steps) or "every step < 0.05 s")
        lines.append(line)
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="rounds per scenario and mode (default 3)")
    ap.add_argument(
        "--only", default=",".join(SCENARIOS), help="scenarios to run: build,copy,push (default all)"
    )
    ap.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    ap.add_argument("--cache", type=Path, default=REPO / ".work" / "bench" / "engines",
                    help="where the push image is kept between runs (default .work/bench/engines)")  # fmt: skip
    ap.add_argument("--rebuild", action="store_true", help="rebuild the cached push image")
    args = ap.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if not args.only or set(args.only) - set(SCENARIOS):
        ap.error(f"--only takes a comma-separated subset of {','.join(SCENARIOS)}")
    return args


def to_json(
    b: Bench, gs: Sequence[Goal], load0: float, load1: float, args: argparse.Namespace
) -> dict[str, Any]:
    return {
        "rounds": args.rounds,
        "scenarios": args.only,
        "cores": os.cpu_count(),
        "load_average": {"start": load0, "end": load1},
        "notes": b.notes,
        "runs": [
            {
                "scenario": row,
                "mode": mode,
                "tool": tool,
                "median_s": s.median,
                "seconds": s.walls,
                "rss_mb": [x.rss_mb for x in s.samples],
            }
            for (row, mode, tool), s in b.results.items()
        ],
        "ratios": [
            {"scenario": row, "mode": mode, "vs": t, "ratio": ratio(b.results, row, mode, t)}
            for row, mode in rows_of(b.results)
            for t in TOOLS[1:]
            if (row, mode, t) in b.results
        ],
        "goals": [vars(g) for g in gs],
        "docker_steps": b.breakdown,
        "docker_daemon_cpu_s": b.daemon_cpu,
    }


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("run as root (dockerd, buildah's overlay storage, idpbuilder's RUN sandbox)")
    for need in ("buildah", "skopeo", "docker-registry", "/usr/bin/time", DOCKER, "/usr/sbin/dockerd"):
        if shutil.which(need) is None:
            sys.exit(f"{need} is not installed (bash scripts/setup.sh)")
    signal.signal(signal.SIGTERM, _terminate)  # the cleanup runs on kill too
    load0 = os.getloadavg()[0]
    print(f"load average at start: {load0:.2f} ({os.cpu_count()} cores); rounds: {args.rounds}", flush=True)
    args.cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="engines-bench-", dir="/var/tmp"))
    code = 0
    try:
        with ExitStack() as stack:  # stops dockerd and the registries, removes buildah's storage and work
            stack.callback(shutil.rmtree, work, ignore_errors=True)
            b = Bench(work, args.cache, args.rounds, stack)
            try:
                for scenario in SCENARIOS:
                    if scenario not in args.only:
                        continue
                    if scenario == "build":
                        b.scenario_build()
                    elif scenario == "copy":
                        b.scenario_copy()
                    else:
                        b.scenario_push(args.rebuild)
            except BenchError as e:
                print(f"FAILED: {e}", file=sys.stderr)
                code = 2
    except KeyboardInterrupt as e:
        print(f"interrupted ({e or 'Ctrl-C'}); daemons, registries and storage cleaned up", file=sys.stderr)
        return 130
    load1 = os.getloadavg()[0]
    if not b.results:
        return code or 2
    gs = goals(b.results)
    print()
    print(f"docker {b.notes.get('docker', '?')} (BuildKit), {_version(['buildah', '--version'])}, "
          f"{_version(['skopeo', '--version'])}; idpbuilder {_version([str(EXE), '--version'])}")  # fmt: skip
    if "copy_context" in b.notes:
        c = b.notes["copy_context"]
        print(f"large COPY context: {c['bytes'] / 1e6:.0f} MB in {c['files']} files")
    if "push_image" in b.notes:
        p = b.notes["push_image"]
        print(f"push image: {p['layers']} gzip layers, {p['compressed'] / 1e6:.0f} MB compressed, "
              f"{p['raw'] / 1e6:.0f} MB of files")  # fmt: skip
    print(f"load average {load0:.2f} at start, {load1:.2f} at the end ({os.cpu_count()} cores)")
    print(f"n = {args.rounds} per cell; median (min-max); RSS: the highest peak (docker: the client's)")
    print(table(b.results))
    print()
    print(goals_table(gs))
    if b.daemon_cpu:
        print("\ndocker: median wall, CPU of dockerd+containerd per run, BuildKit steps of the median build:")
        print(docker_text(b))
    met = all(g.met for g in gs)
    print(f"\ngoals: {'all met' if met else 'NOT all met'}")
    if args.json:
        args.json.write_text(json.dumps(to_json(b, gs, load0, load1, args), indent=2) + "\n")
    return code or (0 if met else 1)


def _version(cmd: list[str]) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.stdout.strip().splitlines()[0] if p.returncode == 0 and p.stdout.strip() else "?"


if __name__ == "__main__":
    sys.exit(main())
