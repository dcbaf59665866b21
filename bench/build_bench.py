#!/usr/bin/env python3
"""Build benchmark: idpbuilder vs ``buildah bud --isolation chroot`` (overlay storage), side by side.

Two Dockerfiles — the master workflow on busybox and a Debian one (mmdebstrap --variant=minbase bookworm,
packed as a base image and cached between runs) whose RUN installs curl with apt from the package
mirror — each built cold (``--no-cache``, base image already present) and warm (every step cached),
alternating the builders every round. Prints medians, min/max, max RSS and the ratio ours/buildah
(goal: at most 1.0x).

    .venv/bin/python bench/build_bench.py [--rounds 5] [--debian-rounds 3] [--skip-debian]

Not part of the test command. Needs root, buildah, skopeo, mmdebstrap (Debian scenario) and network
access to the Debian mirror from /etc/apt/sources.list.d (for mmdebstrap and the apt RUN).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# the repository root, for tools/ (a dev package, not in the wheel)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _common as common  # noqa: E402
from idpbuilder.image import LayerWriter, commit_image  # noqa: E402
from idpbuilder.oci import Platform  # noqa: E402
from idpbuilder.store.layout import Store  # noqa: E402
from tools.conformance.baseimages import add_busybox_image  # noqa: E402
from tools.conformance.flatten import load_layout_image  # noqa: E402

REGISTRY = "127.0.0.1:5000"  # the name the Dockerfiles use; the images are present locally, nothing is pulled
BUSYBOX_REF = f"{REGISTRY}/library/busybox:latest"
DEBIAN_REF = f"{REGISTRY}/library/debian:bookworm-minbase"
HELLO = '#!/bin/sh\necho "hello from an image built without docker"\n'

BUSYBOX_DOCKERFILE = f"""\
FROM {BUSYBOX_REF}
RUN echo "built without docker" > /etc/motd
WORKDIR /app
COPY hello.sh .
RUN chmod +x hello.sh
CMD ["./hello.sh"]
"""

DEBIAN_DOCKERFILE = f"""\
FROM {DEBIAN_REF}
RUN apt-get update && apt-get install -y --no-install-recommends curl
WORKDIR /app
COPY hello.sh .
RUN chmod +x hello.sh
CMD ["./hello.sh"]
"""


@dataclass
class Sample:
    """Wall seconds and max RSS (KiB) of one build."""

    seconds: float
    rss_kib: int


@dataclass
class Series:
    """All samples of one (scenario, mode, builder)."""

    samples: list[Sample] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    def spread(self) -> str:
        xs = [s.seconds for s in self.samples]
        return f"{min(xs):.2f}-{max(xs):.2f}"

    @property
    def rss_mib(self) -> float:
        return max(s.rss_kib for s in self.samples) / 1024


def run_timed(cmd: list[str], *, env: dict[str, str] | None = None) -> Sample:
    """Run ``cmd``; fail loudly on a non-zero exit; return wall time and the child's max RSS."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n{out.decode(errors='replace')[-3000:]}"
        )
    return Sample(seconds, usage.ru_maxrss)


# ------------------------------------------------------------------------------------------ base images


def debian_layout(cache: Path) -> Path:
    """An OCI layout holding DEBIAN_REF (mmdebstrap minbase bookworm), built once and cached."""
    home = cache / "debian-home"
    if (home / "store" / "index.json").is_file() and DEBIAN_REF in (
        home / "store" / "index.json"
    ).read_text():
        return home / "store"
    shutil.rmtree(home, ignore_errors=True)
    rootfs = Path(tempfile.mkdtemp(prefix="debian-rootfs-", dir=cache))
    try:
        print("building the Debian base (mmdebstrap --variant=minbase bookworm) ...", file=sys.stderr)
        subprocess.run(
            [
                "mmdebstrap",
                "--variant=minbase",
                "--mode=root",
                "--skip=output/dev",
                "-q",
                "bookworm",
                str(rootfs),
            ],
            check=True,
        )
        store = Store.open(home)
        with LayerWriter(store, compression="gzip") as lw:
            lw.add_tree(rootfs)
        layer = lw.result
        config = {
            "architecture": Platform.host().architecture,
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["bash"],
            },
            "rootfs": {"type": "layers", "diff_ids": [str(layer.diff_id)]},
            "history": [{"created_by": "mmdebstrap --variant=minbase bookworm"}],
        }
        store.set_ref(DEBIAN_REF, commit_image(store, config, [layer]))
        store.close()
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return home / "store"


# ---------------------------------------------------------------------------------------------- builders


class Ours:
    """idpbuilder with its own home (store + cache)."""

    def __init__(self, home: Path, command: list[str]) -> None:
        self.home = home
        self.command = command

    def seed(self, layout: Path, ref: str) -> None:
        """Copy a base image into the store (so the build does not pull)."""
        subprocess.run(
            ["skopeo", "copy", "-q", f"oci:{layout}:{ref}", f"oci:{self.home / 'store'}:{ref}"], check=True
        )

    def build(self, ctx: Path, tag: str, *, no_cache: bool) -> Sample:
        """One build; ``no_cache`` disables the layer cache."""
        cmd = [*self.command, "--store", str(self.home), "build", "--progress", "quiet", "-t", tag]
        return run_timed(cmd + (["--no-cache"] if no_cache else []) + [str(ctx)])


class Buildah(common.Buildah):
    """buildah with private overlay storage and chroot isolation (the fast configuration measured here)."""

    def build(self, ctx: Path, tag: str, *, no_cache: bool) -> Sample:
        """One build (``--layers`` so that warm builds hit the cache)."""
        return run_timed(self.build_command(ctx, tag, no_cache=no_cache), env=self.env)


def check_result(home: Path, tag: str, *, motd: bool) -> None:
    """The built image is readable from the OCI layout and has the app (and the motd)."""
    raw, image, contents = load_layout_image(home / "store", tag)
    assert raw["config"]["Cmd"] == ["./hello.sh"], raw["config"]
    assert raw["config"]["WorkingDir"] == "/app"
    hello = image.files["app/hello.sh"]
    assert hello.mode & 0o111, f"hello.sh not executable: {oct(hello.mode)}"
    if motd:
        assert contents.get("etc/motd") == b"built without docker\n", contents.get("etc/motd")


# ------------------------------------------------------------------------------------------------- main


def bench(
    name: str, dockerfile: str, ours: Ours, theirs: Buildah, work: Path, rounds: int
) -> dict[tuple[str, str], Series]:
    """Cold then warm rounds for one Dockerfile, alternating which builder goes first."""
    ctx = work / f"ctx-{name}"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    (ctx / "hello.sh").write_text(HELLO)
    tag = f"localhost/bench/{name}:latest"
    results: dict[tuple[str, str], Series] = {}
    for mode in ("cold", "warm"):
        if mode == "warm":  # prime both caches once (not timed)
            ours.build(ctx, tag, no_cache=False)
            theirs.build(ctx, tag, no_cache=False)
        for r in range(rounds):
            order: list[tuple[str, Ours | Buildah]] = [("idpbuilder", ours), ("buildah", theirs)]
            if r % 2:
                order.reverse()
            for label, builder in order:
                s = builder.build(ctx, tag, no_cache=(mode == "cold"))
                results.setdefault((mode, label), Series()).samples.append(s)
                print(
                    f"  {name:8} {mode:4} {label:10} {s.seconds:6.2f}s  {s.rss_kib / 1024:5.0f} MiB",
                    file=sys.stderr,
                )
    check_result(ours.home, tag, motd=name == "busybox")
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="rounds per busybox mode (default 5)")
    ap.add_argument("--debian-rounds", type=int, default=3, help="rounds per Debian mode (default 3)")
    ap.add_argument("--skip-debian", action="store_true", help="only the busybox Dockerfile")
    ap.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "idpbuilder" / "bench")
    ap.add_argument(
        "--idpbuilder", default=f"{sys.executable} -m idpbuilder", help="command to run idpbuilder"
    )
    args = ap.parse_args(argv)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-bench-", dir="/var/tmp"))
    ours = Ours(work / "idp-home", args.idpbuilder.split())
    theirs = Buildah(work / "buildah")
    rows: list[tuple[str, str, Series, Series]] = []
    try:
        base_home = work / "base-home"
        store = Store.open(base_home)
        add_busybox_image(store, refs=(BUSYBOX_REF,))
        store.close()
        Store.open(ours.home).close()
        ours.seed(base_home / "store", BUSYBOX_REF)
        theirs.seed(base_home / "store", BUSYBOX_REF)
        scenarios = [("busybox", BUSYBOX_DOCKERFILE, args.rounds)]
        if not args.skip_debian:
            layout = debian_layout(args.cache_dir)
            ours.seed(layout, DEBIAN_REF)
            theirs.seed(layout, DEBIAN_REF)
            scenarios.append(("debian", DEBIAN_DOCKERFILE, args.debian_rounds))
        for name, dockerfile, rounds in scenarios:
            res = bench(name, dockerfile, ours, theirs, work, rounds)
            for mode in ("cold", "warm"):
                rows.append((name, mode, res[(mode, "idpbuilder")], res[(mode, "buildah")]))
    finally:
        theirs.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"{'image':8} {'mode':5} {'idpbuilder (median, range, RSS)':34} {'buildah (median, range, RSS)':34} ours/buildah"
    )
    for name, mode, a, b in rows:
        ratio = a.median / b.median
        flag = "" if ratio <= 1.0 else "  (> 1.0x)"
        print(
            f"{name:8} {mode:5} {a.median:6.2f}s {a.spread():>13} {a.rss_mib:5.0f} MiB      "
            f"{b.median:6.2f}s {b.spread():>13} {b.rss_mib:5.0f} MiB      {ratio:5.2f}x{flag}"
        )
    print(
        "cold = --no-cache with the base image present; warm = every step cached; n =",
        args.rounds,
        "/",
        args.debian_rounds,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
