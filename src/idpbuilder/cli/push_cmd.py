"""``idpbuilder push IMAGE [DEST]``: push from the local store, an OCI layout dir or a docker-archive tar.

Prints ``REF@sha256:<manifest digest>`` on stdout; progress and logs go to stderr. ``push_options`` and
``run_push`` are shared with ``build --push``; ``registry_options``, ``make_settings``, ``cluster_session``
and ``with_registry_ca`` with ``pull`` (credentials and CA of the idpbuilder registry come from the cluster
for both, SPEC §4).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from idpbuilder.errors import UsageError

if TYPE_CHECKING:
    from idpbuilder.cli.main import AppContext
    from idpbuilder.cli.progress import CliReporter
    from idpbuilder.cluster.discovery import IdpCluster
    from idpbuilder.credentials.keychain import Keychain
    from idpbuilder.credentials.tls import TrustConfig
    from idpbuilder.reference import Reference
    from idpbuilder.registry.client import RegistrySettings
    from idpbuilder.registry.push import PushResult
    from idpbuilder.registry.target import PushTarget

__all__ = [
    "PushOptions",
    "cluster_session",
    "command",
    "make_settings",
    "parse_size",
    "push_options",
    "registry_options",
    "run_push",
    "with_registry_ca",
]

log = logging.getLogger("idpbuilder.push")
F = TypeVar("F", bound=Callable[..., Any])
MiB = 1 << 20


def parse_size(text: str) -> int:
    """``256M``, ``64MiB``, ``1G``, ``1048576`` → bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)(?:i?[bB])?\s*", text)
    if not m:
        raise UsageError(f"invalid size {text!r}", hint="use e.g. 256M, 64MiB or a number of bytes")
    mult = {"": 1, "k": 1 << 10, "m": MiB, "g": 1 << 30}[m.group(2).lower()]
    return int(m.group(1)) * mult


@dataclass(frozen=True)
class PushOptions:
    """Registry, credential, TLS and transfer flags of push/pull/build --push."""

    registry: str | None = None
    username: str | None = None
    password: str | None = None
    token: str | None = None
    insecure: bool = False
    ca_file: Path | None = None
    retries: int | None = None
    jobs: int = 4
    chunk_size: str | None = None
    progress: str = "auto"
    kubeconfig: Path | None = None  # the idpbuilder cluster (registry, credentials and CA discovery)
    kube_context: str | None = None

    @classmethod
    def from_kwargs(cls, kw: dict[str, Any]) -> PushOptions:
        """Pick the option values out of a click callback's keyword arguments."""
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in kw.items() if k in names and v is not None})


def registry_options(fn: F) -> F:
    """Credentials, TLS, retries, jobs, progress and cluster (``--kubeconfig``/``--context``) flags (push, pull)."""
    from idpbuilder.cli.progress import PROGRESS_MODES
    from idpbuilder.cluster.options import kube_options

    fn = kube_options(fn)

    opts: Sequence[Callable[[F], F]] = (
        click.option(
            "-u", "--username", default=None, help="Registry user name [env IDPBUILDER_REGISTRY_USERNAME]."
        ),
        click.option(
            "-p", "--password", default=None, help="Registry password [env IDPBUILDER_REGISTRY_PASSWORD]."
        ),
        click.option(
            "-t",
            "--token",
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
            "--jobs",
            type=click.IntRange(min=1, max=64),
            default=4,
            show_default=True,
            help="Parallel blob transfers.",
        ),
        click.option(
            "--progress",
            type=click.Choice(PROGRESS_MODES),
            default="auto",
            show_default=True,
            help="Progress display on stderr.",
        ),
    )
    for o in reversed(opts):
        fn = o(fn)
    return fn


def push_options(fn: F) -> F:
    """``registry_options`` plus ``--registry`` and ``--chunk-size``."""
    fn = click.option(
        "--chunk-size",
        default=None,
        metavar="SIZE",
        help="PATCH chunk size for blobs over 64 MiB (or over SIZE when smaller), e.g. 256M; under 1G "
        "(proxies such as the idpbuilder ingress reject bigger bodies) [default: 256M].",
    )(fn)
    fn = click.option(
        "--registry",
        default=None,
        metavar="URL",
        help="Registry for references without a host [env IDPBUILDER_REGISTRY_URL; "
        "default https://gitea.cnoe.localtest.me:8443].",
    )(fn)
    return registry_options(fn)


@contextmanager
def cluster_session(app: AppContext, opts: PushOptions) -> Iterator[IdpCluster]:
    """The idpbuilder cluster of ``--kubeconfig``/``--context``/``--registry`` (read lazily), closed on exit."""
    from idpbuilder.cluster.options import open_cluster

    cluster = open_cluster(
        app.home, kubeconfig=opts.kubeconfig, kube_context=opts.kube_context, registry=opts.registry
    )
    try:
        yield cluster
    finally:
        cluster.close()


def with_registry_ca(settings: RegistrySettings, cluster: IdpCluster, registry: str) -> RegistrySettings:
    """``settings`` also trusting the cluster's CA when ``registry`` is the idpbuilder registry."""
    from idpbuilder.cluster.provider import with_cluster_ca

    trust = with_cluster_ca(settings.trust, cluster, registry)
    return settings if trust is settings.trust else dataclasses.replace(settings, trust=trust)


def make_settings(
    app: AppContext,
    opts: PushOptions,
    *,
    cluster: IdpCluster | None = None,
    plugins: Sequence[Keychain] = (),
    trust_hook: Callable[[TrustConfig], TrustConfig] | None = None,
) -> RegistrySettings:
    """RegistrySettings from the flags: keychain (flags > env > docker config > plugins > cluster secret >
    anonymous), TLS, retry. The cluster's CA is added per registry by :func:`with_registry_ca`."""
    from idpbuilder.credentials.keychain import default_keychain
    from idpbuilder.credentials.tls import TrustConfig
    from idpbuilder.registry.client import DEFAULT_CHUNK_SIZE, DEFAULT_MONOLITHIC_THRESHOLD, RegistrySettings
    from idpbuilder.registry.retry import RetryPolicy

    if cluster is not None:
        from idpbuilder.cluster.provider import ClusterKeychain

        plugins = (*plugins, ClusterKeychain(cluster))
    keychain = default_keychain(
        username=opts.username, password=opts.password, token=opts.token, plugins=plugins
    )
    trust = TrustConfig.from_options(
        ca_file=opts.ca_file, insecure=opts.insecure, cert_dirs=(app.home / "certs",)
    )
    if trust_hook is not None:
        trust = trust_hook(trust)
    chunk = parse_size(opts.chunk_size) if opts.chunk_size else DEFAULT_CHUNK_SIZE
    return RegistrySettings(
        keychain=keychain,
        trust=trust,
        retry=RetryPolicy.from_options(retries=opts.retries),
        jobs=opts.jobs,
        chunk_size=chunk,
        monolithic_threshold=min(DEFAULT_MONOLITHIC_THRESHOLD, chunk),
    )


def resolve_target(
    image: str,
    dest: str | None,
    source_name: str | None,
    opts: PushOptions,
    *,
    cluster: IdpCluster | None = None,
    keychain: Keychain | None = None,
) -> PushTarget:
    """Where to push: DEST, else the source's own name (a store reference)."""
    from idpbuilder.reference import Reference
    from idpbuilder.registry.target import resolve_push_target

    name = dest or source_name
    if not name:
        raise UsageError(
            f"{image} carries no image name; say where to push it",
            hint="idpbuilder push SOURCE REGISTRY/REPO:TAG",
        )
    return resolve_push_target(Reference.parse(name), opts.registry, cluster=cluster, keychain=keychain)


def _warn_tag(ref: Reference) -> None:
    if ref.tag and ref.tag != ref.tag.lower():
        log.warning("tag %r has capitals; some registries (Gitea) store tags in lower case", ref.tag)


def run_push(
    app: AppContext,
    image: str,
    dest: str | None,
    opts: PushOptions,
    *,
    reporter: CliReporter | None = None,
) -> PushResult:
    """Push IMAGE (store ref, ``oci:DIR[:tag]``, layout dir or archive) to DEST / its own name."""
    from idpbuilder.cli.progress import make_reporter
    from idpbuilder.registry.client import RegistryClient
    from idpbuilder.registry.locations import BlobLocations
    from idpbuilder.registry.push import push_image
    from idpbuilder.registry.source import open_source

    def store_factory() -> Any:
        from idpbuilder.store.layout import Store

        return Store.open(app.home)

    source = open_source(image, store_factory, tmp_dir=app.home / "tmp")
    try:
        stored_name = source.name if dest is None else None
        if dest is None and source.name is not None and not _is_store_source(source):
            stored_name = source.name if _looks_like_reference(source.name) else None
        with cluster_session(app, opts) as cluster:
            settings = make_settings(app, opts, cluster=cluster)
            target = resolve_target(
                image, dest, stored_name, opts, cluster=cluster, keychain=settings.keychain
            )
            _warn_tag(target.reference)
            ref = target.reference
            assert ref.registry is not None
            settings = with_registry_ca(settings, cluster, ref.registry)
            # resolve the credentials now: the cluster is read here, and closed before the transfer
            credential = settings.keychain.resolve(ref.registry)
        rep = reporter or make_reporter(opts.progress, verb="pushed")
        locations = BlobLocations(app.home / "work" / "registry" / "blob-locations.json")
        client = RegistryClient(ref.registry, settings, scheme=target.scheme, credential=credential)
        try:
            result = push_image(source, ref, client, reporter=rep, locations=locations)
        except BaseException:
            rep.stop()
            raise
        finally:
            client.close()
        locations.save()
        if reporter is None:
            rep.finish()
        return result
    finally:
        source.close()


def _is_store_source(source: Any) -> bool:
    from idpbuilder.registry.source import StoreSource

    return isinstance(source, StoreSource) and source.cleanup is None  # not a loaded archive


def _looks_like_reference(name: str) -> bool:
    from idpbuilder.reference import Reference

    try:
        return Reference.parse(name).registry is not None
    except UsageError:
        return False


@click.command("push")
@click.argument("image")
@click.argument("dest", required=False)
@push_options
@click.pass_obj
def command(app: AppContext, /, image: str, dest: str | None, **kw: Any) -> None:
    """Push IMAGE (from the local store, an OCI layout dir `oci:DIR[:TAG]`, or a docker-archive tar) to
    DEST or to its own name; a name without a registry goes to --registry / the idpbuilder Gitea.
    Prints REF@sha256:<manifest digest>."""
    result = run_push(app, image, dest, PushOptions.from_kwargs(kw))
    click.echo(result.pinned)
