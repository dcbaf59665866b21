"""``idpbuilder cert export``: write the idpbuilder cluster CA where docker, podman or the user wants it."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

import click

from idpbuilder.cli.main import AppContext
from idpbuilder.cli.options import kube_options
from idpbuilder.cluster.discovery import ca_cache_path
from idpbuilder.cluster.session import open_cluster
from idpbuilder.errors import ClusterError, UsageError

__all__ = ["command", "export", "export_targets"]

log = logging.getLogger("idpbuilder.cert")


def export_targets(host: str, *, docker: bool, podman: bool, home: Path, euid: int) -> list[Path]:
    """Where docker (``~/.docker/certs.d``) and podman (``/etc/containers/certs.d``, rootless: ``~/.config``) look."""
    out: list[Path] = []
    if docker:
        out.append(home / ".docker" / "certs.d" / host / "ca.crt")
    if podman:
        base = Path("/etc/containers/certs.d") if euid == 0 else home / ".config" / "containers" / "certs.d"
        out.append(base / host / "ca.crt")
    return out


def _write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        raise UsageError(
            f"cannot write {path}: {e.strerror or e}", hint="choose a writable place with -o FILE"
        ) from None


@click.group("cert")
def command() -> None:
    """The idpbuilder cluster's certificate authority."""


@command.command("export")
@click.option("--docker", is_flag=True, help="Write ~/.docker/certs.d/<registry>/ca.crt.")
@click.option(
    "--podman", is_flag=True, help="Write /etc/containers/certs.d/<registry>/ca.crt (rootless: ~/.config/…)."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the CA to FILE ('-' = stdout, the default when no destination is given).",
)
@click.option(
    "--registry", metavar="URL", default=None, help="The idpbuilder registry [default: discovered]."
)
@kube_options
@click.pass_obj
def export(
    app: AppContext,
    docker: bool,
    podman: bool,
    output: Path | None,
    registry: str | None,
    kubeconfig: Path | None,
    kube_context: str | None,
) -> None:
    """Export the CA from secret default/idpbuilder-cert so docker/podman trust the idpbuilder registry."""
    cluster = open_cluster(app.home, kubeconfig=kubeconfig, kube_context=kube_context, registry=registry)
    try:
        host = cluster.registry().host
        try:
            pem = cluster.ca_pem().encode()
        except ClusterError as e:
            cached = ca_cache_path(app.home, host)
            if not cached.is_file():
                raise ClusterError(
                    f"cannot read the idpbuilder CA: {e.message}",
                    hint="is the idpbuilder cluster running? choose it with --kubeconfig/--context "
                    "(check: kubectl get secret -n default idpbuilder-cert)",
                ) from None
            log.warning("cluster not readable (%s); exporting the cached CA %s", e.message, cached)
            pem = cached.read_bytes()
        else:
            cluster.ca_file(host)  # refresh the cache the push path uses
    finally:
        cluster.close()
    targets = export_targets(host, docker=docker, podman=podman, home=Path.home(), euid=os.geteuid())
    if output is not None and str(output) != "-":
        targets.append(output)
    if not targets:
        sys.stdout.write(pem.decode())
        sys.stdout.flush()
        return
    for path in targets:
        _write(path, pem)
        log.info("wrote the CA of %s to %s", host, path)
        click.echo(str(path))
    if output is not None and str(output) == "-":
        sys.stdout.write(pem.decode())
