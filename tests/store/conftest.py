"""Fixtures for the store tests: a fresh idpbuilder home with its store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from idpbuilder.store.layout import Store


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty idpbuilder home directory."""
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture
def store(home: Path) -> Iterator[Store]:
    """The store under ``home``."""
    s = Store.open(home)
    yield s
    s.close()
