"""Hostile layers through the real CLI: as a FROM base (RUN extracts it), ``COPY --from``, ``ADD x.tar`` and
``RUN --mount from=``. Each build must fail fast with one clean line naming the layer, within a bounded time
and peak memory (the CLI process's own, via RUSAGE_CHILDREN of a small parent)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from fixtures.cli import hermetic_env
from fixtures.images import BUSYBOX_REF, build_busybox_rootfs

from .corpus import (
    LAYERS,
    duplicate_entries,
    gzip_bytes,
    gzip_zero_bomb,
    install_image,
    lower,
    root_opaque,
)

MiB = 1 << 20


class Run(NamedTuple):
    code: int
    stderr: str
    seconds: float
    max_rss: int  # bytes


# a small parent whose RUSAGE_CHILDREN is the CLI's own peak (a child forked from pytest would count
# pytest's RSS, which it shares until exec)
_MEASURE = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
sys.stderr.write("\\n@@maxrss %d\\n" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(code)
"""


def build(
    home: Path,
    ctx: Path,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    args: tuple[str, ...] = (),
) -> Run:
    """``idpbuilder build [args] ctx`` in a subprocess; its wall time and peak RSS."""
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "idpbuilder", "build", "-t", "out:1", "--progress", "plain", *args, str(ctx)]
    p = subprocess.Popen(
        [sys.executable, "-c", _MEASURE, *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=hermetic_env(home, extra=env),
        start_new_session=True,
    )
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        _, err = p.communicate()
    text, found, rss = err.decode(errors="replace").rpartition("\n@@maxrss ")
    if not found:  # killed before it could report
        text, rss = rss, "0"
    return Run(p.returncode, text, time.monotonic() - t0, int(rss) * 1024)


def context(tmp_path: Path, dockerfile: str, files: dict[str, bytes] | None = None) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, data in (files or {}).items():
        (ctx / name).write_bytes(data)
    return ctx


def assert_clean_failure(r: Run, *needles: str) -> None:
    assert r.code == 1, r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.lower().startswith(("error", "hint"))]
    assert lines, r.stderr
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


@pytest.fixture(scope="module")
def corpus() -> dict[str, bytes]:
    return {name: make() for name, make in LAYERS.items()}


@pytest.fixture
def busybox_home(idp_home: Path, busybox_image: Any) -> Path:
    busybox_image.install(idp_home)
    return idp_home


# name -> what the message must say
EXPECT = {
    "cve-2024-6232": "invalid pax header record",
    "cve-valid-records": "",  # well framed: accepted, and must not take quadratic time
    "huge-pax": "header field too long",
    "sparse-petabyte": "expands to more than",
    "big-uid": "uid 99999999999",
    "infinite-mtime": "invalid pax mtime '1e400'",
    "bad-header": "invalid tar header at offset",
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("how", ["copy-from", "add", "from-run", "mount"])
def test_hostile_layer_fails_fast_and_clean(
    name: str, how: str, corpus: dict[str, bytes], busybox_home: Path, tmp_path: Path
) -> None:
    tar = corpus[name]
    if how == "add":
        ctx = context(tmp_path, "FROM scratch\nADD layer.tar.gz /\n", {"layer.tar.gz": gzip_bytes(tar)})
    else:
        install_image(busybox_home, "hostile:1", [tar])
        df = {
            "copy-from": "FROM scratch\nCOPY --from=hostile:1 /f /f\n",
            "from-run": "FROM hostile:1\nRUN true\n",
            "mount": f"FROM {BUSYBOX_REF}\nRUN --mount=type=bind,from=hostile:1,target=/m true\n",
        }[how]
        ctx = context(tmp_path, df)
    r = build(busybox_home, ctx)
    assert r.seconds < 30, r
    assert r.max_rss < 200 * MiB, r
    if name == "cve-valid-records":  # a long but well-formed pax record is fine, and linear
        assert "internal error" not in r.stderr and "Traceback" not in r.stderr, r.stderr
        if how != "from-run":  # (that image has no shell to RUN)
            assert r.code == 0, r.stderr
        return
    what = (
        "layer.tar.gz"
        if how == "add"
        else "image hostile:1: layer sha256:"
        if how == "copy-from"
        else "layer sha256:"
    )
    assert_clean_failure(r, what, EXPECT[name])


@pytest.mark.timeout(90)
def test_gzip_bomb_stops_at_the_expansion_limit(idp_home: Path, tmp_path: Path) -> None:
    """1.1 GiB of zeros in a 1 MiB gzip: over 100x and the 1 GiB floor, refused before anything is written."""
    ctx = context(tmp_path, "FROM scratch\nADD bomb.tar.gz /\n", {"bomb.tar.gz": gzip_zero_bomb(1100 * MiB)})
    r = build(idp_home, ctx)
    assert_clean_failure(r, "bomb.tar.gz", "expands to more than 1.0 GiB", "IDPBUILDER_MAX_EXPANSION")
    assert r.seconds < 30
    # the limit is configurable
    r = build(idp_home, ctx, env={"IDPBUILDER_MAX_EXPANSION": "nonsense"})
    assert_clean_failure(r, "IDPBUILDER_MAX_EXPANSION='nonsense' is not a positive number")


def _busybox_tar(tmp_path: Path) -> bytes:
    root = tmp_path / "bb"
    build_busybox_rootfs(root)
    out = tmp_path / "bb.tar"
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
        for p in sorted(root.rglob("*")):
            tf.add(p, arcname=str(p.relative_to(root)), recursive=False)
    return out.read_bytes()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("overlay", ["overlay", "no-overlay"])
def test_one_semantics_for_duplicates_and_root_opaque(
    overlay: str, busybox_home: Path, tmp_path: Path
) -> None:
    """Later duplicates win and a root opaque marker is ignored, in COPY --from, RUN and RUN --mount alike."""
    bb = _busybox_tar(tmp_path)
    install_image(busybox_home, "weird:1", [bb, lower(), duplicate_entries(), root_opaque()])
    ctx = context(
        tmp_path,
        """FROM weird:1
COPY --from=weird:1 /dup /copied-dup
COPY --from=weird:1 /etc/lower /copied-lower
RUN cat /dup /etc/lower /upper > /run-seen
RUN --mount=type=bind,from=weird:1,target=/m cat /m/dup /m/etc/lower /m/upper > /mount-seen
RUN cat /copied-dup /copied-lower > /copy-seen
""",
    )
    env = {"IDPBUILDER_NO_OVERLAY": "1"} if overlay == "no-overlay" else None
    r = build(busybox_home, ctx, env=env)
    assert r.code == 0, r.stderr
    dest = tmp_path / "unpacked"
    subprocess.run(
        ["umoci", "unpack", "--image", f"{busybox_home / 'store'}:out:1", str(dest)],
        check=True,
        capture_output=True,
    )
    root = dest / "rootfs"
    assert (root / "run-seen").read_text() == "second\nlower\nupper\n"
    assert (root / "mount-seen").read_text() == "second\nlower\nupper\n"
    assert (root / "copy-seen").read_text() == "second\nlower\n"


@pytest.mark.timeout(60)
def test_copy_from_checks_diff_ids(idp_home: Path, tmp_path: Path) -> None:
    install_image(idp_home, "lying:1", [lower()], diff_ids=["sha256:" + "0" * 64])
    ctx = context(tmp_path, "FROM scratch\nCOPY --from=lying:1 /etc/lower /x\n")
    r = build(idp_home, ctx)
    assert_clean_failure(r, "layer sha256:", "content has digest")
