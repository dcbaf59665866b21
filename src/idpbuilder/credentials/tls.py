"""TLS trust for registries: system CAs + extra CA files (global and per host) + insecure mode.

``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` are deliberately ignored (requests issue #3829): the
contexts built here are handed to urllib3 as ``ssl_context``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from idpbuilder._records import dataclass, field, replace
from idpbuilder.errors import UsageError

if TYPE_CHECKING:
    import ssl  # imported when a context is first built: plain-HTTP registries never need it

__all__ = ["ENV_CA_FILE", "TrustConfig", "is_loopback"]

ENV_CA_FILE = "IDPBUILDER_CA_FILE"


def is_loopback(registry: str) -> bool:
    """True for ``localhost``, ``127.0.0.0/8`` and ``::1`` (with or without a port)."""
    host = registry
    if host.startswith("["):
        host = host[1 : host.find("]")]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    h = host.lower()
    if h == "localhost" or h.endswith(".localhost") or h == "::1":
        return True
    if not h or not (h[0].isdigit() or ":" in h):
        return False  # a DNS name: no need to import ipaddress (push start-up)
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class TrustConfig:
    """Which certificates to trust and whether plain HTTP / unverified TLS is allowed.

    ``host_ca_files`` maps ``host[:port]`` to CA files for that registry only (the cluster provider
    adds the idpbuilder CA here). ``cert_dirs`` are searched for ``<host>.pem`` and
    ``<host>/ca.crt`` (docker's ``certs.d`` layout) when a context is built.
    """

    insecure: bool = False
    ca_files: tuple[Path, ...] = ()
    host_ca_files: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)
    cert_dirs: tuple[Path, ...] = ()
    _cache: dict[str, ssl.SSLContext] = field(default_factory=dict, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    @classmethod
    def from_options(
        cls,
        *,
        ca_file: str | Path | None = None,
        insecure: bool = False,
        environ: Mapping[str, str] | None = None,
        cert_dirs: tuple[Path, ...] = (),
    ) -> TrustConfig:
        """``--ca-file`` (else ``IDPBUILDER_CA_FILE``) and ``--insecure``; checks the CA file exists."""
        env = os.environ if environ is None else environ
        files: list[Path] = []
        chosen = ca_file or env.get(ENV_CA_FILE) or None
        if chosen:
            p = Path(chosen).expanduser()
            if not p.is_file():
                raise UsageError(
                    f"CA file {p} does not exist",
                    hint="pass --ca-file with a PEM file holding the registry's CA certificate",
                )
            files.append(p)
        return cls(insecure=insecure, ca_files=tuple(files), cert_dirs=cert_dirs)

    def with_host_ca(self, host: str, path: Path) -> TrustConfig:
        """A copy that also trusts ``path`` for ``host``."""
        hosts = dict(self.host_ca_files)
        hosts[host] = (*hosts.get(host, ()), path)
        return replace(self, host_ca_files=hosts, _cache={}, _lock=threading.Lock())

    def allows_plain_http(self, host: str) -> bool:
        """Plain HTTP is allowed with ``--insecure`` and for loopback registries."""
        return self.insecure or is_loopback(host)

    def ca_files_for(self, host: str) -> list[Path]:
        """Every extra CA file that applies to ``host``."""
        files = list(self.ca_files) + list(self.host_ca_files.get(host, ()))
        bare = host.split(":", 1)[0] if host.count(":") == 1 else host
        for d in self.cert_dirs:
            for cand in (d / f"{host}.pem", d / host / "ca.crt", d / f"{bare}.pem"):
                if cand.is_file() and cand not in files:
                    files.append(cand)
        return files

    def ssl_context(self, host: str) -> ssl.SSLContext:
        """The client SSL context for ``host`` (cached)."""
        with self._lock:
            ctx = self._cache.get(host)
            if ctx is None:
                ctx = self._build(host)
                self._cache[host] = ctx
            return ctx

    def _build(self, host: str) -> ssl.SSLContext:
        import ssl

        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        for f in self.ca_files_for(host):
            try:
                ctx.load_verify_locations(cafile=str(f))
            except (ssl.SSLError, OSError) as e:
                raise UsageError(
                    f"cannot load CA file {f}: {getattr(e, 'reason', None) or e.strerror or e}",
                    hint="the file must hold PEM certificates (-----BEGIN CERTIFICATE-----)",
                ) from None
        return ctx
