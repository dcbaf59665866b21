"""The OCI runtime: the probe's verdict is kept in the store and re-probed when the binary changes; one
``runc run --detach`` per RUN, its init reaped by us, stdout and stderr in their real order."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fixtures.images import make_busybox_store
from idpbuilder.errors import BuildError, RunFailedError
from idpbuilder.image import Layer
from idpbuilder.sandbox import OciRunner, RunSpec, runtime
from idpbuilder.store import Store

from .conftest import needs_root, needs_runtime

pytestmark = [needs_root, needs_runtime]

ENV = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]


def sh(cmd: str) -> RunSpec:
    return RunSpec(argv=["/bin/sh", "-c", cmd], env=ENV)


@pytest.fixture
def runner() -> Iterator[OciRunner]:
    """A runner released afterwards (an unreleased one would keep the process's run state alive)."""
    r = OciRunner()
    yield r
    r.close()


@pytest.fixture
def fresh_memo() -> Iterator[None]:
    """Forget this process's verdicts, so the store's file is what counts (as in a new process)."""
    saved = dict(runtime._probe_results)
    runtime._probe_results.clear()
    yield
    runtime._probe_results.clear()
    runtime._probe_results.update(saved)


def _verdicts(store: Store) -> Path:
    return store.path_for() / "runtime-probes.json"


def test_verdict_is_a_file_in_the_store_and_is_read_back(
    store: Store, base_layers: list[Layer], fresh_memo: None
) -> None:
    runner = OciRunner()
    try:
        runner.run(store, base_layers, sh("true"))
    finally:
        runner.close()
    cache = _verdicts(store)
    assert cache.is_file()
    verdicts = json.loads(cache.read_text())
    working = [k for k, v in verdicts.items() if v is None]
    assert working, verdicts  # runc (or crun) works on this host
    saved = cache.read_text()
    try:
        # a verdict in the file is believed without a new probe: poison it and the next run must say so
        cache.write_text(json.dumps({k: "poisoned verdict" for k in verdicts}))
        runtime._probe_results.clear()
        runner = OciRunner()
        try:
            with pytest.raises(BuildError) as err:
                runner.run(store, base_layers, sh("true"))
        finally:
            runner.close()
        assert "poisoned verdict" in err.value.message
    finally:
        cache.write_text(saved)


def test_a_changed_binary_is_probed_again(
    store: Store,
    base_layers: list[Layer],
    fresh_memo: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    runner: OciRunner,
) -> None:
    real = shutil.which("runc") or shutil.which("crun")
    assert real is not None
    copy = tmp_path / Path(real).name
    shutil.copy2(real, copy)
    monkeypatch.setenv(runtime.RUNTIME_ENV, str(copy))
    cache = _verdicts(store)
    saved = cache.read_text() if cache.is_file() else None
    try:
        cache.write_text(json.dumps({runtime._probe_key(str(copy)): "stale verdict"}))
        with pytest.raises(BuildError, match="stale verdict"):
            runner.run(store, base_layers, sh("true"))
        runtime._probe_results.clear()
        st = copy.stat()
        os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # "upgraded"
        out: list[str] = []
        layer = runner.run(store, base_layers, sh("echo probed again > /p; echo ok"), out.append)
        assert out == ["ok"] and layer is not None
        assert json.loads(cache.read_text())[runtime._probe_key(str(copy))] is None
    finally:
        if saved is None:
            cache.unlink(missing_ok=True)
        else:
            cache.write_text(saved)


def test_stdout_and_stderr_keep_their_order(
    store: Store, base_layers: list[Layer], runner: OciRunner
) -> None:
    out: list[str] = []
    cmd = "for i in 1 2 3 4 5 6; do echo out$i; echo err$i >&2; done"
    runner.run(store, base_layers, RunSpec(argv=["/bin/sh", "-c", cmd], env=ENV), out.append)
    assert out == [f"{s}{i}" for i in range(1, 7) for s in ("out", "err")]


def test_exit_status_and_no_zombie_left(store: Store, base_layers: list[Layer], runner: OciRunner) -> None:
    with pytest.raises(RunFailedError) as err:
        runner.run(store, base_layers, sh("sleep 0.2 & exit 7"))
    assert err.value.exit_status == 7
    # the container's init was reaped (by the helper that is its reaper here, as pid 1 of the build's
    # namespaces is in a real build);
    # so are the runtime's background deletes once settled
    runtime.settle()
    zombies = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            comm = stat.partition(" (")[2].rpartition(")")[0]
            fields = stat.rsplit(")", 1)[1].split()
            # ours to reap: the runtime's processes and the container's (other tests' orphans are not)
            mine = comm in ("runc", "crun", "sh", "sleep") or comm.startswith("runc:")
            if mine and fields[0] == "Z" and int(fields[1]) == os.getpid():  # noqa: SIM102
                zombies.append(stat[:60])
    assert not zombies


def test_a_real_build_reaps_as_pid_1_and_keeps_the_order(tmp_path: Path) -> None:
    """The CLI's build runs in its own pid namespace as pid 1: no helper, runc hands the init to us."""
    home = tmp_path / "home"
    make_busybox_store(home)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    cmd = "for i in 1 2 3 4 5 6; do echo out$i; echo err$i >&2; done; echo $$ > /pid1"
    (ctx / "Dockerfile").write_text(f"FROM busybox:latest\nRUN {cmd}\nRUN sleep 0.1 & exit 0\n")
    env = {**os.environ, "IDPBUILDER_HOME": str(home)}
    env.pop("IDPBUILDER_ISOLATED", None)
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "idpbuilder",
            "build",
            "--progress",
            "plain",
            "--no-cache",
            "-t",
            "order:1",
            str(ctx),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    seen = [w for line in p.stderr.splitlines() for w in line.split() if re.fullmatch(r"(out|err)\d", w)]
    assert seen == [f"{s}{i}" for i in range(1, 7) for s in ("out", "err")], p.stderr
    assert not list((home / "work" / "state").glob("*/runc/*")), "a container was not deleted"
