"""Top-level test configuration: the shared fixtures live in tests/fixtures (see fixtures/plugin.py)."""

import sys
from pathlib import Path

# "fixtures" must import the same way whether or not tests/ is a package
sys.path.insert(0, str(Path(__file__).resolve().parent))

pytest_plugins = ["fixtures.plugin", "fixtures.docker"]
