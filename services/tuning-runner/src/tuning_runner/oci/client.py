"""The registry client: the few distribution-API calls an adapter image needs, over httpx.

`RegistryClient` is the narrow interface; `HttpRegistryClient` talks to a real registry (basic
auth, or the bearer-token flow announced by a `WWW-Authenticate` challenge). Blobs stream from
and to disk (never whole in memory) with their digests checked; every call is retried, bounded
and with backoff, on 5xx/429 answers and dropped connections.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, TypeVar
from urllib.parse import urljoin

import httpx

from kaito_common.progress import ProgressLog
from tuning_runner.oci.auth import Credentials
from tuning_runner.oci.blobs import CHUNK_BYTES, file_chunks, sha256_digest
from tuning_runner.oci.retry import (
    RETRYABLE_STATUS,
    RetriesExhaustedError,
    RetryPolicy,
    TransientRegistryError,
    retrying,
)

T = TypeVar("T")
Body = bytes | Callable[[], Iterable[bytes]]
"""A request body: bytes, or a function giving a fresh stream of chunks for each send."""

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST])

# Progress lines of blob transfers (at most one every 5 s per blob; kaito_common.progress).
_PROGRESS_LOG = logging.getLogger("tuning_runner.oci")


class RegistryError(RuntimeError):
    """A registry call failed; the message says which call, the status and the registry's words."""


__all__ = ["HttpRegistryClient", "RegistryClient", "RegistryError", "sha256_digest"]


class RegistryClient(Protocol):
    """Blob and manifest access in one registry."""

    def blob_exists(self, repository: str, digest: str) -> bool: ...

    def push_blob(self, repository: str, digest: str, data: bytes | Path) -> None:
        """Upload a blob given as bytes (small ones) or as a file streamed from disk."""
        ...

    def get_blob(self, repository: str, digest: str) -> bytes:
        """A small blob (a config) in memory; use `download_blob` for layers."""
        ...

    def download_blob(self, repository: str, digest: str, target: Path) -> int:
        """Stream a blob into `target`, checking its digest; returns its size."""
        ...

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
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base = f"{'http' if plain_http else 'https'}://{host}"
        self.credentials = credentials
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
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

    def _send(
        self, method: str, url: str, headers: dict[str, str], body: Body | None, stream: bool
    ) -> httpx.Response:
        content = body() if callable(body) else body
        request = self._http.build_request(method, url, headers=headers, content=content)
        return self._http.send(request, stream=stream)

    def _request(
        self,
        method: str,
        url: str,
        scope: str,
        *,
        headers: dict[str, str] | None = None,
        content: Body | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """One call, authorised for `scope`; a retryable status raises `TransientRegistryError`
        (a streamed response is then closed; otherwise the caller closes it)."""
        hdrs = dict(headers or {})
        if scope in self._authorization:
            hdrs["Authorization"] = self._authorization[scope]
        resp = self._send(method, url, hdrs, content, stream)
        if resp.status_code == 401 and "WWW-Authenticate" in resp.headers:
            resp.close()
            self._authorization[scope] = self._authorize(resp.headers["WWW-Authenticate"], scope)
            hdrs["Authorization"] = self._authorization[scope]
            resp = self._send(method, url, hdrs, content, stream)
        if resp.status_code in RETRYABLE_STATUS:
            text = "" if stream else resp.text[:200]
            resp.close()
            raise TransientRegistryError(f"HTTP {resp.status_code} {text}".strip())
        return resp

    def _retrying(self, what: str, attempt: Callable[[], T]) -> T:
        try:
            return retrying(what, attempt, self.retry, self._sleep)
        except RetriesExhaustedError as err:
            raise RegistryError(str(err)) from err

    @contextmanager
    def _streamed(self, method: str, url: str, scope: str) -> Iterator[httpx.Response]:
        resp = self._request(method, url, scope, stream=True)
        try:
            yield resp
        finally:
            resp.close()

    @staticmethod
    def _fail(what: str, resp: httpx.Response) -> RegistryError:
        hint = ""
        if resp.status_code == 401:
            hint = " (credentials rejected: check the docker config / imagePushSecret)"
        elif resp.status_code == 403:
            hint = " (credentials lack permission for this repository)"
        try:
            text = resp.text[:300]
        except httpx.ResponseNotRead:
            text = resp.read()[:300].decode(errors="replace")
        return RegistryError(f"{what} failed with HTTP {resp.status_code}{hint}: {text}")

    # -- API ----------------------------------------------------------------------------------

    def blob_exists(self, repository: str, digest: str) -> bool:
        scope = f"repository:{repository}:pull,push"
        url = f"{self.base}/v2/{repository}/blobs/{digest}"

        def attempt() -> bool:
            resp = self._request("HEAD", url, scope)
            if resp.status_code == 200:
                return True
            if resp.status_code == 404:
                return False
            raise self._fail(f"HEAD blob {digest}", resp)

        return self._retrying(f"HEAD blob {digest}", attempt)

    def push_blob(self, repository: str, digest: str, data: bytes | Path) -> None:
        """A monolithic upload (POST, then PUT with the body); a failed attempt starts a new
        upload. A file is streamed from disk with its length declared."""
        scope = f"repository:{repository}:pull,push"
        body: Body
        if isinstance(data, Path):
            path = data
            size = path.stat().st_size

            def chunks() -> Iterable[bytes]:
                progress = ProgressLog(f"blob {digest} to {repository}", size, _PROGRESS_LOG)
                for chunk in file_chunks(path):
                    progress.update(len(chunk))
                    yield chunk

            body = chunks
        else:
            size, body = len(data), data
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}

        def attempt() -> None:
            start = self._request("POST", f"{self.base}/v2/{repository}/blobs/uploads/", scope)
            if start.status_code != 202 or "Location" not in start.headers:
                raise self._fail(f"starting the upload of blob {digest} to {repository}", start)
            location = urljoin(f"{self.base}/", start.headers["Location"])
            # The Location carries the upload's state in its query: add the digest, keep the rest.
            target = str(httpx.URL(location).copy_merge_params({"digest": digest}))
            done = self._request("PUT", target, scope, content=body, headers=headers)
            if done.status_code != 201:
                raise self._fail(f"uploading blob {digest} to {repository}", done)

        self._retrying(f"uploading blob {digest} to {repository}", attempt)

    def get_blob(self, repository: str, digest: str) -> bytes:
        scope = f"repository:{repository}:pull"
        url = f"{self.base}/v2/{repository}/blobs/{digest}"

        def attempt() -> bytes:
            resp = self._request("GET", url, scope)
            if resp.status_code != 200:
                raise self._fail(f"GET blob {digest} from {repository}", resp)
            return resp.content

        data = self._retrying(f"GET blob {digest} from {repository}", attempt)
        if sha256_digest(data) != digest:
            raise RegistryError(f"blob {digest} from {repository} does not match its digest")
        return data

    def download_blob(self, repository: str, digest: str, target: Path) -> int:
        """Stream the blob into `target` (replaced whole, or removed on failure), hashing it on
        the way; a dropped download starts again from the beginning."""
        scope = f"repository:{repository}:pull"
        url = f"{self.base}/v2/{repository}/blobs/{digest}"
        part = target.with_name(f".{target.name}.part")

        def attempt() -> tuple[str, int]:
            hasher = hashlib.sha256()
            size = 0
            with self._streamed("GET", url, scope) as resp:
                if resp.status_code != 200:
                    raise self._fail(f"GET blob {digest} from {repository}", resp)
                total = int(resp.headers.get("Content-Length") or 0) or None
                progress = ProgressLog(f"blob {digest} from {repository}", total, _PROGRESS_LOG)
                with part.open("wb") as out:
                    for chunk in resp.iter_bytes(CHUNK_BYTES):
                        hasher.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
                        progress.update(len(chunk))
            return "sha256:" + hasher.hexdigest(), size

        try:
            got, size = self._retrying(f"GET blob {digest} from {repository}", attempt)
            if got != digest:
                raise RegistryError(
                    f"blob {digest} from {repository} does not match its digest (got {got})"
                )
            os.replace(part, target)
        finally:
            part.unlink(missing_ok=True)
        return size

    def put_manifest(
        self, repository: str, reference: str, manifest: bytes, media_type: str
    ) -> str:
        scope = f"repository:{repository}:pull,push"
        url = f"{self.base}/v2/{repository}/manifests/{reference}"

        def attempt() -> str:
            resp = self._request(
                "PUT", url, scope, content=manifest, headers={"Content-Type": media_type}
            )
            if resp.status_code != 201:
                raise self._fail(f"PUT manifest {repository}:{reference}", resp)
            return resp.headers.get("Docker-Content-Digest") or sha256_digest(manifest)

        return self._retrying(f"PUT manifest {repository}:{reference}", attempt)

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str]:
        scope = f"repository:{repository}:pull"
        url = f"{self.base}/v2/{repository}/manifests/{reference}"

        def attempt() -> httpx.Response:
            resp = self._request("GET", url, scope, headers={"Accept": MANIFEST_ACCEPT})
            if resp.status_code != 200:
                raise self._fail(f"GET manifest {repository}:{reference}", resp)
            return resp

        resp = self._retrying(f"GET manifest {repository}:{reference}", attempt)
        media_type = resp.headers.get("Content-Type", OCI_MANIFEST).split(";", 1)[0].strip()
        if reference.startswith("sha256:") and sha256_digest(resp.content) != reference:
            raise RegistryError(f"manifest {repository}@{reference} does not match its digest")
        return resp.content, media_type
