"""The robustness tests share the registry tests' image helpers (tests/registry/regkit.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "registry"))
