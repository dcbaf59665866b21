"""``idpbuilder images --remote``: list the images and tags in the idpbuilder (or any) registry."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from idpbuilder.cluster.discovery import IdpCluster
from idpbuilder.cluster.gitea import gitea_owner
from idpbuilder.cluster.listing import RemoteTag, list_registry
from idpbuilder.cluster.options import kube_options, open_cluster
from idpbuilder.cluster.provider import ClusterKeychain, with_cluster_ca

__all__ = ["list_remote", "remote_options", "run_remote"]

F = TypeVar("F", bound=Callable[..., Any])


def remote_options(fn: F) -> F:
    """The options of ``images --remote``: registry, credentials, TLS and the cluster."""
    decorators = [
        click.option(
            "--remote", is_flag=True, help="List the images in the registry instead of the local store."
        ),
        click.option(
            "--registry",
            metavar="URL",
            default=None,
            help="With --remote: the registry [default: $IDPBUILDER_REGISTRY_URL, the cluster's, "
            "else https://gitea.cnoe.localtest.me:8443].",
        ),
        click.option("--username", default=None, help="With --remote: registry user name."),
        click.option("--password", default=None, help="With --remote: registry password."),
        click.option("--token", default=None, help="With --remote: registry token."),
        click.option(
            "--insecure", is_flag=True, help="With --remote: skip TLS verification, allow plain HTTP."
        ),
        click.option(
            "--ca-file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="With --remote: extra CA certificate (PEM) to trust.",
        ),
        kube_options,
    ]
    for deco in reversed(decorators):
        fn = deco(fn)
    return fn


def list_remote(
    cluster: IdpCluster,
    pattern: str | None,
    *,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
    insecure: bool = False,
    ca_file: Path | None = None,
) -> list[RemoteTag]:
    """The tags in the idpbuilder registry (Gitea package API, else ``/v2``), filtered by ``pattern``."""
    from idpbuilder.credentials.keychain import default_keychain
    from idpbuilder.credentials.tls import TrustConfig
    from idpbuilder.registry.client import RegistryClient, RegistrySettings
    from idpbuilder.registry.retry import RetryPolicy

    ep = cluster.registry()
    keychain = default_keychain(
        username=username, password=password, token=token, plugins=[ClusterKeychain(cluster)]
    )
    trust = with_cluster_ca(TrustConfig.from_options(ca_file=ca_file, insecure=insecure), cluster, ep.host)
    settings = RegistrySettings(keychain=keychain, trust=trust, retry=RetryPolicy.from_options())
    client = RegistryClient(ep.host, settings, scheme=ep.scheme if ep.scheme_given else None)
    try:
        client.ping()
        scheme = client.base_url.split("://", 1)[0]
        api_url = ep.api_url if scheme == ep.scheme else f"{scheme}://{ep.api_url.split('://', 1)[1]}"
        return list_registry(
            client, api_url=api_url, owner=gitea_owner(client.credential.username), pattern=pattern
        )
    finally:
        client.close()


def _since(created: str | None, now: float) -> str:
    if not created:
        return "N/A"
    from idpbuilder.cli.images_cmd import human_duration, parse_created

    dt = parse_created(created)
    if dt is None:
        return "N/A"
    return human_duration(max(0.0, now - dt.timestamp())) + " ago"


def run_remote(
    home: Path,
    pattern: str | None,
    *,
    fmt: str,
    quiet: bool,
    registry: str | None,
    username: str | None,
    password: str | None,
    token: str | None,
    insecure: bool,
    ca_file: Path | None,
    kubeconfig: Path | None,
    kube_context: str | None,
) -> None:
    """List the registry and print it (table, ``-q`` references, or ``--format json``)."""
    from idpbuilder.cli.images_cmd import render_table

    cluster = open_cluster(home, kubeconfig=kubeconfig, kube_context=kube_context, registry=registry)
    try:
        rows = list_remote(
            cluster,
            pattern,
            username=username,
            password=password,
            token=token,
            insecure=insecure,
            ca_file=ca_file,
        )
    finally:
        cluster.close()
    if fmt == "json":
        click.echo(json.dumps([r.to_json() for r in rows], indent=2))
        return
    if quiet:
        for r in rows:
            click.echo(f"{r.name}:{r.tag}")
        return
    now = time.time()
    table = [[r.name, r.tag, _since(r.created, now)] for r in rows]
    click.echo(render_table(["REPOSITORY", "TAG", "CREATED"], table), nl=False)
