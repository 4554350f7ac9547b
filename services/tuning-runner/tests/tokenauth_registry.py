"""Debian's `docker-registry` with bearer-token auth, and the token server it trusts.

The registry is configured with `auth.token` (realm, service, issuer, a root certificate): it
answers 401 with a `Bearer realm=...,service=...,scope=...` challenge and accepts only JWTs (ES256)
signed by the key of that certificate and granting the repository action asked for. The token
server here plays the part of an identity service (like Docker Hub's or ACR's): on loopback, it
checks Basic credentials and issues such tokens for the scopes requested.
"""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kaito_testing.ports import free_port
from kaito_testing.registry import RegistryUnavailableError, find_registry_binary

SERVICE = "kaito-test-registry"
ISSUER = "kaito-test-token-issuer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _Signer:
    """An EC P-256 key and its self-signed certificate (the registry's root bundle)."""

    def __init__(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(self._key, hashes.SHA256())
        )
        self.cert_pem = self.cert.public_bytes(serialization.Encoding.PEM)
        self._cert_der = self.cert.public_bytes(serialization.Encoding.DER)

    def token(self, subject: str, access: list[dict[str, Any]]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(self._cert_der).decode()]}
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        der = self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _parse_scopes(values: list[str]) -> list[dict[str, Any]]:
    access = []
    for scope in values:
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        if kind and name:
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
    return access


@dataclass
class TokenAuthRegistry:
    """`host` is `127.0.0.1:<port>` (plain HTTP); the token server runs on another port."""

    workdir: Path
    username: str = "kaito"
    password: str = "kaito-token-password"
    port: int = field(default_factory=free_port)
    token_requests: list[dict[str, list[str]]] = field(default_factory=list)
    _process: subprocess.Popen[bytes] | None = None
    _server: ThreadingHTTPServer | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def docker_config(self, password: str | None = None) -> str:
        auth = base64.b64encode(f"{self.username}:{password or self.password}".encode()).decode()
        return json.dumps({"auths": {self.host: {"auth": auth}}})

    def _serve_tokens(self, signer: _Signer) -> str:
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlparse(self.path)
                query = urllib.parse.parse_qs(url.query)
                owner.token_requests.append(query)
                if url.path != "/token" or self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                token = signer.token(owner.username, _parse_scopes(query.get("scope", [])))
                body = json.dumps({"token": token, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}/token"

    def start(self, timeout: float = 30.0) -> TokenAuthRegistry:
        binary = find_registry_binary()
        if binary is None:
            raise RegistryUnavailableError(
                "docker-registry not found; run hack/install-registry.sh"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        signer = _Signer()
        bundle = self.workdir / "token-root.pem"
        bundle.write_bytes(signer.cert_pem)
        realm = self._serve_tokens(signer)
        config = self.workdir / "config.yml"
        config.write_text(
            json.dumps(
                {
                    "version": 0.1,
                    "log": {"level": "warn", "accesslog": {"disabled": True}},
                    "storage": {"filesystem": {"rootdirectory": str(self.workdir / "storage")}},
                    "http": {"addr": self.host, "secret": "kaito-test-secret"},
                    "auth": {
                        "token": {
                            "realm": realm,
                            "service": SERVICE,
                            "issuer": ISSUER,
                            "rootcertbundle": str(bundle),
                        }
                    },
                }
            )
        )
        log = (self.workdir / "registry.log").open("wb")
        self._process = subprocess.Popen(
            [binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RegistryUnavailableError(f"registry exited: {self.log_tail()}")
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
            except urllib.error.HTTPError as err:
                if err.code == 401 and "Bearer" in err.headers.get("WWW-Authenticate", ""):
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RegistryUnavailableError(f"token-auth registry not ready after {timeout}s")

    def log_tail(self, limit: int = 2000) -> str:
        path = self.workdir / "registry.log"
        return path.read_text(errors="replace")[-limit:] if path.exists() else ""

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
