"""OCI / Docker media types and the small value types shared by every layer of the tool."""

from __future__ import annotations

import json
import platform as _platform
from typing import Any

from idpbuilder._records import dataclass, field
from idpbuilder.digest import Digest, sha256_bytes
from idpbuilder.errors import UsageError

__all__ = [
    "ANNOTATION_REF_NAME",
    "Descriptor",
    "Platform",
    "canonical_json",
    "MT_DOCKER_CONFIG",
    "MT_DOCKER_LAYER_GZIP",
    "MT_DOCKER_MANIFEST",
    "MT_DOCKER_MANIFEST_LIST",
    "MT_OCI_CONFIG",
    "MT_OCI_INDEX",
    "MT_OCI_LAYER",
    "MT_OCI_LAYER_GZIP",
    "MT_OCI_LAYER_ZSTD",
    "MT_OCI_MANIFEST",
    "INDEX_TYPES",
    "MANIFEST_TYPES",
]

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

MANIFEST_TYPES = frozenset({MT_OCI_MANIFEST, MT_DOCKER_MANIFEST})
INDEX_TYPES = frozenset({MT_OCI_INDEX, MT_DOCKER_MANIFEST_LIST})
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"

_GO_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "i686": "386",
    "i386": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


@dataclass(frozen=True)
class Platform:
    """An OCI platform: os/architecture[/variant]."""

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``os/arch[/variant]`` (``linux/amd64``, ``linux/arm64/v8``)."""
        parts = text.strip().lower().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise UsageError(f"invalid platform {text!r}", hint="use os/arch[/variant], e.g. linux/amd64")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None).normalized()

    @classmethod
    def host(cls) -> Platform:
        """The platform of this machine."""
        arch = _GO_ARCH.get(_platform.machine().lower(), _platform.machine().lower())
        return cls("linux", arch, "v8" if arch == "arm64" else None)

    def normalized(self) -> Platform:
        arch = _GO_ARCH.get(self.architecture, self.architecture)
        variant = self.variant
        if arch == "arm64" and variant is None:
            variant = "v8"
        return Platform(self.os, arch, variant)

    def matches(self, other: Platform) -> bool:
        """True when ``other`` (from an index) satisfies this requested platform."""
        a, b = self.normalized(), other.normalized()
        if a.os != b.os or a.architecture != b.architecture:
            return False
        return a.variant is None or b.variant is None or a.variant == b.variant

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            d["variant"] = self.variant
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Platform:
        return cls(str(d.get("os", "linux")), str(d.get("architecture", "amd64")), d.get("variant"))


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: Digest
    size: int
    annotations: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    platform: Platform | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.platform:
            d["platform"] = self.platform.to_json()
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Descriptor:
        plat = d.get("platform")
        return cls(
            media_type=str(d.get("mediaType", "")),
            digest=Digest.parse(str(d["digest"])),
            size=int(d["size"]),
            annotations=dict(d.get("annotations") or {}),
            platform=Platform.from_json(plat) if plat else None,
        )

    @classmethod
    def for_bytes(cls, media_type: str, data: bytes, **kw: Any) -> Descriptor:
        return cls(media_type, sha256_bytes(data), len(data), **kw)


def canonical_json(obj: Any) -> bytes:
    """Compact, key-sorted JSON bytes (deterministic digests for configs and manifests)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
