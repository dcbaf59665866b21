#!/usr/bin/env python3
"""Push benchmark: ``idpbuilder push`` vs ``skopeo copy`` of the same ~1 GiB image, cold and warm.

Builds (once, cached under ``.work/bench``) an image of 5 gzip layers made from real directories of this
machine with the project's own LayerWriter, starts a plain-HTTP registry and a TLS + htpasswd registry
(the test fixtures' ``start_registry``), and times for each tool and registry:

* cold: registry storage wiped and the registry restarted, then one push;
* warm: the same push again (every blob and the manifest already there).

Each measurement is a separate process; wall time and peak RSS come from GNU ``time``. Prints medians,
min–max, throughput, the ratio to skopeo and whether the goals are met (cold ≤ 0.8× skopeo, warm ≤ 0.15 s,
RSS < 100 MB). Not part of the test suite::

    .venv/bin/python bench/push_bench.py [--rounds 3] [--registries plain,tls] [--jobs 4] [--rebuild]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from bench._common import Sample, median, run_measured  # noqa: E402
from fixtures.registry import RegistryInfo, start_registry  # noqa: E402
from idpbuilder.image import LayerWriter, commit_image  # noqa: E402
from idpbuilder.oci import Platform  # noqa: E402
from idpbuilder.store.layout import Store  # noqa: E402

IMAGE_REF = "bench.local/big:latest"
LAYER_DIRS = ["/usr/lib/x86_64-linux-gnu", "/usr/share", "/usr/lib/jvm", "/usr/lib/llvm-14", "/usr/bin"]
FALLBACK_DIRS = ["/usr/lib", "/usr/libexec", "/usr/include", "/usr/local", "/opt"]
EXE = REPO / ".venv" / "bin" / "idpbuilder"
GOAL_COLD_RATIO = 0.8
GOAL_WARM_S = 0.15
GOAL_RSS_MB = 100.0


def layer_dirs() -> list[Path]:
    """Five existing directories to turn into layers."""
    dirs = [Path(d) for d in LAYER_DIRS if Path(d).is_dir()]
    for d in FALLBACK_DIRS:
        if len(dirs) >= 5:
            break
        if Path(d).is_dir() and Path(d) not in dirs:
            dirs.append(Path(d))
    return dirs[:5]


def build_image(home: Path, *, rebuild: bool) -> tuple[str, int]:
    """The benchmark image in the store under ``home`` (cached); returns (manifest digest, compressed bytes)."""
    marker = home / "bench-image.json"
    if marker.is_file() and not rebuild:
        info = json.loads(marker.read_text())
        store = Store.open(home)
        try:
            desc = store.lookup(IMAGE_REF)
            if desc is not None and str(desc.digest) == info["digest"]:
                return str(info["digest"]), int(info["bytes"])
        finally:
            store.close()
    store = Store.open(home)
    layers = []
    t0 = time.monotonic()
    try:
        for d in layer_dirs():
            t = time.monotonic()
            with LayerWriter(store, compression="gzip", level=1) as w:
                w.add_tree(d, d.name + "/", uid=0, gid=0, mtime=1_600_000_000)
            layers.append(w.result)
            print(
                f"  layer {d}: {w.result.descriptor.size / 1e6:.0f} MB in {time.monotonic() - t:.1f} s",
                flush=True,
            )
        plat = Platform.host()
        cfg = {
            "architecture": plat.architecture,
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [str(x.diff_id) for x in layers]},
        }
        desc = commit_image(store, cfg, layers)
        store.set_ref(IMAGE_REF, desc)
    finally:
        store.close()
    total = sum(x.descriptor.size for x in layers)
    marker.write_text(json.dumps({"digest": str(desc.digest), "bytes": total}))
    print(f"  built {total / 1e6:.0f} MB in {time.monotonic() - t0:.0f} s", flush=True)
    return str(desc.digest), total


def run(args: list[str], env: dict[str, str], rss_file: Path) -> Sample:
    """Run one command; wall time and its peak RSS (``run_measured``); its output when it fails."""
    s = run_measured(args, env, rss_file, keep=2000)
    if s.code != 0:
        sys.stderr.write(f"FAILED ({s.code}): {' '.join(args[:3])}…\n{s.out}\n")
    return s


def ours_cmd(info: RegistryInfo, dest: str, jobs: int) -> list[str]:
    return [str(EXE), "push", "--progress", "quiet", "--jobs", str(jobs), *info.cli_args(), IMAGE_REF, dest]


def skopeo_cmd(info: RegistryInfo, store_dir: Path, dest: str) -> list[str]:
    return [
        "skopeo",
        "copy",
        "--quiet",
        *info.skopeo_args(dest=True),
        f"oci:{store_dir}:{IMAGE_REF}",
        f"docker://{dest}",
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--registries", default="plain,tls")
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--work", type=Path, default=REPO / ".work" / "bench")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the cached image")
    a = ap.parse_args()

    work: Path = a.work
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    print(f"image: {IMAGE_REF} (cached under {home})", flush=True)
    digest, total = build_image(home, rebuild=a.rebuild)
    print(f"  {digest}, {total / 1e6:.0f} MB compressed", flush=True)

    # a hermetic environment: no kubeconfig or docker config, compiled bytecode allowed (as for users)
    user_home = work / "user-home"
    user_home.mkdir(exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("IDPBUILDER_")
        and k not in ("PYTHONDONTWRITEBYTECODE", "KUBECONFIG", "DOCKER_CONFIG")
    }
    env.update({"IDPBUILDER_HOME": str(home), "HOME": str(user_home)})
    subprocess.run([str(EXE), "--help"], env=env, capture_output=True)  # write .pyc files once

    kinds = [k.strip() for k in a.registries.split(",") if k.strip()]
    results: dict[tuple[str, str, str], list[Sample]] = {}
    regs: list[RegistryInfo] = []
    try:
        for kind in kinds:
            regdir = work / f"registry-{kind}"
            shutil.rmtree(regdir, ignore_errors=True)
            info = start_registry(
                regdir, tls=kind == "tls", auth="htpasswd" if kind == "tls" else "none", name=kind
            )
            regs.append(info)
            dest = info.ref("bench/big:latest")
            for r in range(a.rounds):
                for tool in ("idpbuilder", "skopeo"):
                    cmd = (
                        ours_cmd(info, dest, a.jobs)
                        if tool == "idpbuilder"
                        else skopeo_cmd(info, home / "store", dest)
                    )
                    info.wipe()
                    cold = run(cmd, env, work / "rss.txt")
                    warm = run(cmd, env, work / "rss.txt")
                    results.setdefault((kind, "cold", tool), []).append(cold)
                    results.setdefault((kind, "warm", tool), []).append(warm)
                    print(
                        f"  {kind} round {r + 1} {tool:10s} cold {cold.wall:6.2f} s {cold.rss_mb:5.0f} MB   "
                        f"warm {warm.wall:5.3f} s {warm.rss_mb:5.0f} MB",
                        flush=True,
                    )
    finally:
        for info in regs:
            info.stop()

    print()
    print(
        f"{'registry':8s} {'mode':5s} {'tool':10s} {'median s':>9s} {'min-max s':>13s} {'MB/s':>6s} "
        f"{'RSS MB':>7s} {'vs skopeo':>9s}"
    )
    ok = True
    for kind in kinds:
        for mode in ("cold", "warm"):
            sk = median([s.wall for s in results[(kind, mode, "skopeo")]])
            for tool in ("idpbuilder", "skopeo"):
                ss = results[(kind, mode, tool)]
                walls = [s.wall for s in ss]
                m = median(walls)
                rss = max(s.rss_mb for s in ss)
                rate = f"{total / 1e6 / m:6.0f}" if mode == "cold" else "     -"
                ratio = f"{m / sk:8.2f}x" if tool == "idpbuilder" else ""
                print(
                    f"{kind:8s} {mode:5s} {tool:10s} {m:9.3f} {min(walls):6.2f}-{max(walls):6.2f} {rate} "
                    f"{rss:7.0f} {ratio:>9s}"
                )
                if tool == "idpbuilder":
                    if any(s.code != 0 for s in ss):
                        ok = False
                    if mode == "cold" and m > GOAL_COLD_RATIO * sk:
                        ok = False
                    if mode == "warm" and m > GOAL_WARM_S:
                        ok = False
                    if rss >= GOAL_RSS_MB:
                        ok = False
    print(
        f"\ngoals: cold <= {GOAL_COLD_RATIO}x skopeo, warm <= {GOAL_WARM_S} s, RSS < {GOAL_RSS_MB:.0f} MB: "
        f"{'met' if ok else 'NOT met'}"
    )
    print(f"load average during the run: {os.getloadavg()[0]:.1f} (2 cores; >2 means the numbers are noisy)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
