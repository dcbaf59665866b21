"""Dockerfiles that used to hang or crash the parser, lexer or stage graph, through the real CLI: each
finishes in bounded time with a result or one clean error line, never an "internal error"."""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
from pathlib import Path

import pytest

from idpbuilder.builder.fs import ContextFS
from idpbuilder.errors import BuildError

from .corpus import DOCKERFILES
from .test_hostile_layers import MiB, assert_clean_failure, build, context

# name -> None (builds) or what the one-line error must say
EXPECT: dict[str, str | None] = {
    "env-1mib": None,
    "label-5mib": None,
    "env-doublings": None,
    "label-100k-lines": None,
    "copy-stars": None,  # matches "a", in linear time
    "substitution-backtracking": None,
    "default-nested": "substitutions nested more than 100 levels deep",
    "stages-chained": None,
    "copy-from-chained": None,
    "brackets": "",  # shell form (as Go, past 10000 levels); scratch has no shell: a clean RUN failure
    "workdir-deep": "longer than 4095 bytes",
    "workdir-nul": "NUL character",
    "run-surrogate": "",  # decoded to U+FFFD as Go does; scratch has no echo: a clean RUN failure
}
SLOW = {"label-100k-lines": 120, "copy-from-chained": 240}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_hostile_dockerfile(name: str, idp_home: Path, tmp_path: Path) -> None:
    ctx = context(tmp_path, DOCKERFILES[name], {"f": b"f", "a": b"a"})
    # 100k metadata steps write 100k fsynced build-cache records: that I/O (the store's) is not under test
    args = ("--no-cache",) if name == "label-100k-lines" else ()
    r = build(idp_home, ctx, timeout=SLOW.get(name, 30), args=args)
    assert r.code != -9, f"{name} did not finish: {r}"
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.max_rss < 400 * MiB, r.max_rss
    want = EXPECT[name]
    if want is None:
        assert r.code == 0, r.stderr[-2000:]
    else:
        assert_clean_failure(r, want)
        err = [x for x in r.stderr.splitlines() if x.startswith("Error")]
        assert err and len(err[-1]) < 2000, err  # the message quotes the input only in part


# ------------------------------------------------------------------ the context race (issue item 10)

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        raise OSError(ctypes.get_errno(), "renameat2")


def _race_tree(tmp_path: Path) -> tuple[Path, Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("OUTSIDE\n")
    ctx = tmp_path / "ctx"
    (ctx / "d").mkdir(parents=True)
    (ctx / "d/secret.txt").write_text("inside\n")
    (ctx / "swap").symlink_to(outside)
    return ctx, outside


def test_context_swap_after_lstat_is_refused(tmp_path: Path) -> None:
    """Deterministic: the directory is swapped for a symlink between the check and the read."""
    ctx, _ = _race_tree(tmp_path)
    fs = ContextFS(ctx)
    assert fs.lstat("/d/secret.txt") is not None
    _exchange(ctx / "d", ctx / "swap")  # d is now the symlink to outside
    with pytest.raises(BuildError, match="changed while the build read it"):
        fs.open("/d/secret.txt").read()
    assert fs.listdir("/d") == []


@pytest.mark.timeout(300)
def test_context_race_never_copies_outside(idp_home: Path, tmp_path: Path) -> None:
    """Builds while another thread keeps exchanging d and a symlink to outside: never the outside file."""
    ctx, _ = _race_tree(tmp_path)
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY d/secret.txt /got\n")
    stop = threading.Event()

    def swapper() -> None:
        while not stop.is_set():
            _exchange(ctx / "d", ctx / "swap")

    t = threading.Thread(target=swapper, daemon=True)
    t.start()
    results = []
    try:
        for i in range(25):
            r = build(idp_home, ctx, timeout=60)
            assert "internal error" not in r.stderr and "Traceback" not in r.stderr, r.stderr
            results.append(r)
            if r.code == 0:
                out = tmp_path / f"u{i}"
                subprocess.run(
                    ["umoci", "raw", "unpack", "--image", f"{idp_home / 'store'}:out:1", str(out)],
                    check=True,
                    capture_output=True,
                )
                assert (out / "got").read_text() == "inside\n"
    finally:
        stop.set()
        t.join()
    for r in results:  # each build copied the inside file, or stopped cleanly
        assert r.code == 0 or "changed while" in r.stderr or "not found" in r.stderr, r.stderr
