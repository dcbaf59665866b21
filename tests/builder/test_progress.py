"""Build progress: BuildKit's step numbering, the plain lines, and the live TTY display."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from idpbuilder.builder import Builder, BuildOptions, StepInfo
from idpbuilder.cli.build_progress import PlainStepReporter, TTYStepReporter, clean_line, make_step_reporter
from idpbuilder.store.layout import Store


class Recorder:
    """A reporter that keeps what the engine reported."""

    def __init__(self) -> None:
        self.started: list[StepInfo] = []
        self.done: list[tuple[int, bool]] = []

    def step_start(self, step: StepInfo) -> None:
        self.started.append(step)

    def step_output(self, step: StepInfo, data: bytes) -> None:
        return None

    def step_done(self, step: StepInfo, *, cached: bool, seconds: float) -> None:
        self.done.append((step.id, cached))

    def warning(self, message: str) -> None:
        return None


def _build(home: Path, ctx: Path, dockerfile: str, files: dict[str, str], **kw: Any) -> Recorder:
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        (ctx / name).write_text(text)
    rec = Recorder()
    store = Store.open(home)
    try:
        Builder(store, BuildOptions(context=ctx, tags=("p:1",), **kw), reporter=rec).build()
    finally:
        store.close()
    return rec


def test_single_stage_numbers_only_buildkit_steps(busybox_home: Path, tmp_path: Path) -> None:
    rec = _build(
        busybox_home,
        tmp_path / "ctx",
        'FROM busybox\nENV A=1\nLABEL x=y\nCOPY a /a\nUSER nobody\nWORKDIR /w\nEXPOSE 80\nCMD ["sh"]\n',
        {"a": "a"},
    )
    assert [s.label for s in rec.started] == ["[1/3] FROM busybox", "[2/3] COPY a /a", "[3/3] WORKDIR /w"]
    assert [s.id for s in rec.started] == [1, 2, 3]
    assert [i for i, _ in rec.done] == [1, 2, 3]


def test_multi_stage_numbers_per_stage(busybox_home: Path, tmp_path: Path) -> None:
    df = (
        "FROM busybox AS build\nCOPY a /a\nENV X=1\n"
        "FROM busybox AS unused\nCOPY a /u\n"  # not needed: not built, not shown
        "FROM build AS more\nCOPY a /b\n"  # FROM an earlier stage: not a step
        "FROM scratch\nCOPY --from=more /b /c\n"  # FROM scratch: not a step
    )
    rec = _build(busybox_home, tmp_path / "ctx", df, {"a": "a"})
    assert [s.label for s in rec.started] == [
        "[build 1/2] FROM busybox",
        "[build 2/2] COPY a /a",
        "[more 1/1] COPY a /b",
        "[stage-3 1/1] COPY --from=more /b /c",
    ]
    assert [s.id for s in rec.started] == [1, 2, 3, 4]  # `#id` stays unique across stages


def test_index_padded_to_the_width_of_the_total(tmp_path: Path) -> None:
    files = {f"f{i}": str(i) for i in range(10)}
    df = "FROM scratch\n" + "".join(f"COPY f{i} /f{i}\n" for i in range(10))
    rec = _build(tmp_path / "home", tmp_path / "ctx", df, files)
    labels = [s.label for s in rec.started]
    assert labels[0] == "[ 1/10] COPY f0 /f0" and labels[9] == "[10/10] COPY f9 /f9", labels


def test_cached_rebuild_reports_cached(tmp_path: Path) -> None:
    args = (tmp_path / "home", tmp_path / "ctx", "FROM scratch\nCOPY a /a\nENV A=1\nCOPY a /b\n", {"a": "x"})
    _build(*args)
    assert _build(*args).done == [(1, True), (2, True)]


def test_plain_lines() -> None:
    out = io.StringIO()
    rep = PlainStepReporter(out)
    step = StepInfo(2, 6, "", "COPY app.sh /app.sh", 7)
    rep.step_start(step)
    rep.step_output(step, b"one\ntwo\n")
    rep.step_done(step, cached=False, seconds=0.31)
    rep.step_done(step, cached=True, seconds=0)
    assert out.getvalue() == "[2/6] COPY app.sh /app.sh\n#7 one\n#7 two\n#7 DONE 0.3s\n#7 CACHED\n"


def test_clean_line_drops_escapes_and_carriage_returns() -> None:
    assert clean_line("\x1b[32m 10%\r\x1b[32m100%\x1b[0m done\r\n") == "100% done"
    assert clean_line("a\tb\x07") == "a   b"


def _last_frame(raw: str) -> str:
    """The text of the last live frame (escape sequences removed)."""
    frame = raw.rsplit("[+] Building", 1)[1]
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", frame)


def _after_live(raw: str) -> str:
    """What is printed once the live display has stopped (it shows the cursor again), without escapes."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw.rsplit("\x1b[?25h", 1)[1])


def test_tty_display_running_step_shows_timer_and_output_tail() -> None:
    out = io.StringIO()
    rep = TTYStepReporter(out, color=False)
    try:
        first = StepInfo(1, 2, "", "FROM busybox", 1)
        rep.step_start(first)
        rep.step_done(first, cached=False, seconds=0.01)
        run = StepInfo(2, 2, "", "RUN make", 2)
        rep.step_start(run)
        for i in range(1, 11):
            rep.step_output(run, f"line {i}\n".encode())
        time.sleep(0.4)  # a few refreshes at 8 per second
        frame = _last_frame(out.getvalue())
        assert re.search(r"=> \[2/2\] RUN make +\d+\.\ds", frame), frame
        shown = re.findall(r"=> => # (line \d+)", frame)
        assert shown == [f"line {i}" for i in range(5, 11)], frame  # only the last 6 lines
        rep.step_done(run, cached=False, seconds=1.25)
    finally:
        rep.close()
    raw = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    tail = raw.rsplit("[+] Building", 1)[1]  # after the last frame: nothing of the live area
    assert "line 10" not in tail
    assert re.search(r"=> \[1/2\] FROM busybox +0\.0s", raw)
    assert re.search(r"=> \[2/2\] RUN make +1\.2s", raw)  # collapsed to one line with its duration
    assert "ERROR" not in raw


def test_tty_display_failed_step_keeps_its_output() -> None:
    out = io.StringIO()
    rep = TTYStepReporter(out, color=False)
    run = StepInfo(3, 3, "build", "RUN false", 5)
    rep.step_start(run)
    for i in range(30):
        rep.step_output(run, f"out-{i}\n".encode())
    rep.close(failed=True)
    rep.close(failed=True)  # idempotent
    after = _after_live(out.getvalue())
    assert re.search(r"=> ERROR \[build 3/3\] RUN false +\d+\.\ds", after), after
    lines = after.replace("\r", "").splitlines()
    at = lines.index(" > [build 3/3] RUN false:")
    assert lines[at + 1 : at + 21] == [f"out-{i}" for i in range(10, 30)]
    assert lines[at + 21] == "------"


def test_auto_mode_picks_by_terminal() -> None:
    assert make_step_reporter("auto", stream=io.StringIO()).mode == "plain"
    assert make_step_reporter("quiet", stream=io.StringIO()).mode == "quiet"


def test_cli_on_a_terminal_uses_the_live_display(busybox_home: Path, tmp_path: Path) -> None:
    """Under a pseudo-terminal (`script`), `--progress auto` shows BuildKit's live display."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN for i in 1 2 3; do echo tick-$i; sleep 0.2; done\n")
    env = {**os.environ, "IDPBUILDER_HOME": str(busybox_home), "TERM": "xterm", "COLUMNS": "100"}
    env.pop("NO_COLOR", None)
    cmd = f"{sys.executable} -m idpbuilder build -t tty:1 {ctx}"
    r = subprocess.run(
        ["script", "-qec", cmd, "/dev/null"], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stdout
    raw = r.stdout
    assert "\x1b[?25l" in raw  # the live display hides the cursor while it runs
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)
    assert "=> => # tick-1" in plain  # output shown under the running step
    assert re.search(r"=> \[2/2\] RUN for i in 1 2 3; do echo tick-\$i; sleep 0\.2; done +0\.\ds", plain)
    assert "#2 tick-1" not in plain  # not the plain format
    final = plain.rsplit("[+] Building", 1)[1]
    assert "tick-" not in final.split("Built sha256:")[1]


def test_tty_display_interrupted_step_is_canceled_without_its_output() -> None:
    out = io.StringIO()
    rep = TTYStepReporter(out, color=False)
    run = StepInfo(2, 2, "", "RUN sleep 100", 2)
    rep.step_start(run)
    rep.step_output(run, b"zzz\n")
    rep.close(failed=True, canceled=True)
    after = _after_live(out.getvalue())
    assert re.search(r"=> CANCELED \[2/2\] RUN sleep 100 +\d+\.\ds", after), after
    assert "ERROR" not in after and "zzz" not in after
