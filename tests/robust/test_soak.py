"""Soak (marked slow, outside the default test command): 200 pushes, pulls and builds through the fault proxy
with random faults (resets, 503s, stalls, a slow link) and random kills (SIGKILL, SIGINT). After every one the
store must be intact (index valid, every referenced blob present and matching its digest), and no output may
hold a traceback or an internal error. ``IDPBUILDER_SOAK_N`` sets the number of operations, ``…_SEED`` the seed.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from regkit import make_image, unique

from fixtures.cli import hermetic_env
from fixtures.fault_proxy import FaultProxy
from idpbuilder.store.layout import Store
from idpbuilder.store.verify import check_store

SOURCES = [f"example.com/soak/src{i}:v1" for i in range(3)]
ENV = {"IDPBUILDER_RETRY_BASE_DELAY": "0.01"}
FLAGS = ["--timeout", "1", "--retries", "4"]
BAD_OUTPUT = ("Traceback", "internal error", "Exception ignored")


def _arm(proxy: FaultProxy, rng: random.Random) -> str:
    fault = rng.choice(["none", "none", "reset", "503", "stall", "truncate", "slow", "down", "silent"])
    if fault == "down":  # more failures than --retries 4 allows: the command fails cleanly
        proxy.fail_requests(50, status=503)
    elif fault == "silent":  # a registry that never answers: the stall budget ends the command
        proxy.stall(0, connections=50)
    if fault == "reset":
        proxy.reset_after(rng.randrange(1_000, 400_000), connections=rng.randint(1, 3), direction="both")
    elif fault == "503":
        proxy.fail_requests(rng.randint(1, 3), status=rng.choice([500, 502, 503, 429]))
    elif fault == "stall":
        proxy.stall(rng.randrange(0, 300_000), connections=1, direction=rng.choice(["upload", "download"]))
    elif fault == "truncate":
        proxy.stall(rng.randrange(1, 40), connections=1)
    elif fault == "slow":
        proxy.throttle(rng.choice([200_000, 500_000]), direction="both")
    return fault


def _check_store(home: Path, what: str) -> None:
    store = Store.open(home)
    try:
        check = check_store(store, repair=False)
    finally:
        store.close()
    assert check.ok, f"{what}: damaged {check.damaged}, missing {check.missing}"


def test_every_fault_kind_arms_the_proxy(fault_proxy: FaultProxy) -> None:
    """The soak's fault table (fast, in the default suite): each kind is drawn and arms the real proxy."""
    rng = random.Random(1)
    seen = set()
    for _ in range(200):
        seen.add(_arm(fault_proxy, rng))
        fault_proxy.clear()
    assert seen == {"none", "reset", "503", "stall", "truncate", "slow", "down", "silent"}


@pytest.mark.slow
def test_soak(fault_proxy: FaultProxy, idp_home: Path, tmp_path: Path) -> None:
    n = int(os.environ.get("IDPBUILDER_SOAK_N", "200"))
    rng = random.Random(int(os.environ.get("IDPBUILDER_SOAK_SEED", "11")))
    for i, src in enumerate(SOURCES):
        make_image(idp_home, src, [rng.randrange(50_000, 700_000) for _ in range(rng.randint(1, 3))], seed=i)
    repos = [fault_proxy.registry.ref(f"{unique('soak')}/app{i}:v1") for i in range(3)]
    pushed: set[str] = set()
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    env = hermetic_env(idp_home, extra=ENV)
    counts: dict[str, int] = {}
    for i in range(n):
        op = rng.choice(["push", "push", "pull", "build"]) if pushed else "push"
        if op == "push":
            dest = rng.choice(repos)
            argv = ["push", *FLAGS, rng.choice(SOURCES), dest]
        elif op == "pull":
            if rng.random() < 0.3:  # make it fetch again
                subprocess.run(
                    [sys.executable, "-m", "idpbuilder", "prune", "-a"],
                    env=env,
                    capture_output=True,
                    check=False,
                )
                subprocess.run(
                    [sys.executable, "-m", "idpbuilder", "rmi", "-f", *sorted(pushed)],
                    env=env,
                    capture_output=True,
                    check=False,
                )
            argv = ["pull", *FLAGS, rng.choice(sorted(pushed))]
        else:
            (ctx / "f").write_bytes(rng.randbytes(rng.randrange(1, 300_000)))
            base = rng.choice([*sorted(pushed), "scratch"])
            (ctx / "Dockerfile").write_text(f"FROM {base}\nCOPY f /f{i}\n")
            argv = ["build", *FLAGS, "-t", f"soak-built:{i % 5}", str(ctx)]
        fault = _arm(fault_proxy, rng)
        kill = rng.choice([None] * 8 + [signal.SIGKILL, signal.SIGINT])
        p = subprocess.Popen(
            [sys.executable, "-m", "idpbuilder", *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if kill is not None:
            time.sleep(rng.uniform(0.2, 1.5))
            if p.poll() is None:
                p.send_signal(kill)
        try:
            out, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            pytest.fail(f"#{i} {argv} with {fault} hung:\n{err}")
        fault_proxy.clear()
        what = f"#{i} {' '.join(argv)} (fault {fault}, kill {kill!r}) -> {p.returncode}"
        assert not any(b in err for b in BAD_OUTPUT), f"{what}\n{err}"
        # death by SIGINT (-2) is what a shell reports as 130: the convention for an interrupted program
        assert p.returncode in (0, 1, 2, 130, -signal.SIGKILL, -signal.SIGINT), f"{what}\n{err}"
        if p.returncode not in (0, -signal.SIGKILL, -signal.SIGINT):
            errors = [ln for ln in err.splitlines() if ln.startswith("Error: ")]
            assert len(errors) == 1, f"{what}\n{err}"
        if op == "push" and p.returncode == 0:
            pushed.add(argv[-1])
        counts[f"{op}:{p.returncode}"] = counts.get(f"{op}:{p.returncode}", 0) + 1
        _check_store(idp_home, what)
    print(counts)
    assert sum(v for k, v in counts.items() if k.endswith(":0")) > n // 3, counts
    assert sum(v for k, v in counts.items() if k.endswith(":1")) > 0, counts
