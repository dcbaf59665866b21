"""What a build is asked for (``BuildOptions``), what it returns (``BuildResult``) and the build args
BuildKit defines without a declaration (platform args, proxy args)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from idpbuilder._records import dataclass, field
from idpbuilder.digest import Digest
from idpbuilder.image import Layer
from idpbuilder.oci import Descriptor, Platform

__all__ = ["PROXY_ARGS", "BuildOptions", "BuildResult", "CacheEntry", "default_dockerfile", "platform_args"]

# build args that reach RUN without an ARG, and are never reported as unused
PROXY_ARGS = frozenset(
    {
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "FTP_PROXY",
        "ftp_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
    }
)


@dataclass(frozen=True)
class BuildOptions:
    """Everything a build needs from the user."""

    context: Path
    dockerfile: Path | None = None  # default: context/Dockerfile
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    no_cache: bool = False
    network: str = "host"
    secrets: Mapping[str, Path | str] = field(default_factory=dict)  # id -> file path (or value for env=)
    source_date_epoch: int | None = None
    dockerfile_text: str | None = None  # the Dockerfile itself (``-f -``); ``dockerfile`` then only names it
    pull: bool = False  # always resolve base images in the registry, never from the store
    # ``--build-context NAME=VALUE``: ``docker-image://REF`` or an absolute directory
    build_contexts: Mapping[str, str] = field(default_factory=dict)
    ssh: Mapping[str, Path] = field(default_factory=dict)  # ``--ssh ID=SOCKET``: agent sockets for RUN
    # BuildKit's entitlements (--allow): "security.insecure" lets RUN --security=insecure run privileged
    allow: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CacheEntry:
    """One build-cache record a build used or made, as a remote cache exports it: its key, the key it
    follows (the stage's chain before the step), the record and the stage's layers after the step."""

    stage: int
    parent: str
    key: str
    record: Mapping[str, Any]
    layers: tuple[Layer, ...]


@dataclass(frozen=True)
class BuildResult:
    """The built image: manifest descriptor, image id (config digest) and the tags set."""

    manifest: Descriptor
    image_id: Digest
    tags: tuple[str, ...]
    steps: int
    cached: int
    layers: tuple[Layer, ...] = ()  # the image's layers, bottom first
    cache_entries: tuple[CacheEntry, ...] = ()  # every record the build used or made, in build order
    final_stages: frozenset[int] = frozenset()  # the target stage and the stages it is based on (FROM)


def default_dockerfile(context: Path) -> Path:
    """CONTEXT/Dockerfile, else a lower-case CONTEXT/dockerfile (as docker does)."""
    p = context / "Dockerfile"
    if not p.exists() and (context / "dockerfile").is_file():
        return context / "dockerfile"
    return p


def platform_args(build: Platform, target: Platform) -> dict[str, str]:
    """BuildKit's predefined platform args (BUILDPLATFORM, TARGETOS, ...) for a build and target platform."""
    return {
        "BUILDPLATFORM": str(build),
        "BUILDOS": build.os,
        "BUILDARCH": build.architecture,
        "BUILDVARIANT": build.variant or "",
        "TARGETPLATFORM": str(target),
        "TARGETOS": target.os,
        "TARGETARCH": target.architecture,
        "TARGETVARIANT": target.variant or "",
    }
