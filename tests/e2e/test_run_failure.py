"""A failing or interrupted RUN leaves nothing behind: store, tags, mounts, runc containers, scratch dirs.

The CLI runs in a subprocess on a home that already holds busybox and one successful build (so the
caches and scratch directories exist before the failure), and every check compares before with after.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from fixtures.cli import hermetic_env

from .conftest import (
    Idp,
    mounts_under,
    processes_mentioning,
    runc_containers,
    runc_state_dirs,
    scratch_entries,
    store_snapshot,
    validate_store,
    write_context,
)

FAILING = (
    "FROM busybox\n"
    "RUN echo building; "
    "for i in $(seq 1 30); do echo out-$i; done; echo to-stderr >&2; exit 3\n"
)


class Cleanliness:
    """Everything a build may leave behind, captured before it runs and compared afterwards."""

    def __init__(self, home: Path, tmp_path: Path) -> None:
        self.home, self.tmp_path = home, tmp_path
        self.store = store_snapshot(home)
        self.scratch = scratch_entries(home)
        self.runc = runc_containers()

    def assert_clean(self, marker: str | None = None) -> None:
        """Same index.json bytes and tags, no mount below the test's tmp dir, no runc container or
        state, no new scratch entry, no live process mentioning the home (or ``marker``)."""
        after = store_snapshot(self.home)
        assert after.tags == self.store.tags
        assert after.index == self.store.index
        assert mounts_under(self.tmp_path) == []
        assert runc_containers() == self.runc
        assert runc_state_dirs(self.home) == []
        assert scratch_entries(self.home) - self.scratch == set()
        assert processes_mentioning(str(self.home)) == []
        if marker is not None:
            assert processes_mentioning(marker) == []


@pytest.fixture
def ready_home(idp: Idp, busybox_image: Any, tmp_path: Path) -> Idp:
    """A home holding busybox and a successful RUN build tagged ``ok:1``."""
    busybox_image.install(idp.home)
    ctx = write_context(tmp_path / "ok", "FROM busybox\nRUN echo fine > /fine\n")
    idp("build", "-t", "ok:1", str(ctx)).check()
    return idp


@pytest.mark.parametrize("quiet", [False, True], ids=["plain", "quiet"])
def test_failing_run_exit_code_output_tail_and_clean_store(
    ready_home: Idp, tmp_path: Path, quiet: bool
) -> None:
    idp = ready_home
    ctx = write_context(tmp_path / "fail", FAILING)
    before = Cleanliness(idp.home, tmp_path)
    r = idp("build", *(["-q"] if quiet else ["--progress", "plain"]), "-t", "ok:1", "-t", "bad:1", str(ctx))
    assert r.code == 1, r
    assert r.stdout == ""
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "RUN failed (exit 3)" in errors[0], r.stderr
    assert "Traceback" not in r.stderr
    # and a hint naming the instruction's line
    lines = r.stderr.splitlines()
    assert lines[lines.index(errors[0]) + 1] == (
        "Hint: the RUN at Dockerfile:2 exited with status 3; its output is shown above"
    ), r.stderr
    # the tail of the command's output is shown (both streams), ending with the last lines it printed
    lines = r.stderr.splitlines()
    err_at = lines.index(errors[0])
    shown = "\n".join(line for line in lines[:err_at] if not line.startswith("["))  # output, not step lines
    assert "out-30" in shown and "to-stderr" in shown and "out-12" in shown, r.stderr
    assert shown.index("out-29") < shown.index("out-30") < shown.index("to-stderr")
    if quiet:  # -q shows no progress, only the tail: not the first lines of a long output
        assert "building" not in shown and "out-1\n" not in shown + "\n", r.stderr
    before.assert_clean()
    # the tags still point where they did, and the failed build's tag does not exist
    listed = idp("images").check().stdout
    assert "bad" not in listed and "ok" in listed


@pytest.mark.parametrize(
    ("sig", "group"),
    [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["SIGINT", "SIGINT-process-group", "SIGTERM"],
)
def test_interrupted_run_exits_130_quickly_and_cleanly(
    ready_home: Idp, tmp_path: Path, sig: signal.Signals, group: bool
) -> None:
    """The signal goes to the build process alone, or to its whole process group as a terminal's Ctrl-C
    does (then the runtime helpers get it too)."""
    idp = ready_home
    marker = f"30.{uuid.uuid4().int % 10**6:06d}"  # a unique sleep length: finds the sleep process itself
    ctx = write_context(
        tmp_path / "slow", f"FROM busybox\nRUN echo started; sleep {marker}; echo done-{marker}\n"
    )
    before = Cleanliness(idp.home, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "idpbuilder", "build", "--progress", "plain", "-t", "ok:1", str(ctx)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=hermetic_env(idp.home),
        start_new_session=group,
    )
    err_lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            err_lines.append(line)
            if line.rstrip().endswith(" started") and not line.startswith("["):  # output, not the step line
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert started.wait(60), "".join(err_lines)
        assert processes_mentioning(marker), "the RUN command is not running"
        time.sleep(0.3)
        t0 = time.monotonic()
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        code = proc.wait(timeout=20)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(5)
    stderr = "".join(err_lines)
    assert code == 130, stderr
    assert took < 5, f"took {took:.1f}s to stop"
    assert "Error: interrupted" in stderr and "Traceback" not in stderr, stderr
    assert f"#2 done-{marker}" not in stderr  # the command never finished
    before.assert_clean(marker)
    validate_store(idp.home)
    # the store still works: the interrupted step's tag points where it did, and a build runs again
    idp("build", "-q", "-t", "ok:2", str(tmp_path / "ok")).check()


def test_failing_heredoc_run_error_is_one_line(ready_home: Idp, tmp_path: Path) -> None:
    idp = ready_home
    ctx = write_context(tmp_path / "hd", "FROM busybox\nRUN <<EOF\necho one\necho two\nexit 4\nEOF\n")
    r = idp("build", "--progress", "plain", "-t", "hd:1", str(ctx))
    assert r.code == 1, r
    lines = r.stderr.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Error:"))
    assert lines[at] == r"Error: RUN failed (exit 4): /bin/sh -c echo one\necho two\nexit 4\n", r.stderr
    assert lines[at + 1 :] == [] or lines[at + 1].startswith("Hint:"), r.stderr
    assert lines[at - 2 : at] == ["#2 one", "#2 two"], r.stderr
