"""HTTP to the local control plane: the API server as its admin (JSON requests, existence and
readiness checks), the components' health endpoints and etcd's JSON gateway."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

from kaito_common.pki import CertPair


class AdminHttp:
    """Requests to one API server with the admin's client certificate."""

    def __init__(self, server: str, ca: CertPair, admin: CertPair) -> None:
        self.server = server
        self._ca = ca
        self._admin = admin
        self._ssl: ssl.SSLContext | None = None

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            context = ssl.create_default_context(cafile=str(self._ca.cert))
            context.load_cert_chain(str(self._admin.cert), str(self._admin.key))
            self._ssl = context
        return self._ssl

    def request_json(self, method: str, path: str, body: Any = None) -> Any:
        """Sends one request and decodes the JSON answer; raises
        :class:`urllib.error.HTTPError` for an error status."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            self.server + path, data=data, headers=headers, method=method
        )
        with urllib.request.urlopen(request, context=self.ssl_context(), timeout=10) as resp:
            return json.loads(resp.read())

    def ok(self, path: str, server: str | None = None, verify: bool = True) -> bool:
        """Whether ``path`` answers 200 (on ``server``, default the API server); without
        ``verify`` the serving certificate is not checked (the components' self-signed ones)."""
        if verify:
            context = self.ssl_context()
        else:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            with urllib.request.urlopen(
                (server or self.server) + path, context=context, timeout=5
            ) as resp:
                return bool(resp.status == 200)
        except (OSError, ValueError):
            return False

    def exists(self, path: str) -> bool:
        """Whether the object at ``path`` exists (False too while the server is unreachable)."""
        try:
            self.request_json("GET", path)
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return False
            raise
        except OSError:
            return False
        return True

    def node_ready(self, name: str) -> bool:
        try:
            node = self.request_json("GET", f"/api/v1/nodes/{name}")
        except OSError:
            return False
        conditions = node.get("status", {}).get("conditions", [])
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def etcd_healthy(etcd_url: str) -> bool:
    try:
        with urllib.request.urlopen(etcd_url + "/health", timeout=2) as resp:
            return bool(json.loads(resp.read()).get("health") == "true")
    except (OSError, ValueError):
        return False


def etcd_post(etcd_url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """One call of etcd's v3 JSON gateway."""
    request = urllib.request.Request(
        etcd_url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        result: dict[str, Any] = json.loads(resp.read())
        return result
