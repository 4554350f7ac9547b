"""Download a Hugging Face repository at a revision into the weights volume, resumably.

huggingface_hub (its `HfApi`, URLs, headers, HTTP session and error mapping) talks to the hub,
but the bytes are streamed here: its own download functions write each file under a temporary
name unique to the process and delete it on failure, so they cannot continue a file after a pod
restart. Here a file grows under `.kaito-weights.partial/<path>.part` in the volume; a rerun asks
the hub for the rest with an HTTP Range request, checks the whole file against the hub's
checksum (LFS sha256, else the git blob id) and only then moves it into place. The marker
(`marker.py`) is written last.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kaito_common.weights import errors
from kaito_common.weights.hub_errors import Request, classify, describe, is_retryable
from kaito_common.weights.marker import (
    MARKER_NAME,
    WeightsMarker,
    files_in_place,
    read_marker,
    write_marker,
)
from kaito_common.weights.metrics import DownloadMetrics
from kaito_common.weights.partial import PartialDownload
from kaito_common.weights.patterns import allow_patterns, select_files
from kaito_common.weights.progress import (
    DownloadProgress,
    ProgressReporter,
    human_bytes,
    human_duration,
)
from kaito_common.weights.settings import DownloadSettings

if TYPE_CHECKING:
    pass

log = logging.getLogger("kaito_common.weights")

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: str | None  # LFS files
    blob_id: str | None  # the git blob id (of the content, for non-LFS files)


@dataclass(frozen=True)
class Listing:
    commit: str
    gated: bool
    files: list[RemoteFile]


class _Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


class _Cancelled(Exception):
    """Another file failed; this one stops (its partial file stays for the next run)."""


def _free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


class WeightsDownload:
    """One run of the download command."""

    def __init__(
        self,
        settings: DownloadSettings,
        *,
        metrics: DownloadMetrics | None = None,
        free_bytes: Callable[[Path], int] = _free_bytes,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.dest = settings.dest
        self.partial = PartialDownload(settings.dest, settings.repo)
        self._request = Request(
            settings.repo, settings.revision, settings.hub, settings.hf_token is not None
        )
        self.metrics = metrics or DownloadMetrics(settings.repo, settings.revision)
        self._free_bytes = free_bytes
        self._sleep = sleep
        self._cancel = threading.Event()
        self._fields = {"repo": settings.repo, "revision": settings.revision}

    # --- the run -----------------------------------------------------------------------------
    def run(self) -> WeightsMarker:
        settings = self.settings
        started = time.monotonic()
        log.info(
            "Started weights download",
            extra={
                **self._fields,
                "endpoint": settings.hub,
                "dest": str(self.dest),
                "token": "yes" if settings.hf_token else "no",
            },
        )
        self.dest.mkdir(parents=True, exist_ok=True)
        present = self._present_marker()
        if present is not None:
            log.info(
                "Weights already present",
                extra={**self._fields, "files": len(present.files),
                       "size": human_bytes(present.bytes), "dest": str(self.dest)},
            )  # fmt: skip
            self.metrics.completed()
            return present
        self.metrics.serve(settings.metrics_port, settings.metrics_host)
        listing = self._list()
        done = self.partial.resume(listing.commit)
        pending = [f for f in listing.files if f.path not in done]
        partial_bytes = sum(self.partial.size(f.path, f.size) for f in pending)
        done_bytes = sum(f.size for f in listing.files if f.path in done)
        total = sum(f.size for f in listing.files)
        log.info(
            "Listed repository files",
            extra={**self._fields, "commit": listing.commit, "files": len(listing.files),
                   "size": human_bytes(total), "complete": len(done),
                   "resumed": human_bytes(partial_bytes),
                   "to_fetch": human_bytes(total - done_bytes - partial_bytes)},
        )  # fmt: skip
        needed = total - done_bytes - partial_bytes
        free = self._free_bytes(self.dest)
        if needed > free:
            raise errors.DiskFullError(self.dest, needed, free)
        progress = DownloadProgress(
            bytes_total=total,
            files_total=len(listing.files),
            bytes_done=done_bytes + partial_bytes,
            files_done=len(done),
        )
        with ProgressReporter(
            progress, settings.progress_interval_s, self.metrics.publish, self._fields
        ):
            self._fetch_all(listing, pending, progress)
        marker = WeightsMarker(
            repo=settings.repo,
            revision=settings.revision,
            commit=listing.commit,
            endpoint=settings.hub,
            files={f.path: f.size for f in listing.files},
            bytes=total,
            completed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        write_marker(self.dest, marker)
        self.partial.remove()
        self.metrics.completed()
        snapshot = progress.snapshot()
        duration = time.monotonic() - started
        log.info(
            "Downloaded weights",
            extra={**self._fields, "files": len(listing.files), "size": human_bytes(total),
                   "fetched": human_bytes(snapshot.bytes_fetched),
                   "duration": human_duration(duration),
                   "rate": f"{human_bytes(snapshot.bytes_fetched / max(duration, 1e-6))}/s",
                   "dest": str(self.dest)},
        )  # fmt: skip
        return marker

    def _present_marker(self) -> WeightsMarker | None:
        """The marker of a completed download of this repository and revision, when its files
        are in place; a marker of another one is removed with the files it lists."""
        marker = read_marker(self.dest)
        if marker is None:
            return None
        if marker.repo == self.settings.repo and marker.revision == self.settings.revision:
            if files_in_place(self.dest, marker):
                return marker
            log.warning(
                "Found the weights marker but not all its files: downloading again",
                extra={**self._fields, "dest": str(self.dest)},
            )
        else:
            for path in marker.files:
                (self.dest / path).unlink(missing_ok=True)
            log.info(
                "Removed the weights of another repository or revision",
                extra={**self._fields, "previous_repo": marker.repo,
                       "previous_revision": marker.revision, "files": len(marker.files)},
            )  # fmt: skip
        (self.dest / MARKER_NAME).unlink(missing_ok=True)
        return None

    # --- listing -----------------------------------------------------------------------------
    def _list(self) -> Listing:
        from huggingface_hub import HfApi

        settings = self.settings
        api = HfApi(endpoint=settings.hub, token=settings.hf_token or False)
        what = f"reading the file list of {settings.repo} at {settings.revision}"
        info = self._with_retries(
            what,
            lambda: api.model_info(
                settings.repo,
                revision=settings.revision,
                files_metadata=True,
                timeout=settings.read_timeout_s,
            ),
        )
        gated = bool(getattr(info, "gated", False))
        if gated and not settings.hf_token:
            raise errors.GatedWithoutTokenError(settings.repo)
        patterns = allow_patterns(settings.allow_patterns, settings.trust_remote_code)
        siblings = {s.rfilename: s for s in info.siblings or []}
        chosen = select_files(siblings, patterns)
        if not chosen:
            raise errors.NoMatchingFilesError(settings.repo, settings.revision, patterns)
        files = []
        for path in chosen:
            sibling = siblings[path]
            lfs = sibling.lfs
            files.append(
                RemoteFile(
                    path=path,
                    size=int(lfs.size if lfs is not None else sibling.size or 0),
                    sha256=lfs.sha256 if lfs is not None else None,
                    blob_id=sibling.blob_id,
                )
            )
        return Listing(commit=info.sha or settings.revision, gated=gated, files=files)

    # --- fetching ----------------------------------------------------------------------------
    def _fetch_all(
        self, listing: Listing, pending: list[RemoteFile], progress: DownloadProgress
    ) -> None:
        if not pending:
            return
        with ThreadPoolExecutor(self.settings.workers, thread_name_prefix="weights") as pool:
            futures = [pool.submit(self._fetch, listing.commit, f, progress) for f in pending]
            finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in finished if f.exception() is not None]
            if failed:
                self._cancel.set()
                for future in futures:
                    future.cancel()  # those not started yet
                wait(futures)
                errors_seen = [
                    f.exception() for f in futures if not f.cancelled() and f.exception()
                ]
                first = next((e for e in errors_seen if not isinstance(e, _Cancelled)), None)
                if first is not None:
                    raise first

    def _fetch(self, commit: str, file: RemoteFile, progress: DownloadProgress) -> None:
        from huggingface_hub import hf_hub_url

        if self._cancel.is_set():
            raise _Cancelled()
        part = self.partial.part(file.path)
        part.parent.mkdir(parents=True, exist_ok=True)
        offset = self.partial.size(file.path, file.size)
        if part.exists() and offset == 0 and part.stat().st_size > 0:
            part.unlink()  # longer than the file: not ours to continue
        digest = self._digest(file)
        if offset:
            _feed(digest, part, offset)
        url = hf_hub_url(self.settings.repo, file.path, revision=commit, endpoint=self.settings.hub)
        what = f"downloading {file.path} ({url})"
        attempt = 0
        while offset < file.size or (file.size == 0 and not part.exists()):
            attempt += 1
            try:
                offset, digest = self._stream(url, file, part, offset, digest, progress)
                break
            except _Cancelled:
                raise
            except Exception as exc:
                if attempt >= self.settings.attempts or not is_retryable(exc):
                    raise classify(exc, self._request, what, attempt) from exc
                log.warning(
                    "Download interrupted: retrying",
                    extra={**self._fields, "file": file.path, "attempt": attempt,
                           "error": describe(exc), "resume_at": human_bytes(offset)},
                )  # fmt: skip
                self._sleep(self._backoff(attempt))
                offset = self.partial.size(file.path, file.size)
                digest = self._digest(file)
                _feed(digest, part, offset)
        self._finish(file, part, digest)
        progress.file_done()

    def _stream(
        self,
        url: str,
        file: RemoteFile,
        part: Path,
        offset: int,
        digest: _Digest,
        progress: DownloadProgress,
    ) -> tuple[int, _Digest]:
        import httpx2
        from huggingface_hub import get_session

        # Public API of huggingface_hub.utils, re-exported without `__all__`.
        from huggingface_hub.utils import (  # type: ignore[attr-defined]
            build_hf_headers,
            hf_raise_for_status,
        )

        headers = build_hf_headers(token=self.settings.hf_token or False, library_name="kaito")
        headers["Accept-Encoding"] = "identity"
        if offset:
            headers["Range"] = f"bytes={offset}-"
        timeout = httpx2.Timeout(
            self.settings.read_timeout_s, connect=self.settings.connect_timeout_s
        )
        with get_session().stream("GET", url, headers=headers, timeout=timeout) as response:
            if response.status_code >= 400:
                response.read()
                hf_raise_for_status(response)
            if offset and response.status_code != 206:
                # The server sent the whole file: start it over.
                progress.add_bytes(-offset)
                offset = 0
                digest = self._digest(file)
                part.write_bytes(b"")
            try:
                with part.open("ab") as out:
                    # As the bytes arrive (no buffering): what came before a drop is kept.
                    for chunk in response.iter_bytes():
                        if self._cancel.is_set():
                            raise _Cancelled()
                        out.write(chunk)
                        digest.update(chunk)
                        offset += len(chunk)
                        progress.add_bytes(len(chunk))
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    snapshot = progress.snapshot()
                    raise errors.DiskFullError(
                        self.dest,
                        snapshot.bytes_total - snapshot.bytes_done,
                        self._free_bytes(self.dest),
                    ) from exc
                raise
        return offset, digest

    def _digest(self, file: RemoteFile) -> _Digest:
        if file.sha256:
            return hashlib.sha256()
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update(b"blob %d\0" % file.size)
        return digest

    def _finish(self, file: RemoteFile, part: Path, digest: _Digest) -> None:
        if not part.exists():
            part.write_bytes(b"")
        expected = file.sha256 or file.blob_id
        actual = digest.hexdigest()
        size = part.stat().st_size
        if size != file.size or (expected and actual != expected):
            part.unlink(missing_ok=True)
            shown = f"size {size}, {actual}" if size != file.size else actual
            raise errors.IntegrityError(file.path, f"size {file.size}, {expected}", shown)
        self.partial.complete(file.path)

    # --- errors and retries ------------------------------------------------------------------
    def _backoff(self, attempt: int) -> float:
        return float(min(self.settings.backoff_s * 2 ** (attempt - 1), 30.0))

    def _with_retries(self, what: str, call: Callable[[], Any]) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                return call()
            except Exception as exc:
                if attempt >= self.settings.attempts or not is_retryable(exc):
                    raise classify(exc, self._request, what, attempt) from exc
                log.warning(
                    "Hub request failed: retrying",
                    extra={**self._fields, "attempt": attempt, "error": describe(exc)},
                )
                self._sleep(self._backoff(attempt))


def _feed(digest: _Digest, path: Path, length: int) -> None:
    with path.open("rb") as stream:
        remaining = length
        while remaining > 0:
            chunk = stream.read(min(_CHUNK, remaining))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
