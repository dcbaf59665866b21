"""Several ``idpbuilder build`` processes with RUN steps share one fresh home at the same time (the base is
pulled by all of them at once); one is interrupted mid-RUN. The others finish, every image holds what its
own RUN wrote, and the store validates."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from fixtures.cli import hermetic_env
from fixtures.podman import Podman
from fixtures.registry import RegistryInfo

from .conftest import Idp, mounts_under, pull_env, runc_state_dirs, validate_store, write_context


def test_concurrent_run_builds_one_interrupted(
    idp: Idp, tls_registry: RegistryInfo, fresh_podman: Podman, tmp_path: Path
) -> None:
    base = tls_registry.ref("library/busybox:latest")
    env = hermetic_env(idp.home, extra=pull_env(tls_registry))
    procs: dict[str, subprocess.Popen[str]] = {}
    for name in ("a", "b", "c", "stopped"):
        sleep = "sleep 30" if name == "stopped" else "sleep 1"
        ctx = write_context(
            tmp_path / name,
            f"FROM {base}\nRUN echo {name} > /who && {sleep}\nRUN echo again-{name} >> /who\n",
        )
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "idpbuilder", "build", "-q", "-t", f"conc:{name}", str(ctx)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
    try:
        deadline = time.monotonic() + 60
        while not any((p / "bundle").exists() for p in (idp.home / "work" / "state").glob("*/run-*")):
            assert time.monotonic() < deadline, "no RUN started"
            time.sleep(0.1)
        time.sleep(2.5)  # the short RUNs are done by now; "stopped" is sleeping
        procs["stopped"].send_signal(signal.SIGINT)
        results = {n: (p.wait(timeout=120), *p.communicate()) for n, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    code, _, err = results.pop("stopped")
    assert code == 130 and "interrupted" in err, err
    for name, (code, out, err) in results.items():
        assert code == 0, f"{name}: {err}"
        assert out.strip().startswith("sha256:"), out
    listed = idp("images").check().stdout
    assert "stopped" not in listed
    for name in results:
        image = fresh_podman.pull(f"oci:{idp.home / 'store'}:conc:{name}")
        assert fresh_podman.run(image, "cat", "/who").stdout == f"{name}\nagain-{name}\n"
    assert mounts_under(tmp_path) == [] and runc_state_dirs(idp.home) == []
    validate_store(idp.home)
