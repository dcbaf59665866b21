"""The flags shared by commands: the registry set (push, pull, build, ``images --remote``) and the cluster pair.

Kept light (click only): ``images`` loads these on demand and must stay near interpreter start-up time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import click

from idpbuilder.errors import UsageError

if TYPE_CHECKING:
    from idpbuilder.cluster.session import RegistryOptions

__all__ = ["kube_options", "parse_size", "registry_flags", "registry_options"]

F = TypeVar("F", bound=Callable[..., Any])
RegistryCommand = Literal["push", "pull", "build", "images"]
MiB = 1 << 20
ENV_MIRRORS = "IDPBUILDER_REGISTRY_MIRRORS"


def kube_options(fn: F, *, context_flag: str = "--context") -> F:
    """Add ``--kubeconfig`` and ``--context`` (passed as ``kubeconfig`` / ``kube_context``)."""
    fn = click.option(
        context_flag,
        "kube_context",
        metavar="NAME",
        default=None,
        help="kubeconfig context of the idpbuilder cluster [default: current context, else kind-localdev]."
        + (" (--context is the build context here)" if context_flag != "--context" else ""),
    )(fn)
    fn = click.option(
        "--kubeconfig",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="kubeconfig of the idpbuilder cluster (registry, credentials, CA) "
        "[default: $KUBECONFIG, else ~/.kube/config].",
    )(fn)
    return fn


def registry_flags(command: RegistryCommand) -> Callable[[F], F]:
    """The registry flag set of ``command``: registry, credentials, TLS, retries, transfer and cluster flags.

    Every command gets the same flags with the same names, except where its own flags claim them: ``build``
    keeps ``-t`` for ``--tag``, ``--context`` for the build context (the cluster's is ``--kube-context``) and
    its own ``--progress``; ``images`` transfers nothing (no ``--jobs``/``--chunk-size``/``--progress``);
    ``pull`` uploads nothing (no ``--chunk-size``).
    """

    def decorate(fn: F) -> F:
        token_names = ("--token",) if command == "build" else ("-t", "--token")
        opts: list[Callable[[F], F]] = [
            click.option(
                "--registry",
                default=None,
                metavar="URL",
                help="The idpbuilder registry, for references without a host [env IDPBUILDER_REGISTRY_URL; "
                "default: the cluster's, else https://gitea.cnoe.localtest.me:8443].",
            ),
            click.option(
                "-u",
                "--username",
                default=None,
                help="Registry user name [env IDPBUILDER_REGISTRY_USERNAME].",
            ),
            click.option(
                "-p", "--password", default=None, help="Registry password [env IDPBUILDER_REGISTRY_PASSWORD]."
            ),
            click.option(
                *token_names,
                "token",
                default=None,
                help="Registry token: with --username used as the password, alone sent as a Bearer token "
                "[env IDPBUILDER_REGISTRY_TOKEN].",
            ),
            click.option(
                "--insecure", is_flag=True, default=False, help="Skip TLS verification and allow plain HTTP."
            ),
            click.option(
                "--ca-file",
                type=click.Path(dir_okay=False, path_type=Path),
                default=None,
                help="Extra CA certificate (PEM) to trust [env IDPBUILDER_CA_FILE].",
            ),
            click.option(
                "--retries",
                type=click.IntRange(min=1),
                default=None,
                help="Attempts per request on transient failures [default: 10].",
            ),
            click.option(
                "--timeout",
                type=click.FloatRange(min=0, min_open=True),
                default=None,
                metavar="SECONDS",
                help="Seconds without a byte from (or to) the registry before a request counts as stalled and "
                "is retried; a slow transfer that keeps moving never times out [env IDPBUILDER_TIMEOUT; "
                "default: 30].",
            ),
        ]
        if command != "images":
            opts.append(
                click.option(
                    "--jobs",
                    type=click.IntRange(min=1, max=64),
                    default=4,
                    show_default=True,
                    help="Parallel blob transfers.",
                )
            )
        if command in ("push", "build"):
            opts.append(
                click.option(
                    "--chunk-size",
                    default=None,
                    metavar="SIZE",
                    help="PATCH chunk size for blobs over 64 MiB (or over SIZE when smaller), e.g. 256M; "
                    "under 1G (proxies such as the idpbuilder ingress reject bigger bodies) [default: 256M].",
                )
            )
        if command in ("pull", "build"):
            opts.append(
                click.option(
                    "--registry-mirror",
                    "registry_mirrors",
                    multiple=True,
                    metavar="URL",
                    help="A Docker Hub mirror, tried before Docker Hub (repeatable) "
                    "[env IDPBUILDER_REGISTRY_MIRRORS, comma-separated].",
                )
            )
        if command in ("push", "pull"):
            from idpbuilder.cli.progress import PROGRESS_MODES

            opts.append(
                click.option(
                    "--progress",
                    type=click.Choice(PROGRESS_MODES),
                    default="auto",
                    show_default=True,
                    help="Progress display on stderr.",
                )
            )
        fn = kube_options(fn, context_flag="--kube-context" if command == "build" else "--context")
        for o in reversed(opts):
            fn = o(fn)
        return fn

    return decorate


def parse_size(text: str) -> int:
    """``256M``, ``64MiB``, ``1G``, ``1048576`` → bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)(?:i?[bB])?\s*", text)
    if not m:
        raise UsageError(f"invalid size {text!r}", hint="use e.g. 256M, 64MiB or a number of bytes")
    mult = {"": 1, "k": 1 << 10, "m": MiB, "g": 1 << 30}[m.group(2).lower()]
    return int(m.group(1)) * mult


def registry_options(kw: dict[str, Any]) -> RegistryOptions:
    """The :class:`RegistryOptions` of a command's parsed ``registry_flags`` (``--chunk-size`` parsed here)."""
    import os

    from idpbuilder.cluster.session import RegistryOptions

    chunk = kw.get("chunk_size")
    # --registry-mirror beats IDPBUILDER_REGISTRY_MIRRORS (comma-separated, like docker's registry-mirrors)
    mirrors = [m for flag in kw.get("registry_mirrors") or () for m in flag.split(",")]
    if not mirrors:
        mirrors = os.environ.get(ENV_MIRRORS, "").split(",")
    return RegistryOptions.from_kwargs(
        {
            **kw,
            "chunk_size": parse_size(chunk) if chunk else None,
            "mirrors": tuple(m.strip() for m in mirrors if m.strip()),
        }
    )
