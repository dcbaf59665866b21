"""Ctrl-C / SIGTERM in the middle of a transfer: exit 130 at once, one line, no temp files, the store valid.

(Push while retrying is covered in test_faults; these interrupt bytes in flight: a pull streaming a blob into
the store, and a push streaming a blob out.)
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from regkit import make_image, unique

from fixtures.cli import CliRunner, hermetic_env
from fixtures.fault_proxy import FaultProxy
from idpbuilder.digest import Digest
from idpbuilder.store.layout import Store

SRC = "example.com/src/interrupt:v1"


def _start(home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "idpbuilder", *args],
        env=hermetic_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(cond: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.02)
    assert cond(), what  # type: ignore[operator]


def _stop(proc: subprocess.Popen[str], sig: int) -> tuple[str, str]:
    t0 = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert time.monotonic() - t0 < 5, "in-flight transfers must stop, not finish"
    assert out == "" and "Traceback" not in err
    assert err.rstrip("\n").splitlines()[-1] == "Error: interrupted", err
    return out, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_pull_leaves_no_partial_blob(
    fault_proxy: FaultProxy, cli: CliRunner, idp_home: Path, tmp_path: Path, sig: int
) -> None:
    src_home = tmp_path / "src-home"
    make_image(src_home, SRC, [3_000_000])
    ref = fault_proxy.registry.ref(f"{unique('intpull')}/app:v1")
    assert CliRunner(src_home)("push", "--progress", "quiet", SRC, ref).code == 0
    fault_proxy.throttle(300_000, direction="download")  # ~10 s for the layer
    proc = _start(idp_home, "pull", "--progress", "plain", ref)
    _wait_for(lambda: fault_proxy.stats.bytes_down > 400_000, "the layer download started")
    _stop(proc, sig)
    fault_proxy.clear()
    assert list((idp_home / "tmp").iterdir()) == []
    store = Store.open(idp_home)
    try:
        assert store.refs() == []
        for p in (idp_home / "store" / "blobs" / "sha256").iterdir():  # only whole, verified blobs
            store.read_blob(Digest("sha256", p.name))
    finally:
        store.close()
    # the next pull completes from where the store stands
    code, out, err = cli("pull", "--progress", "quiet", ref)
    assert code == 0, err


def test_interrupted_push_stops_streaming_at_once(fault_proxy: FaultProxy, idp_home: Path) -> None:
    make_image(idp_home, SRC, [3_000_000])
    dest = fault_proxy.registry.ref(f"{unique('intpush')}/app:v1")
    fault_proxy.throttle(300_000, direction="upload")
    proc = _start(idp_home, "push", "--progress", "plain", SRC, dest)
    _wait_for(lambda: fault_proxy.stats.bytes_up > 400_000, "the layer upload started")
    _stop(proc, signal.SIGINT)
    fault_proxy.clear()
    p = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{idp_home / 'store'}:{SRC}"], capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["layers"]
