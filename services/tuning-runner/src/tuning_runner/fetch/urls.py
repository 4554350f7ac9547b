"""Download input URLs into the data folder: SSRF guard, retries with backoff, size cap.

Each request (and each redirect hop) resolves its host once, has the SSRF guard check every
address, and connects to a checked address itself, with the URL's host kept as the Host header
and TLS server name: no second DNS lookup, so no rebinding window between check and connection.

Each file is written to a hidden `.part` file and renamed into place only when complete and
non-empty, so the data folder never holds a half-downloaded file under its real name.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from kaito_common.progress import ProgressLog
from kaito_common.urlguard import (
    Address,
    Resolver,
    UnsafeURLError,
    URLPolicy,
    approved_addresses,
    system_resolver,
)
from tuning_runner.errors import FetchError
from tuning_runner.logs import log, warn
from tuning_runner.tls import ssl_context

MAX_REDIRECTS = 5
_RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
# Progress lines of downloads (at most one every 5 s per file; kaito_common.progress).
_PROGRESS_LOG = logging.getLogger("tuning_runner.fetch")


@dataclass(frozen=True)
class FetchOptions:
    max_bytes: int = 20 * 1024**3
    attempts: int = 3
    backoff_seconds: float = 1.0
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    allow_loopback: bool = False
    allowed_networks: tuple[str, ...] = ()  # the operator's allow-list: CIDRs or host names
    ca_file: Path | None = None

    def policy(self) -> URLPolicy:
        try:
            return URLPolicy.with_allow_list(
                self.allowed_networks, allow_loopback=self.allow_loopback
            )
        except ValueError as err:
            raise FetchError(f"the allowed data networks are invalid: {err}") from err


class _Retryable(Exception):
    """A failure worth another attempt."""


def file_name_for(url: str) -> str:
    """The last path segment of the URL, without query or fragment, percent-decoded."""
    path = unquote(urlsplit(url).path)
    name = "" if path.endswith("/") else PurePosixPath(path).name
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise FetchError(
            f"URL {url!r} does not end in a file name; input URLs must name a file "
            "(e.g. https://host/path/train.parquet)"
        )
    return name


def _pinned(url: str, address: Address) -> tuple[str, dict[str, str], dict[str, object]]:
    """The request for `url` sent to `address` itself: (URL with the IP as host, headers,
    extensions). The Host header and the TLS server name (SNI, and the name the certificate is
    checked against) stay the URL's host, so virtual hosting and certificate checks still work."""
    original = httpx.URL(url)
    pinned = original.copy_with(host=str(address))
    headers = {"Host": original.netloc.decode("ascii"), "Connection": "close"}
    extensions: dict[str, object] = {}
    if original.scheme == "https":
        extensions["sni_hostname"] = original.host
    return str(pinned), headers, extensions


def _approved(url: str, policy: URLPolicy, resolver: Resolver) -> list[Address]:
    try:
        return approved_addresses(url, policy, resolver)
    except UnsafeURLError as err:
        raise FetchError(f"refused to fetch input: {err}") from err


@contextmanager
def _open(client: httpx.Client, url: str, addresses: list[Address]) -> Iterator[httpx.Response]:
    """GET `url` from the first of `addresses` that accepts a connection."""
    failure: httpx.ConnectError | None = None
    for address in addresses:
        target, headers, extensions = _pinned(url, address)
        request = client.build_request("GET", target, headers=headers, extensions=extensions)
        try:
            resp = client.send(request, stream=True)
        except httpx.ConnectError as err:
            failure = err
            continue
        try:
            yield resp
        finally:
            resp.close()
        return
    if failure is None:
        raise FetchError(f"host of {url} resolved to no address")
    raise failure


def _download_once(
    client: httpx.Client, url: str, target: Path, opts: FetchOptions, resolver: Resolver
) -> int:
    policy = opts.policy()
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        # Resolve once, check every address, then connect to a checked address: a DNS answer
        # that changes after the check (rebinding) is never used. Every redirect hop likewise.
        addresses = _approved(current, policy, resolver)
        with _open(client, current, addresses) as resp:
            if resp.is_redirect and "Location" in resp.headers:
                current = urljoin(current, resp.headers["Location"])
                continue
            if resp.status_code in _RETRYABLE_STATUS:
                raise _Retryable(f"HTTP {resp.status_code}")
            if resp.status_code != 200:
                raise FetchError(
                    f"fetching {url} failed with HTTP {resp.status_code}; "
                    "check that the URL is right and publicly readable"
                )
            declared = int(resp.headers.get("Content-Length") or 0)
            if declared > opts.max_bytes:
                raise FetchError(
                    f"{url} is {declared} bytes, over the {opts.max_bytes}-byte limit for inputs"
                )
            size = 0
            part = target.with_name(f".{target.name}.part")
            # Named by its file: a presigned URL's query is a credential.
            progress = ProgressLog(f"input {target.name}", declared or None, _PROGRESS_LOG)
            try:
                with part.open("wb") as out:
                    for chunk in resp.iter_bytes(1 << 20):
                        size += len(chunk)
                        if size > opts.max_bytes:
                            raise FetchError(
                                f"{url} exceeded the {opts.max_bytes}-byte limit for inputs"
                            )
                        out.write(chunk)
                        progress.update(len(chunk))
                if size == 0:
                    raise FetchError(f"{url} returned an empty file; an input must not be empty")
                os.replace(part, target)
            finally:
                part.unlink(missing_ok=True)
            return size
    raise FetchError(f"fetching {url} followed more than {MAX_REDIRECTS} redirects")


def fetch_urls(
    urls: list[str],
    dest: Path,
    opts: FetchOptions,
    *,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
    resolver: Resolver = system_resolver,
) -> list[Path]:
    """Download every URL into `dest`; raises `FetchError` naming the URL that failed.

    Each host name is resolved once per request by `resolver`; the connection goes to an address
    the SSRF guard approved, never to a second DNS answer."""
    if not urls:
        raise FetchError("no input URLs were given")
    names = [file_name_for(u) for u in urls]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise FetchError(f"several input URLs end in the same file name: {', '.join(dupes)}")
    dest.mkdir(parents=True, exist_ok=True)
    timeout = httpx.Timeout(opts.read_timeout, connect=opts.connect_timeout)
    written: list[Path] = []
    opts.policy()  # a bad allow-list fails before anything is downloaded
    verify = ssl_context(opts.ca_file)
    with httpx.Client(
        timeout=timeout, follow_redirects=False, transport=transport, verify=verify
    ) as client:
        for url, name in zip(urls, names, strict=True):
            target = dest / name
            last = ""
            for attempt in range(1, opts.attempts + 1):
                try:
                    size = _download_once(client, url, target, opts, resolver)
                except (_Retryable, httpx.TransportError) as err:
                    last = str(err) or type(err).__name__
                    if attempt < opts.attempts:
                        delay = opts.backoff_seconds * 2 ** (attempt - 1)
                        warn("Retrying download", url=url, attempt=attempt, error=last, delay=delay)
                        sleep(delay)
                    continue
                log("Fetched input", url=url, file=str(target), bytes=size)
                written.append(target)
                break
            else:
                raise FetchError(
                    f"fetching {url} failed after {opts.attempts} attempts ({last}); "
                    "check that the host is reachable from the cluster"
                )
    return written
