"""Build through the library with a reporter that records which steps were cached (shared by build tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from idpbuilder.builder import Builder, BuildOptions, StepInfo
from idpbuilder.store.layout import Store


class StepRecorder:
    """A Reporter that keeps (step text, cached) pairs and warnings."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, bool]] = []
        self.warnings: list[str] = []
        self._labels: dict[int, str] = {}

    def step_start(self, step: StepInfo) -> None:
        self._labels[step.id] = step.text

    def step_output(self, step: StepInfo, data: bytes) -> None:
        return None

    def step_done(self, step: StepInfo, *, cached: bool, seconds: float) -> None:
        self.steps.append((self._labels[step.id], cached))

    def warning(self, message: str) -> None:
        self.warnings.append(message)


def build_steps(
    home: Path, ctx: Path, dockerfile: str | None = None, **kw: Any
) -> tuple[dict[str, bool], Any]:
    """Build ``ctx`` (writing ``dockerfile`` first when given); {step text: cached} and the result."""
    if dockerfile is not None:
        ctx.mkdir(parents=True, exist_ok=True)
        (ctx / "Dockerfile").write_text(dockerfile)
    rec = StepRecorder()
    store = Store.open(home)
    try:
        result = Builder(store, BuildOptions(context=ctx, **kw), reporter=rec).build()
    finally:
        store.close()
    return dict(rec.steps), result
