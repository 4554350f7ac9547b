"""The registry client: the few distribution-API calls an adapter image needs, over httpx.

`RegistryClient` is the narrow interface; `HttpRegistryClient` talks to a real registry (basic
auth, or the bearer-token flow announced by a `WWW-Authenticate` challenge); `fake.py` holds an
in-memory registry with the same interface.
"""

from __future__ import annotations

import base64
import hashlib
import re
import ssl
from typing import Protocol
from urllib.parse import urljoin

import httpx

from tuning_runner.oci.auth import Credentials

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST])


class RegistryError(RuntimeError):
    """A registry call failed; the message says which call, the status and the registry's words."""


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class RegistryClient(Protocol):
    """Blob and manifest access in one registry."""

    def blob_exists(self, repository: str, digest: str) -> bool: ...

    def push_blob(self, repository: str, digest: str, data: bytes) -> None: ...

    def get_blob(self, repository: str, digest: str) -> bytes: ...

    def put_manifest(
        self, repository: str, reference: str, manifest: bytes, media_type: str
    ) -> str: ...

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str]: ...


_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """Split `Bearer realm="…",service="…",scope="…"` into the scheme and its parameters."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM.findall(rest))


class HttpRegistryClient:
    """A distribution-API client for one registry host."""

    def __init__(
        self,
        host: str,
        credentials: Credentials | None = None,
        *,
        plain_http: bool = False,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.base = f"{'http' if plain_http else 'https'}://{host}"
        self.credentials = credentials
        self._http = httpx.Client(
            timeout=timeout, follow_redirects=True, transport=transport, verify=verify
        )
        self._authorization: dict[str, str] = {}  # scope -> Authorization header value

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HttpRegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- auth ---------------------------------------------------------------------------------

    def _basic(self) -> str | None:
        creds = self.credentials
        if creds is None or not (creds.username or creds.password):
            return None
        token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        return f"Basic {token}"

    def _fetch_token(self, params: dict[str, str], scope: str) -> str:
        realm = params.get("realm")
        if not realm:
            raise RegistryError("registry asked for a bearer token but named no realm")
        query = {k: v for k, v in {"service": params.get("service"), "scope": scope}.items() if v}
        creds = self.credentials
        if creds is not None and creds.registry_token:
            return creds.registry_token
        if creds is not None and creds.identity_token:
            # OAuth2 refresh-token flow, as docker does for identity tokens.
            resp = self._http.post(
                realm,
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": creds.identity_token,
                    "client_id": "kaito-tuning-runner",
                    **query,
                },
            )
        else:
            headers = {}
            basic = self._basic()
            if basic:
                headers["Authorization"] = basic
            resp = self._http.get(realm, params=query, headers=headers)
        if resp.status_code != 200:
            raise self._fail(f"token request to {realm}", resp)
        body = resp.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            raise RegistryError(f"token response from {realm} held no token")
        return str(token)

    def _authorize(self, challenge: str, scope: str) -> str:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            basic = self._basic()
            if basic is None:
                raise RegistryError(
                    f"registry {self.base} needs credentials and none were given for it "
                    "(check the docker config / imagePushSecret)"
                )
            return basic
        if scheme == "bearer":
            return f"Bearer {self._fetch_token(params, params.get('scope') or scope)}"
        raise RegistryError(f"registry {self.base} asked for unsupported auth scheme {scheme!r}")

    def _request(
        self,
        method: str,
        url: str,
        scope: str,
        *,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        hdrs = dict(headers or {})
        if scope in self._authorization:
            hdrs["Authorization"] = self._authorization[scope]
        resp = self._http.request(method, url, headers=hdrs, content=content, params=params)
        if resp.status_code == 401 and "WWW-Authenticate" in resp.headers:
            self._authorization[scope] = self._authorize(resp.headers["WWW-Authenticate"], scope)
            hdrs["Authorization"] = self._authorization[scope]
            resp = self._http.request(method, url, headers=hdrs, content=content, params=params)
        return resp

    @staticmethod
    def _fail(what: str, resp: httpx.Response) -> RegistryError:
        hint = ""
        if resp.status_code == 401:
            hint = " (credentials rejected: check the docker config / imagePushSecret)"
        elif resp.status_code == 403:
            hint = " (credentials lack permission for this repository)"
        return RegistryError(f"{what} failed with HTTP {resp.status_code}{hint}: {resp.text[:300]}")

    # -- API ----------------------------------------------------------------------------------

    def blob_exists(self, repository: str, digest: str) -> bool:
        scope = f"repository:{repository}:pull,push"
        resp = self._request("HEAD", f"{self.base}/v2/{repository}/blobs/{digest}", scope)
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        raise self._fail(f"HEAD blob {digest}", resp)

    def push_blob(self, repository: str, digest: str, data: bytes) -> None:
        scope = f"repository:{repository}:pull,push"
        start = self._request("POST", f"{self.base}/v2/{repository}/blobs/uploads/", scope)
        if start.status_code != 202 or "Location" not in start.headers:
            raise self._fail(f"starting the upload of blob {digest} to {repository}", start)
        location = urljoin(f"{self.base}/", start.headers["Location"])
        # The Location carries the upload's state in its query: add the digest, keep the rest.
        target = str(httpx.URL(location).copy_merge_params({"digest": digest}))
        done = self._request(
            "PUT",
            target,
            scope,
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        if done.status_code != 201:
            raise self._fail(f"uploading blob {digest} to {repository}", done)

    def get_blob(self, repository: str, digest: str) -> bytes:
        scope = f"repository:{repository}:pull"
        resp = self._request("GET", f"{self.base}/v2/{repository}/blobs/{digest}", scope)
        if resp.status_code != 200:
            raise self._fail(f"GET blob {digest} from {repository}", resp)
        data = resp.content
        if sha256_digest(data) != digest:
            raise RegistryError(f"blob {digest} from {repository} does not match its digest")
        return data

    def put_manifest(
        self, repository: str, reference: str, manifest: bytes, media_type: str
    ) -> str:
        scope = f"repository:{repository}:pull,push"
        resp = self._request(
            "PUT",
            f"{self.base}/v2/{repository}/manifests/{reference}",
            scope,
            content=manifest,
            headers={"Content-Type": media_type},
        )
        if resp.status_code != 201:
            raise self._fail(f"PUT manifest {repository}:{reference}", resp)
        return resp.headers.get("Docker-Content-Digest") or sha256_digest(manifest)

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str]:
        scope = f"repository:{repository}:pull"
        resp = self._request(
            "GET",
            f"{self.base}/v2/{repository}/manifests/{reference}",
            scope,
            headers={"Accept": MANIFEST_ACCEPT},
        )
        if resp.status_code != 200:
            raise self._fail(f"GET manifest {repository}:{reference}", resp)
        media_type = resp.headers.get("Content-Type", OCI_MANIFEST).split(";", 1)[0].strip()
        if reference.startswith("sha256:") and sha256_digest(resp.content) != reference:
            raise RegistryError(f"manifest {repository}@{reference} does not match its digest")
        return resp.content, media_type
