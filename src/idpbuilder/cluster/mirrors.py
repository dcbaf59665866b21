"""Docker Hub mirrors, as docker's ``registry-mirrors``: Docker Hub references are fetched from each mirror in turn,
then from Docker Hub itself. The image keeps its Docker Hub name in the store (``docker.io/library/busybox:latest``).

A mirror is ``host[:port]`` or an ``http(s)://host[:port]`` URL without a path; loopback mirrors may speak plain
HTTP, any other plain-HTTP mirror needs ``--insecure`` (as docker needs ``insecure-registries``). A mirror that
fails (down, not found, refused) is skipped with a warning after few attempts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from idpbuilder import _records
from idpbuilder.errors import IdpError, Interrupted, UsageError
from idpbuilder.reference import DOCKER_HUB, Reference

if TYPE_CHECKING:
    from idpbuilder.cluster.session import RegistryConnection, RegistryOptions

__all__ = ["mirror_host", "via_mirrors"]

log = logging.getLogger("idpbuilder.pull")
T = TypeVar("T")
_MIRROR_RETRIES = 2


def mirror_host(text: str) -> str:
    """``https://mirror.example:5000/`` → ``mirror.example:5000``; UsageError for a path, query or bad scheme."""
    t = text.strip()
    url = urlsplit(t if "://" in t else f"//{t}")
    if url.scheme not in ("", "http", "https"):
        raise UsageError(
            f"registry mirror {text!r}: unsupported scheme {url.scheme!r}", hint="use https:// or http://"
        )
    if url.path.strip("/") or url.query or url.fragment or not url.netloc or "@" in url.netloc:
        raise UsageError(
            f"registry mirror {text!r} must be a host[:port] or URL without a path",
            hint="e.g. --registry-mirror https://mirror.gcr.io or IDPBUILDER_REGISTRY_MIRRORS=localhost:5000",
        )
    return url.netloc.lower()


def via_mirrors(
    home: Path,
    opts: RegistryOptions,
    ref: Reference,
    fetch: Callable[[RegistryConnection, Reference], T],
) -> T | None:
    """``fetch(connection to a mirror, ref)`` for the first mirror that serves Docker Hub reference ``ref``;
    None when ``ref`` is not on Docker Hub, no mirror is set, or every mirror failed (then use Docker Hub)."""
    from idpbuilder.cluster.session import open_registry

    r = ref.for_pull()
    if r.registry != DOCKER_HUB or not opts.mirrors:
        return None
    hosts = [mirror_host(m) for m in opts.mirrors]
    mopts = _records.replace(opts, retries=min(opts.retries or _MIRROR_RETRIES, _MIRROR_RETRIES), mirrors=())
    for host in hosts:
        try:
            with open_registry(home, mopts, r.with_registry(host)) as conn:
                result = fetch(conn, r)
            log.info("pulled %s from mirror %s", r, host)
            return result
        except Interrupted:
            raise
        except IdpError as e:
            log.warning(
                "mirror %s: %s; trying %s",
                host,
                e.message,
                "the next mirror" if host != hosts[-1] else "Docker Hub",
            )
    return None
