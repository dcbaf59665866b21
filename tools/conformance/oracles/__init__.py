"""Oracles: other builders whose images ours are compared with.

An oracle implements ``Oracle`` (build one spec in a borrowed workspace, return a ``BuildOutcome`` with
the image read back through an OCI layout) and comes with a ``Differences`` table: the cases where it is
known to differ from BuildKit, judged by their EXPECT.md assertions instead. To add one, write
``oracles/<name>.py`` with its class and table and register it in ``ORACLES``; the runner, the cache
and the judge take any oracle (the cache key holds the oracle's ``version`` line).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tools.conformance.cases import Differences
from tools.conformance.model import BuildOutcome, BuildSpec
from tools.conformance.oracles import buildah

__all__ = ["ORACLES", "Oracle", "OracleKind"]


class Oracle(Protocol):
    """A reference builder."""

    name: str  # in the table's column header and in the reasons ("oracle buildah failed")
    version: str  # its version line: part of the oracle cache key

    def workspace(self) -> AbstractContextManager[Path]:
        """Borrow a private, seeded workspace (storage root) for the builds of one case."""
        ...

    def build(self, workspace: Path, context: Path, spec: BuildSpec, ref: str, tmp: Path) -> BuildOutcome:
        """Build one spec; on success the outcome carries the flattened image."""
        ...

    def cleanup(self) -> None:
        """Remove every workspace made."""
        ...


@dataclass(frozen=True)
class OracleKind:
    """A registered oracle: how to make one and where it differs from BuildKit."""

    name: str
    # (work dir, OCI layout holding the base images, parallel workers) -> oracle
    make: Callable[[Path, Path, int], Oracle]
    differences: Differences


ORACLES: dict[str, OracleKind] = {
    "buildah": OracleKind("buildah", buildah.BuildahOracle, buildah.DIFFERENCES),
}
