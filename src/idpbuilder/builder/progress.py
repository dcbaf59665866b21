"""Build progress as the engine reports it: ``StepInfo`` (one numbered step) and the ``StepReporter`` protocol
the CLI implements (the engine never prints)."""

from __future__ import annotations

from typing import Protocol

from idpbuilder._records import dataclass

__all__ = ["NullReporter", "StepInfo", "StepReporter"]


@dataclass(frozen=True)
class StepInfo:
    """One step as the progress display shows it: ``[stage n/total] TEXT``; ``stage`` is empty when the
    Dockerfile has a single stage (BuildKit then prints ``[n/total] TEXT``).

    As BuildKit numbers them: ``number``/``total`` count the stage's FROM (of an image) and its RUN, COPY,
    ADD and WORKDIR instructions; ``id`` is the build-wide sequence number (``#id`` of output lines)."""

    number: int
    total: int
    stage: str
    text: str
    id: int = 0

    @property
    def label(self) -> str:
        """``[stage n/total] TEXT``, the index padded to the width of the total as BuildKit pads it."""
        stage = f"{self.stage} " if self.stage else ""
        return f"[{stage}{self.number:>{len(str(self.total))}}/{self.total}] {self.text}"


class StepReporter(Protocol):
    """Receives build progress step by step (the CLI renders it; the engine never prints)."""

    def step_start(self, step: StepInfo) -> None: ...

    def step_output(self, step: StepInfo, data: bytes) -> None: ...

    def step_done(self, step: StepInfo, *, cached: bool, seconds: float) -> None: ...

    def warning(self, message: str) -> None: ...


class NullReporter:
    """A step reporter that ignores everything."""

    def step_start(self, step: StepInfo) -> None:
        return None

    def step_output(self, step: StepInfo, data: bytes) -> None:
        return None

    def step_done(self, step: StepInfo, *, cached: bool, seconds: float) -> None:
        return None

    def warning(self, message: str) -> None:
        return None
