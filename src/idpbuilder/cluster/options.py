"""The click options every cluster-reading command shares (``--kubeconfig``, ``--context``) and a factory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from idpbuilder.cluster.discovery import IdpCluster

__all__ = ["kube_options", "open_cluster"]

F = TypeVar("F", bound=Callable[..., Any])


def kube_options(fn: F) -> F:
    """Add ``--kubeconfig`` and ``--context`` (passed as ``kubeconfig`` / ``kube_context``)."""
    fn = click.option(
        "--context",
        "kube_context",
        metavar="NAME",
        default=None,
        help="kubeconfig context of the idpbuilder cluster [default: current context, else kind-localdev].",
    )(fn)
    fn = click.option(
        "--kubeconfig",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="kubeconfig of the idpbuilder cluster [default: $KUBECONFIG, else ~/.kube/config].",
    )(fn)
    return fn


def open_cluster(
    home: Path,
    *,
    kubeconfig: Path | None = None,
    kube_context: str | None = None,
    registry: str | None = None,
) -> IdpCluster:
    """An :class:`IdpCluster` for the command's flags (nothing is read until asked)."""
    from idpbuilder.cluster.discovery import IdpCluster
    from idpbuilder.cluster.kube import KubeOptions

    return IdpCluster(KubeOptions(kubeconfig=kubeconfig, context=kube_context), home=home, registry=registry)
