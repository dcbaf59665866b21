"""Build progress on stderr, as BuildKit shows it.

``plain``: one line per step (``[2/6] COPY app.sh /app.sh``), each RUN's output under its step as
``#id LINE``, then ``#id CACHED`` / ``#id DONE 0.3s``. ``tty``: a live display (rich, imported only
here and only when used): running steps with a running timer and the last lines of their output;
a finished step collapses to one line with its duration (``CACHED`` when reused); a failed step keeps
the tail of its output on screen. ``quiet``: nothing. ``auto``: tty when stderr is a terminal.
"""

from __future__ import annotations

import collections
import re
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

from idpbuilder._records import dataclass, field

if TYPE_CHECKING:
    from idpbuilder.builder import StepInfo

__all__ = ["PlainStepReporter", "StepReporter", "TTYStepReporter", "make_step_reporter"]

# patterns as strings: compiled (and cached by re) on the first line of RUN output, not for cached builds
_ANSI = r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])"
_CONTROL = r"[\x00-\x08\x0b-\x1f\x7f]"


def clean_line(line: str) -> str:
    """A line of program output as a terminal would leave it: what follows the last CR, no escapes."""
    line = line.rstrip("\r\n")
    if "\r" in line:
        line = line.rsplit("\r", 1)[1]
    line = re.sub(_ANSI, "", line)
    return re.sub(_CONTROL, "", line.expandtabs(4))


def _lines(data: bytes) -> list[str]:
    text = data.decode("utf-8", "replace").rstrip("\n")
    return text.splitlines() or [""]


class StepReporter:
    """The base of the CLI's build reporters: warnings and ``close``; prints nothing for steps."""

    mode = "quiet"

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def step_start(self, step: StepInfo) -> None:
        """A numbered step began."""

    def step_output(self, step: StepInfo, data: bytes) -> None:
        """Output of a running step (RUN)."""

    def step_done(self, step: StepInfo, *, cached: bool, seconds: float) -> None:
        """A numbered step finished (``cached``: its layer was reused)."""

    def warning(self, message: str) -> None:
        """A build warning (unused build args, deprecated syntax)."""
        if self.mode != "quiet":
            self.stream.write(f"WARN: {message}\n")
            self.stream.flush()

    def close(self, *, failed: bool = False, canceled: bool = False) -> None:
        """Stop any live display; with ``failed``, leave the output of the unfinished steps visible
        (``canceled``: the user interrupted them, their output is not needed)."""


class PlainStepReporter(StepReporter):
    """Line-oriented output for logs and pipes (``--progress plain``)."""

    mode = "plain"

    def _w(self, s: str) -> None:
        self.stream.write(s + "\n")
        self.stream.flush()

    def step_start(self, step: StepInfo) -> None:
        """``[stage n/total] TEXT``."""
        self._w(step.label)

    def step_output(self, step: StepInfo, data: bytes) -> None:
        """``#id LINE`` for each line."""
        for line in _lines(data):
            self._w(f"#{step.id} {line}")

    def step_done(self, step: StepInfo, *, cached: bool, seconds: float) -> None:
        """``#id CACHED`` or ``#id DONE 0.3s`` (nothing for instant steps)."""
        if cached:
            self._w(f"#{step.id} CACHED")
        elif seconds >= 0.05:
            self._w(f"#{step.id} DONE {seconds:.1f}s")


@dataclass
class _Running:
    step: StepInfo
    started: float
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=40))


class _ConsoleWriter:
    """A text stream that prints whole lines above the live display (for log records)."""

    def __init__(self, reporter: TTYStepReporter) -> None:
        self.reporter = reporter
        self._buf = ""

    def write(self, s: str) -> int:
        self._buf += s
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            self.reporter.print_above(line)
        return len(s)

    def flush(self) -> None:
        """Nothing is buffered beyond an unfinished line."""


class TTYStepReporter(StepReporter):
    """A BuildKit-like live display (``--progress tty``)."""

    mode = "tty"
    SHOWN_LINES = 6  # output lines shown under a running step
    FAILED_LINES = 20  # output lines kept on screen for a failed step

    def __init__(self, stream: TextIO, *, color: bool = True) -> None:
        super().__init__(stream)
        import logging

        from rich.console import Console
        from rich.live import Live

        self.t0 = time.monotonic()
        self._lock = threading.RLock()
        self._running: dict[int, _Running] = {}
        self._done = 0
        self.console = Console(
            file=stream, force_terminal=True, no_color=not color, highlight=False, soft_wrap=False
        )
        self._live = Live(
            get_renderable=self._render,
            console=self.console,
            refresh_per_second=8,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._log_handlers: list[tuple[logging.StreamHandler[Any], Any]] = []
        for h in logging.getLogger("idpbuilder").handlers:
            if isinstance(h, logging.StreamHandler) and h.stream in (stream, sys.stderr):
                self._log_handlers.append((h, h.stream))
                h.setStream(_ConsoleWriter(self))  # type: ignore[arg-type]
        self._live.start()
        self._closed = False

    # ---------------------------------------------------------------- rendering
    def _row(self, prefix: str, text: str, right: str, style: str = "") -> Any:
        from rich.text import Text

        width = max(self.console.width, 20)
        left = Text(prefix + text, style=style, no_wrap=True, overflow="ellipsis")
        room = width - len(right) - 1
        left.truncate(room, overflow="ellipsis", pad=True)
        return Text.assemble(left, " ", (right, style))

    def _render(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        now = time.monotonic()
        with self._lock:
            rows: list[Any] = [
                Text(f"[+] Building {now - self.t0:.1f}s ({self._done} done)", style="bold blue")
            ]
            for r in self._running.values():
                rows.append(self._row(" => ", r.step.label, f"{now - r.started:.1f}s", "blue"))
                for line in list(r.tail)[-self.SHOWN_LINES :]:
                    rows.append(self._row(" => => # ", line, "", "dim"))
        return Group(*rows)

    def print_above(self, line: str) -> None:
        """Print a line above the live display (it stays in the scrollback)."""
        from rich.text import Text

        self.console.print(Text(line), soft_wrap=True)

    # ---------------------------------------------------------------- reporter
    def step_start(self, step: StepInfo) -> None:
        """Show the step with a running timer."""
        with self._lock:
            self._running[step.id] = _Running(step, time.monotonic())

    def step_output(self, step: StepInfo, data: bytes) -> None:
        """Keep the last lines of the step's output (the display shows the newest)."""
        with self._lock:
            r = self._running.get(step.id)
            if r is not None:
                r.tail.extend(clean_line(line) for line in _lines(data))

    def step_done(self, step: StepInfo, *, cached: bool, seconds: float) -> None:
        """Collapse the step to one line with its duration."""
        with self._lock:
            self._running.pop(step.id, None)
            self._done += 1
            row = self._row(" => ", ("CACHED " if cached else "") + step.label, f"{seconds:.1f}s")
        self.console.print(row)

    def warning(self, message: str) -> None:
        """Print the warning above the display."""
        self.print_above(f"WARN: {message}")

    def close(self, *, failed: bool = False, canceled: bool = False) -> None:
        """Stop the display; a failed step is printed with the tail of its output, as BuildKit does;
        interrupted steps are marked CANCELED."""
        if self._closed:
            return
        self._closed = True
        self._live.stop()
        for h, old in self._log_handlers:
            h.setStream(old)
        now = time.monotonic()
        for r in self._running.values():
            if not (failed or canceled):
                continue
            word, style = ("CANCELED ", "yellow") if canceled else ("ERROR ", "bold red")
            self.console.print(self._row(" => ", word + r.step.label, f"{now - r.started:.1f}s", style))
        if failed and not canceled:
            for r in self._running.values():
                if not r.tail:
                    continue
                self.print_above("------")
                self.print_above(f" > {r.step.label}:")
                for line in list(r.tail)[-self.FAILED_LINES :]:
                    self.print_above(line)
                self.print_above("------")
        self._running.clear()


def make_step_reporter(mode: str, *, stream: TextIO | None = None, color: bool = True) -> StepReporter:
    """The build reporter for ``--progress MODE`` on ``stream`` (default stderr)."""
    out = stream if stream is not None else sys.stderr
    if mode == "auto":
        import os

        mode = "tty" if out.isatty() and os.environ.get("TERM") != "dumb" else "plain"
    if mode == "quiet":
        return StepReporter(out)
    if mode == "tty":
        return TTYStepReporter(out, color=color)
    return PlainStepReporter(out)
