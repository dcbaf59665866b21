"""Progress display on stderr for push/pull (and build --push): rich bars on a TTY, plain lines otherwise.

``--progress auto|plain|tty|quiet``: auto = tty when stderr is a terminal, else plain. rich is imported
only when bars are actually shown (it costs start-up time).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from idpbuilder.digest import Digest
from idpbuilder.registry.progress import Outcome

__all__ = [
    "PROGRESS_MODES",
    "CliReporter",
    "PlainReporter",
    "QuietReporter",
    "TTYReporter",
    "human_bytes",
    "make_reporter",
    "reporting",
]

PROGRESS_MODES = ("auto", "plain", "tty", "quiet")


def human_bytes(n: float) -> str:
    """``1.5 MB`` style sizes (decimal units, like docker)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _short(d: Digest) -> str:
    return d.hex[:12]


class CliReporter:
    """Base reporter: counts outcomes and bytes for the summary line."""

    def __init__(self, stream: TextIO, verb: str) -> None:
        self.stream = stream
        self.verb = verb
        self._lock = threading.Lock()
        self._started: dict[Digest, float] = {}
        self.counts: dict[str, int] = {}
        self.bytes = 0
        self.t0 = time.monotonic()
        self._stopped = False  # after an error: transfers still winding down print nothing

    def _count(self, outcome: Outcome, size: int) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        if outcome in ("pushed", "pulled"):
            self.bytes += size

    def blob_start(self, digest: Digest, size: int, label: str) -> None:
        """Remember when the transfer began."""
        with self._lock:
            self._started[digest] = time.monotonic()

    def blob_progress(self, digest: Digest, done: int) -> None:
        """Ignored by the base class."""

    def blob_done(self, digest: Digest, size: int, outcome: Outcome) -> None:
        """Count the outcome."""
        with self._lock:
            self._count(outcome, size)

    def note(self, text: str) -> None:
        """Ignored by the base class."""

    def summary(self) -> str:
        """``pushed 3 blobs (12.3 MB) in 1.2 s, 2 already present, 1 mounted``."""
        secs = time.monotonic() - self.t0
        moved = self.counts.get("pushed", 0) + self.counts.get("pulled", 0)
        parts = [
            f"{self.verb} {moved} blob{'s' if moved != 1 else ''} ({human_bytes(self.bytes)}) in {secs:.1f} s"
        ]
        if moved and secs > 0:
            parts[0] += f" ({human_bytes(self.bytes / secs)}/s)"
        present = self.counts.get("exists", 0) + self.counts.get("present", 0)
        if present:
            parts.append(f"{present} already present")
        if self.counts.get("mounted"):
            parts.append(f"{self.counts['mounted']} mounted")
        return ", ".join(parts)

    def finish(self, final: str | None = None) -> None:
        """Stop any live display and print the summary (and ``final``) on stderr."""
        self._write(self.summary())
        if final:
            self._write(final)

    def stop(self) -> None:
        """Stop any live display (on errors); no summary, and nothing more from blobs still winding down."""
        with self._lock:
            self._stopped = True

    def _write(self, line: str) -> None:
        with self._lock:
            if self._stopped:
                return
            self.stream.write(line + "\n")
            self.stream.flush()


class QuietReporter(CliReporter):
    """Prints nothing."""

    def finish(self, final: str | None = None) -> None:
        """Print nothing."""


class PlainReporter(CliReporter):
    """One line per blob event, for logs and pipes."""

    def blob_start(self, digest: Digest, size: int, label: str) -> None:
        """``sha256:ab12… layer 1: pushing 12.3 MB``."""
        super().blob_start(digest, size, label)
        gerund = {"pushed": "pushing", "pulled": "pulling"}.get(self.verb, self.verb)
        self._write(f"{_short(digest)}: {gerund} {label} ({human_bytes(size)})")

    def blob_done(self, digest: Digest, size: int, outcome: Outcome) -> None:
        """``sha256:ab12…: pushed 12.3 MB in 0.4 s (30.1 MB/s)``."""
        super().blob_done(digest, size, outcome)
        if outcome in ("pushed", "pulled"):
            with self._lock:
                t = time.monotonic() - self._started.get(digest, self.t0)
            rate = f" ({human_bytes(size / t)}/s)" if t > 0 else ""
            self._write(f"{_short(digest)}: {outcome} {human_bytes(size)} in {t:.1f} s{rate}")
        elif outcome in ("exists", "present"):
            self._write(f"{_short(digest)}: already present")
        else:
            self._write(f"{_short(digest)}: {outcome}")

    def note(self, text: str) -> None:
        """Print the note."""
        self._write(text)


class TTYReporter(CliReporter):
    """rich progress bars: one per blob with bytes and rate."""

    def __init__(self, stream: TextIO, verb: str) -> None:
        super().__init__(stream, verb)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._console = Console(file=stream, stderr=stream is sys.stderr)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self._console,
            transient=False,
        )
        self._tasks: dict[Digest, Any] = {}
        self._progress.start()

    def blob_start(self, digest: Digest, size: int, label: str) -> None:
        """Add a bar."""
        super().blob_start(digest, size, label)
        with self._lock:
            if digest not in self._tasks and not self._stopped:
                self._tasks[digest] = self._progress.add_task(f"{_short(digest)} {label}", total=size)

    def blob_progress(self, digest: Digest, done: int) -> None:
        """Move the bar."""
        task = self._tasks.get(digest)
        if task is not None:
            self._progress.update(task, completed=done)

    def blob_done(self, digest: Digest, size: int, outcome: Outcome) -> None:
        """Complete the bar (or show a one-line status for skipped blobs)."""
        super().blob_done(digest, size, outcome)
        task = self._tasks.get(digest)
        if task is not None:
            self._progress.update(task, completed=size, description=f"{_short(digest)} {outcome}")
        elif outcome in ("exists", "present", "mounted") and not self._stopped:
            label = "already present" if outcome != "mounted" else "mounted"
            self._progress.console.print(f"{_short(digest)}: {label}", highlight=False)

    def note(self, text: str) -> None:
        """Print above the bars."""
        if not self._stopped:
            self._progress.console.print(text, highlight=False)

    def finish(self, final: str | None = None) -> None:
        """Stop the bars and print the summary."""
        self._progress.stop()
        self._console.print(self.summary(), highlight=False)
        if final:
            self._console.print(final, highlight=False)

    def stop(self) -> None:
        """Stop the live display without a summary (on errors)."""
        super().stop()
        self._progress.stop()


def make_reporter(mode: str, *, verb: str = "pushed", stream: TextIO | None = None) -> CliReporter:
    """The reporter for ``--progress MODE`` writing to ``stream`` (default stderr)."""
    out = stream if stream is not None else sys.stderr
    if mode == "auto":
        mode = "tty" if out.isatty() else "plain"
    if mode == "quiet":
        return QuietReporter(out, verb)
    if mode == "tty":
        return TTYReporter(out, verb)
    return PlainReporter(out, verb)


@contextmanager
def reporting(mode: str, *, verb: str) -> Iterator[CliReporter]:
    """A reporter for one transfer: the summary printed when it succeeds, the display stopped when it fails."""
    rep = make_reporter(mode, verb=verb)
    try:
        yield rep
    except BaseException:
        rep.stop()
        raise
    rep.finish()
