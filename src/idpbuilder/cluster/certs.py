"""The idpbuilder cluster's CA for other tools: read it (cached copy as fallback), write it where docker/podman look."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from idpbuilder.cluster.discovery import ca_cache_path
from idpbuilder.cluster.session import open_cluster
from idpbuilder.errors import ClusterError, UsageError

__all__ = ["export_ca", "export_targets", "read_cluster_ca", "write_ca"]

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


def read_cluster_ca(
    home: Path,
    *,
    kubeconfig: Path | None = None,
    kube_context: str | None = None,
    registry: str | None = None,
) -> tuple[str, bytes]:
    """(registry host, CA PEM) from secret default/idpbuilder-cert, else the copy cached under ``home``."""
    cluster = open_cluster(home, kubeconfig=kubeconfig, kube_context=kube_context, registry=registry)
    try:
        host = cluster.registry().host
        try:
            pem = cluster.ca_pem().encode()
        except ClusterError as e:
            cached = ca_cache_path(home, host)
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
    return host, pem


def write_ca(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, mode 0644; UsageError when it cannot be written."""
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


def export_ca(
    home: Path,
    *,
    docker: bool = False,
    podman: bool = False,
    files: tuple[Path, ...] = (),
    kubeconfig: Path | None = None,
    kube_context: str | None = None,
    registry: str | None = None,
) -> tuple[str, bytes, list[Path]]:
    """Read the cluster CA and write it for docker, podman and to ``files``: (host, PEM, paths written)."""
    host, pem = read_cluster_ca(home, kubeconfig=kubeconfig, kube_context=kube_context, registry=registry)
    targets = export_targets(host, docker=docker, podman=podman, home=Path.home(), euid=os.geteuid())
    targets.extend(files)
    for path in targets:
        write_ca(path, pem)
        log.info("wrote the CA of %s to %s", host, path)
    return host, pem, targets
