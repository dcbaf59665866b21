"""A fake Kubernetes API server over HTTPS that requires the kubeconfig's client certificate (mTLS).

It serves exactly what idpbuilder reads: ``GET /api/v1/namespaces/{ns}/secrets/{name}`` and
``GET /apis/idpbuilder.cnoe.io/v1alpha1/localbuilds``. Objects are set per test; every request is logged
with the client certificate's common name.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["FakeKube", "KubeCerts", "localbuild", "secret"]

LOCALBUILDS_PATH = "/apis/idpbuilder.cnoe.io/v1alpha1/localbuilds"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _issue(
    ca_key: ec.EllipticCurvePrivateKey, ca_name: x509.Name, cn: str, *, server: bool
) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if server:
        import ipaddress

        b = b.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    cert = b.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


@dataclass(frozen=True)
class KubeCerts:
    """The API server's CA, its serving certificate and one client certificate (CN=kubernetes-admin)."""

    ca_pem: bytes
    server_cert: Path
    server_key: Path
    client_cert_pem: bytes
    client_key_pem: bytes

    @classmethod
    def create(cls, directory: Path, *, client_cn: str = "kubernetes-admin") -> KubeCerts:
        """A fresh CA plus server and client certificates under ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        name = _name("fake-kubernetes-ca")
        now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        ca = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        s_cert, s_key = _issue(ca_key, name, "kube-apiserver", server=True)
        c_cert, c_key = _issue(ca_key, name, client_cn, server=False)
        (directory / "apiserver.crt").write_bytes(s_cert)
        (directory / "apiserver.key").write_bytes(s_key)
        return cls(
            ca.public_bytes(serialization.Encoding.PEM),
            directory / "apiserver.crt",
            directory / "apiserver.key",
            c_cert,
            c_key,
        )


def secret(namespace: str, name: str, data: dict[str, str]) -> dict[str, Any]:
    """A v1 Secret object with ``data`` base64-encoded as the API server returns it."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def localbuild(
    *,
    host: str,
    port: str | int,
    protocol: str = "https",
    path_routing: bool = False,
    external_url: str | None = None,
    name: str = "localdev",
) -> dict[str, Any]:
    """A ``Localbuild`` object as idpbuilder writes it (spec.buildCustomization, status.gitea.externalURL)."""
    obj: dict[str, Any] = {
        "apiVersion": "idpbuilder.cnoe.io/v1alpha1",
        "kind": "Localbuild",
        "metadata": {"name": name, "resourceVersion": "1"},
        "spec": {
            "buildCustomization": {
                "protocol": protocol,
                "host": host,
                "ingressHost": host,
                "port": str(port),
                "usePathRouting": path_routing,
                "selfSignedCert": "",
                "staticPassword": False,
            }
        },
        "status": {"gitea": {"adminUserSecretNameecret": "gitea-credential"}},
    }
    if external_url is not None:
        obj["status"]["gitea"]["externalURL"] = external_url
    return obj


@dataclass
class _Route:
    status: int
    body: bytes
    content_type: str = "application/json"


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    routes: dict[str, _Route] = field(default_factory=dict)
    log: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, client CN
    delay: float = 0.0


def _not_found(path: str) -> _Route:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"{path} not found",
        "reason": "NotFound",
        "code": 404,
    }
    return _Route(404, json.dumps(body).encode())


class FakeKube:
    """The fake API server on 127.0.0.1 (threaded); ``kubeconfig()`` writes a matching kubeconfig."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.certs = KubeCerts.create(directory / "pki")
        self._state = _State()
        state = self._state

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                import time

                peer = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
                cn = None
                subject: Any = (peer or {}).get("subject", ())
                for rdn in subject:
                    for k, v in rdn:
                        if k == "commonName":
                            cn = v
                path = self.path.split("?", 1)[0]
                with state.lock:
                    state.log.append(("GET", path, cn))
                    route = state.routes.get(path) or _not_found(path)
                    delay = state.delay
                if delay:
                    time.sleep(delay)
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.certs.server_cert), str(self.certs.server_key))
        ctx.verify_mode = ssl.CERT_REQUIRED  # mTLS: the kubeconfig's client certificate is mandatory
        ctx.load_verify_locations(cadata=self.certs.ca_pem.decode())
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def server(self) -> str:
        """The API server URL."""
        return f"https://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop serving; idempotent."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(5)
        self._httpd.server_close()

    # ---- objects --------------------------------------------------------------------------------------------
    def put_raw(self, path: str, status: int, body: bytes, content_type: str = "application/json") -> None:
        """Answer GET ``path`` with exactly this status and body (for broken-object tests)."""
        with self._state.lock:
            self._state.routes[path] = _Route(status, body, content_type)

    def put_secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        """Serve a Secret."""
        self.put_raw(
            f"/api/v1/namespaces/{namespace}/secrets/{name}",
            200,
            json.dumps(secret(namespace, name, data)).encode(),
        )

    def remove(self, path: str) -> None:
        """Answer ``path`` with 404 again."""
        with self._state.lock:
            self._state.routes.pop(path, None)

    def set_localbuilds(self, items: list[dict[str, Any]]) -> None:
        """Serve the ``localbuilds`` list."""
        body = {
            "apiVersion": "idpbuilder.cnoe.io/v1alpha1",
            "kind": "LocalbuildList",
            "metadata": {"resourceVersion": "1"},
            "items": items,
        }
        self.put_raw(LOCALBUILDS_PATH, 200, json.dumps(body).encode())

    def set_delay(self, seconds: float) -> None:
        """Make every answer wait ``seconds`` (to exercise the client timeout)."""
        with self._state.lock:
            self._state.delay = seconds

    @property
    def requests(self) -> list[tuple[str, str, str | None]]:
        """(method, path, client certificate CN) of every request so far."""
        with self._state.lock:
            return list(self._state.log)

    def reset_log(self) -> None:
        """Forget the request log."""
        with self._state.lock:
            self._state.log.clear()

    # ---- kubeconfig -----------------------------------------------------------------------------------------
    def kubeconfig(
        self,
        path: Path,
        *,
        context: str = "kind-localdev",
        current: str | None = "kind-localdev",
        server: str | None = None,
        with_client_cert: bool = True,
    ) -> Path:
        """Write a kubeconfig (YAML-compatible JSON) for this server with inline CA and client cert."""

        def b64(b: bytes) -> str:
            return base64.b64encode(b).decode()

        user: dict[str, Any] = {}
        if with_client_cert:
            user = {
                "client-certificate-data": b64(self.certs.client_cert_pem),
                "client-key-data": b64(self.certs.client_key_pem),
            }
        doc: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [
                {
                    "name": context,
                    "cluster": {
                        "server": server or self.server,
                        "certificate-authority-data": b64(self.certs.ca_pem),
                    },
                }
            ],
            "users": [{"name": context, "user": user}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        }
        if current is not None:
            doc["current-context"] = current
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=1))
        return path
