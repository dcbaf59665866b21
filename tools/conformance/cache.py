"""The oracle cache: an oracle's outcomes per case on disk, so only a cold run pays for the oracle."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from tools.conformance.model import BuildOutcome, CaseSpec

__all__ = ["ORACLE_SCHEMA", "OracleCache", "oracle_key"]

ORACLE_SCHEMA = "4"  # bump when what is cached changes


def oracle_key(case_hash: str, oracle_version: str, base_digest: str, spec: CaseSpec) -> str:
    """The cache key: the case's content hash, the oracle's version, the base image digest, the builds."""
    return hashlib.sha256(
        "\0".join(
            [ORACLE_SCHEMA, case_hash, oracle_version, base_digest]
            + [spec.repair_key()]
            + [b.key() for b in spec.builds]
        ).encode()
    ).hexdigest()


class OracleCache:
    """One JSON file per key under ``root``, written atomically; ``root=None`` caches nothing."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.hits = 0
        self._lock = threading.Lock()
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> list[BuildOutcome] | None:
        """The cached outcomes, or None when absent or unreadable."""
        if self.root is None:
            return None
        p = self.root / f"{key}.json"
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError):
            return None
        with self._lock:
            self.hits += 1
        return [BuildOutcome.from_json(d) for d in data["builds"]]

    def put(self, key: str, case: str, outcomes: list[BuildOutcome]) -> None:
        """Store the outcomes of ``case`` under ``key``."""
        if self.root is None:
            return
        tmp = self.root / f".{key}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_text(json.dumps({"case": case, "builds": [o.to_json() for o in outcomes]}))
        os.replace(tmp, self.root / f"{key}.json")
