"""Start-up cost of the hot commands: ``--help``, ``images``, a warm ``push`` and a fully cached ``build``.

For each command: the time spent importing (``python -X importtime``, the sum of the top-level cumulative
times, a forked build child's imports included), the number of modules imported, and the wall and CPU
(user + system) time of the whole command, measured in a run without ``-X importtime``. Runs are interleaved over the interpreters given (``--python``, e.g. the venvs of two
checkouts), so background load hits them alike; medians and minimums are printed.

    .venv/bin/python bench/startup_bench.py                      # this checkout, 15 rounds
    .venv/bin/python bench/startup_bench.py --python /other/checkout/.venv/bin/python --python .venv/bin/python

Setup (once, in .work/bench/startup): a store with the busybox test image, a context ``FROM busybox`` +
``COPY`` + ``ENV`` built once (so every step is cached), and a plain-HTTP ``docker-registry`` on loopback that
already holds the pushed image (so the measured push finds every blob present). Each run is its own process
in a hermetic environment (private HOME, no kubeconfig), with bytecode caching allowed, as for users.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from bench._common import hermetic_env  # noqa: E402

_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)$", re.M)


def _imports(stderr: str) -> tuple[float, int]:
    """(ms in imports: the top-level cumulative times summed, modules imported) from -X importtime."""
    rows = _LINE.findall(stderr)
    return sum(int(cum) for _, cum, indent, _ in rows if len(indent) == 1) / 1000, len(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", action="append", help="interpreter with idpbuilder installed (repeatable)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--workdir", type=Path, default=REPO / ".work" / "bench" / "startup")
    args = ap.parse_args()
    pythons = [Path(p).absolute() for p in (args.python or [REPO / ".venv" / "bin" / "python"])]

    from fixtures.images import make_busybox_store
    from fixtures.registry import start_registry

    work = args.workdir.absolute()
    home, ctx, user_home = work / "home", work / "ctx", work / "user-home"
    if not (home / "store" / "index.json").exists():
        make_busybox_store(home)
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY hello.txt /hello.txt\nENV GREETING=hello\n")
    (ctx / "hello.txt").write_text("hello\n")
    registry = start_registry(work / "registry", name="startup")
    env = hermetic_env(user_home, IDPBUILDER_HOME=str(home), NO_COLOR="1")
    commands = {
        "--help": ["--help"],
        "images": ["images"],
        "push (warm)": ["push", "startup:cached", registry.ref("startup/cached:latest")],
        "build (cached)": ["build", "-t", "startup:cached", str(ctx)],
    }
    try:
        for py in pythons:  # bytecode written, build cache filled, blobs in the registry
            for name in ("build (cached)", "--help", "images", "push (warm)"):
                subprocess.run(
                    [py, py.parent / "idpbuilder", *commands[name]], env=env, capture_output=True, check=True
                )
        data: dict[tuple[Path, str], dict[str, list[float]]] = {}
        for _ in range(args.rounds):
            for name, cmd in commands.items():
                for py in pythons:
                    d = data.setdefault((py, name), {"imports": [], "modules": [], "wall": [], "cpu": []})
                    argv = [py, py.parent / "idpbuilder", *cmd]
                    p = subprocess.run(
                        [py, "-X", "importtime", *argv[1:]], env=env, capture_output=True, text=True
                    )
                    p.check_returncode()
                    ms, n = _imports(p.stderr)
                    d["imports"].append(ms)
                    d["modules"].append(n)
                    before = resource.getrusage(resource.RUSAGE_CHILDREN)
                    t = time.perf_counter()
                    subprocess.run(argv, env=env, capture_output=True, check=True)
                    d["wall"].append((time.perf_counter() - t) * 1000)
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
                    d["cpu"].append(cpu * 1000)
    finally:
        registry.stop()

    def cell(xs: list[float]) -> str:
        return f"{statistics.median(xs):7.1f} ({min(xs):5.1f})"

    print(
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.rounds} rounds; ms, median (min)"
    )
    print(f"{'interpreter':40s} {'command':15s} {'imports':>15s} {'modules':>7s} {'wall':>15s} {'cpu':>15s}")
    for (py, name), d in data.items():
        modules = int(statistics.median(d["modules"]))
        print(
            f"{str(py)[-40:]:40s} {name:15s} {cell(d['imports'])} {modules:7d} {cell(d['wall'])} {cell(d['cpu'])}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
