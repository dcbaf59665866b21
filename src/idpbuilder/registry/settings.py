"""What every registry operation is tuned by: credentials, TLS trust, retries, parallelism, chunk sizes."""

from __future__ import annotations

import threading

from idpbuilder._records import dataclass, field
from idpbuilder.credentials.keychain import AnonymousKeychain, Keychain
from idpbuilder.credentials.tls import TrustConfig
from idpbuilder.errors import UsageError
from idpbuilder.registry.retry import RetryPolicy

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MONOLITHIC_THRESHOLD",
    "MAX_CHUNK_SIZE",
    "RegistrySettings",
    "endpoint_host",
]

MiB = 1 << 20
DEFAULT_CHUNK_SIZE = 256 * MiB
DEFAULT_MONOLITHIC_THRESHOLD = 64 * MiB
MAX_CHUNK_SIZE = 1000 * MiB  # the idpbuilder ingress rejects bodies over 1 GiB with 413


def endpoint_host(registry: str) -> str:
    """The host to talk to for a registry name (Docker Hub → ``registry-1.docker.io``)."""
    return "registry-1.docker.io" if registry in ("docker.io", "index.docker.io") else registry


@dataclass(frozen=True)
class RegistrySettings:
    """What every registry operation needs: credentials, TLS trust, retry policy and upload tuning."""

    keychain: Keychain = field(default_factory=AnonymousKeychain)
    trust: TrustConfig = field(default_factory=TrustConfig)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    jobs: int = 4
    chunk_size: int = DEFAULT_CHUNK_SIZE
    monolithic_threshold: int = DEFAULT_MONOLITHIC_THRESHOLD
    cancel: threading.Event = field(default_factory=threading.Event, compare=False)

    def __post_init__(self) -> None:
        if self.jobs < 1:
            raise UsageError("--jobs must be at least 1")
        if not (1 <= self.chunk_size <= MAX_CHUNK_SIZE):
            raise UsageError(
                f"the chunk size must be between 1 byte and {MAX_CHUNK_SIZE // MiB} MiB",
                hint="use e.g. --chunk-size 256M (proxies such as the idpbuilder ingress reject bodies over 1 GiB)",
            )
