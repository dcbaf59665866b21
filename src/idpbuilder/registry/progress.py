"""Progress events from push/pull to whoever displays them (``cli/progress.py``); no printing here."""

from __future__ import annotations

from typing import Literal, Protocol

from idpbuilder.digest import Digest

__all__ = ["NullReporter", "Outcome", "Reporter"]

Outcome = Literal["pushed", "exists", "mounted", "pulled", "present", "failed"]


class Reporter(Protocol):
    """Receives per-blob events; called from worker threads, so implementations must be thread-safe."""

    def blob_start(self, digest: Digest, size: int, label: str) -> None:
        """A blob transfer is about to begin (``label``: config/layer/manifest)."""
        ...

    def blob_progress(self, digest: Digest, done: int) -> None:
        """``done`` bytes of the blob have been transferred (absolute; it drops to 0 on a retry)."""
        ...

    def blob_done(self, digest: Digest, size: int, outcome: Outcome) -> None:
        """The blob is finished: transferred, already there, mounted or failed."""
        ...

    def note(self, text: str) -> None:
        """A one-line status message (e.g. ``pushing manifest``)."""
        ...


class NullReporter:
    """Discards every event."""

    def blob_start(self, digest: Digest, size: int, label: str) -> None:
        """Ignore."""

    def blob_progress(self, digest: Digest, done: int) -> None:
        """Ignore."""

    def blob_done(self, digest: Digest, size: int, outcome: Outcome) -> None:
        """Ignore."""

    def note(self, text: str) -> None:
        """Ignore."""
