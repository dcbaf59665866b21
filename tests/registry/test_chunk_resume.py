"""Chunked uploads resume where the registry stands (a 416 answer re-syncs to the registry's offset) instead of starting the blob over.

The fault proxy sits in front of a real docker-registry: it answers one PATCH with 416 or 503 itself, or cuts a
connection in the middle of a chunk. After each fault the client asks the registry (``GET`` on the upload) how
many bytes it holds and continues from there in the same upload session.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from regkit import make_image, unique

from fixtures.cli import CliRunner
from fixtures.fault_proxy import FaultProxy

SRC = "example.com/src/resume:v1"
LAYER = 1_500_000  # incompressible: ~6 chunks of 256 KiB


def _pushed_digest(proxy: FaultProxy, ref: str) -> str:
    info = proxy.registry
    p = subprocess.run(
        ["skopeo", "inspect", *info.skopeo_args(), f"docker://{ref}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    return str(json.loads(p.stdout)["Digest"])


@pytest.mark.parametrize("status", [416, 503])
def test_a_rejected_chunk_resumes_the_same_upload(
    fault_proxy: FaultProxy, cli: CliRunner, idp_home: Path, status: int
) -> None:
    digest = str(make_image(idp_home, SRC, [LAYER]).digest)
    dest = fault_proxy.registry.ref(f"{unique('resume')}/app:v1")
    fault_proxy.reset_stats()
    # the first PATCH of the layer never reaches the registry; the proxy answers it
    fault_proxy.fail_requests(1, status=status, method="PATCH")
    code, out, err = cli(
        "push",
        "--chunk-size",
        "256k",
        "--jobs",
        "1",
        "--progress",
        "plain",
        SRC,
        dest,
        env={"IDPBUILDER_RETRY_BASE_DELAY": "0.01"},
    )
    assert code == 0, err
    assert out.strip() == f"{dest}@{digest}"
    log = fault_proxy.stats.request_log
    sessions = [r for r in log if r.method == "POST" and "/blobs/uploads/" in r.path]
    assert len(sessions) == 2  # the layer and the config: the layer's session was not restarted
    injected = [r for r in log if r.injected == status]
    assert len(injected) == 1 and injected[0].method == "PATCH"
    after = log[log.index(injected[0]) + 1 :]
    assert after[0].method == "GET" and "/blobs/uploads/" in after[0].path
    assert _pushed_digest(fault_proxy, dest) == digest


def test_a_connection_cut_mid_chunk_asks_the_registry_then_starts_over_when_it_dropped_the_session(
    fault_proxy: FaultProxy, cli: CliRunner, idp_home: Path
) -> None:
    digest = str(make_image(idp_home, SRC, [LAYER]).digest)
    dest = fault_proxy.registry.ref(f"{unique('cut')}/app:v1")
    fault_proxy.reset_stats()
    fault_proxy.reset_after(700_000)  # in the middle of the third chunk
    code, out, err = cli(
        "push",
        "--chunk-size",
        "256k",
        "--jobs",
        "1",
        "--progress",
        "plain",
        SRC,
        dest,
        env={"IDPBUILDER_RETRY_BASE_DELAY": "0.01"},
    )
    assert code == 0, err
    assert "resuming the upload" in err
    # docker-registry forgets a session whose PATCH broke off (404 on GET): a new session for the layer
    assert "dropped the upload session" in err
    assert fault_proxy.stats.resets == 1
    log = fault_proxy.stats.request_log
    assert len([r for r in log if r.method == "POST" and "/blobs/uploads/" in r.path]) == 3
    assert _pushed_digest(fault_proxy, dest) == digest
