"""Fixtures for the cluster tests: a fake mTLS Kubernetes API server, a kubeconfig, the fake idpbuilder install."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .idpenv import gitea_localhost, home_with_myapp, idp
from .kubefake import FakeKube

__all__ = ["gitea_localhost", "home_with_myapp", "idp", "kube", "kubeconfig"]


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[FakeKube]:
    """A running fake API server with nothing in it (every object 404s)."""
    k = FakeKube(tmp_path / "kube")
    yield k
    k.stop()


@pytest.fixture
def kubeconfig(kube: FakeKube, tmp_path: Path) -> Path:
    """A kubeconfig for ``kube`` with context kind-localdev as the current context."""
    return kube.kubeconfig(tmp_path / "kubeconfig")
