"""The local Hugging Face hub: an HTTP server speaking the routes `huggingface_hub` (2.4) uses to
download a repository at a revision, for tests that reach it through `HF_ENDPOINT`.

Routes (what `snapshot_download`, `hf_hub_download`, `HfApi.model_info` and
`HfApi.list_repo_tree` request):

- `GET /api/models/{repo}` and `/api/models/{repo}/revision/{rev}`: the model info, `sha` (the
  commit) and `siblings` (sizes, blob ids and LFS sha256 with `?blobs=true`), `gated`;
- `GET /api/models/{repo}/tree/{rev}[/{path}]` (`?recursive=true`): the file listing;
- `HEAD` and `GET /{repo}/resolve/{rev}/{path}`: the file, with `ETag` (LFS sha256, else the git
  blob id), `X-Repo-Commit`, `Content-Length`, and `Range` requests answered with 206.

Errors carry the `X-Error-Code` header `huggingface_hub` maps to its exceptions: `GatedRepo`
(401 without a token a gated repository accepts, 403 for a known token without access),
`RepoNotFound`, `RevisionNotFound`, `EntryNotFound` (404); an unknown token gets 401
"Invalid credentials in Authorization header". Nothing advertises Xet, so clients use plain HTTP.

Every request is recorded (`requests`, `bytes_served`), so tests can assert what a resumed or a
repeated download fetched. `interrupt` cuts a file's next responses short (a dropped connection)
and `rate_limit` slows the bodies down (progress reporting).
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from kaito_testing.hfhub.repos import HubRepo, RepoFile, read_files

_CHUNK = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"


@dataclass(frozen=True)
class ServedRequest:
    """One request the hub answered: the URL path (unquoted), status and body bytes sent."""

    method: str
    path: str
    status: int
    body_bytes: int
    range: str | None
    authorized: bool


@dataclass
class _Interruption:
    after_bytes: int
    remaining: int


class _HubError(Exception):
    def __init__(self, status: int, code: str | None, message: str, commit: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.commit = commit


class LocalHub:
    """A hub on `host:port` (port 0: a free one) until `stop()`; a context manager.

    `url` is what `HF_ENDPOINT` should be: `http://{public_host or host}:{port}` (bind to
    `0.0.0.0` and give the node's address as `public_host` for pods on a real node).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, public_host: str | None = None):
        self.repos: dict[str, HubRepo] = {}
        self.known_tokens: set[str] = set()
        self.rate_limit: int | None = None  # bytes per second of every body, None: unlimited
        self._requests: list[ServedRequest] = []
        self._interruptions: dict[tuple[str, str], _Interruption] = {}
        self._lock = threading.Lock()
        self._public_host = public_host
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="hfhub", daemon=True
        )

    # --- setup -------------------------------------------------------------------------------
    def add_repo(
        self,
        repo_id: str,
        directory: Path,
        *,
        commit: str | None = None,
        gated: bool = False,
        branch: str | None = "main",
        tokens: Iterable[str] = (),
    ) -> str:
        """Serves the files under `directory` as `repo_id` at `commit` (40 hex; default: a digest
        of the files), with `branch` pointing at it; returns the commit. A gated repository
        accepts only `tokens` (adding a commit to a known repo keeps its other commits)."""
        files = read_files(Path(directory))
        if commit is None:
            commit = _files_digest(files.values())
        if not _COMMIT.match(commit):
            raise ValueError(f"commit must be 40 lower-case hex digits, got {commit!r}")
        with self._lock:
            repo = self.repos.setdefault(repo_id, HubRepo(repo_id))
            repo.gated = repo.gated or gated
            repo.tokens.update(tokens)
            self.known_tokens.update(tokens)
            repo.commits[commit] = files
            if branch:
                repo.branches[branch] = commit
        return commit

    def add_token(self, token: str) -> None:
        """A valid token that opens no gated repository (the hub answers 403 to it there)."""
        with self._lock:
            self.known_tokens.add(token)

    def interrupt(self, repo_id: str, path: str, after_bytes: int, times: int = 1) -> None:
        """The next `times` GETs of `path` send the full headers, `after_bytes` of the body
        and then drop the connection."""
        with self._lock:
            self._interruptions[(repo_id, path)] = _Interruption(after_bytes, times)

    # --- counters ----------------------------------------------------------------------------
    @property
    def requests(self) -> list[ServedRequest]:
        with self._lock:
            return list(self._requests)

    def bytes_served(self, repo_id: str | None = None, path: str | None = None) -> int:
        """Body bytes of `resolve` responses, for one repository and/or one file."""
        return sum(r.body_bytes for r in self.file_requests(repo_id, path))

    def file_requests(
        self, repo_id: str | None = None, path: str | None = None, method: str = "GET"
    ) -> list[ServedRequest]:
        """The `resolve` requests (GET by default) of a repository and/or file."""
        prefix = f"/{repo_id}/resolve/" if repo_id else None
        found = []
        for request in self.requests:
            if request.method != method or "/resolve/" not in request.path:
                continue
            if prefix and not request.path.startswith(prefix):
                continue
            if path and not request.path.endswith("/" + path):
                continue
            found.append(request)
        return found

    def reset_counters(self) -> None:
        with self._lock:
            self._requests.clear()

    # --- lifecycle ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self._public_host or str(self._server.server_address[0])
        return f"http://{host}:{self.port}"

    def start(self) -> LocalHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- used by the handler -----------------------------------------------------------------
    def _record(self, request: ServedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _take_interruption(self, repo_id: str, path: str) -> int | None:
        with self._lock:
            found = self._interruptions.get((repo_id, path))
            if found is None or found.remaining <= 0:
                return None
            found.remaining -= 1
            return found.after_bytes

    def _find_repo(self, rest: str) -> tuple[HubRepo, str]:
        """The repository `rest` ("org/name/...") starts with, and what follows it."""
        with self._lock:
            for repo_id in sorted(self.repos, key=len, reverse=True):
                if rest == repo_id or rest.startswith(repo_id + "/"):
                    return self.repos[repo_id], rest[len(repo_id) + 1 :]
        raise _HubError(404, "RepoNotFound", "Repository not found")

    def _check_token(self, token: str | None) -> None:
        if token is not None and token not in self.known_tokens:
            raise _HubError(401, None, INVALID_CREDENTIALS)

    def _commit_files(self, repo: HubRepo, revision: str) -> tuple[str, dict[str, RepoFile]]:
        commit = repo.resolve(revision)
        if commit is None:
            raise _HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return commit, repo.commits[commit]


def _files_digest(files: Iterable[RepoFile]) -> str:
    digest = hashlib.sha1(usedforsecurity=False)
    for file in sorted(files, key=lambda f: f.path):
        digest.update(f"{file.path}\0{file.etag}\0".encode())
    return digest.hexdigest()


def _handler_for(hub: LocalHub) -> type[BaseHTTPRequestHandler]:
    class Handler(_HubHandler):
        pass

    Handler.hub = hub
    return Handler


class _HubHandler(BaseHTTPRequestHandler):
    hub: LocalHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    # --- dispatch ----------------------------------------------------------------------------
    def _serve(self, head: bool) -> None:
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        token = self._token()
        self._authorized = token is not None
        try:
            self.hub._check_token(token)
            if split.path == "/api/agent-harnesses":
                # huggingface_hub fetches this registry once a day for its user agent.
                self._json({"standardEnvVars": [], "harnesses": {}}, None, head)
            elif split.path.startswith("/api/models/"):
                self._api(split.path.removeprefix("/api/models/"), query, head)
            elif "/resolve/" in path:
                self._resolve(path.lstrip("/"), token, head)
            else:
                raise _HubError(404, None, f"Not found: {path}")
        except _HubError as error:
            self._error(error, head)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _token(self) -> str | None:
        header = self.headers.get("Authorization")
        if header and header.lower().startswith("bearer "):
            return header[7:].strip()
        return None

    def _api(self, raw_rest: str, query: dict[str, str], head: bool) -> None:
        # The revision is one quoted path segment ("refs%2Fpr%2F1"): split before unquoting.
        repo, raw_tail = self.hub._find_repo(raw_rest)
        segments = raw_tail.split("/") if raw_tail else []
        if not segments:
            self._model_info(repo, "main", query, head)
        elif segments[0] == "revision" and len(segments) == 2:
            self._model_info(repo, unquote(segments[1]), query, head)
        elif segments[0] == "tree" and len(segments) >= 2:
            self._tree(repo, unquote(segments[1]), unquote("/".join(segments[2:])), head)
        else:
            raise _HubError(404, None, f"Not found: /api/models/{unquote(raw_rest)}")

    # --- API ---------------------------------------------------------------------------------
    def _model_info(self, repo: HubRepo, revision: str, query: dict[str, str], head: bool) -> None:
        commit, files = self.hub._commit_files(repo, revision)
        blobs = query.get("blobs", "").lower() in ("1", "true")
        info = {
            "_id": commit[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "sha": commit,
            "private": False,
            "disabled": False,
            "gated": "manual" if repo.gated else False,
            "downloads": 0,
            "likes": 0,
            "tags": ["transformers", "safetensors"],
            "pipeline_tag": "text-generation",
            "library_name": "transformers",
            "lastModified": "2026-01-01T00:00:00.000Z",
            "createdAt": "2026-01-01T00:00:00.000Z",
            "siblings": [f.sibling(blobs) for f in files.values()],
            "usedStorage": sum(f.size for f in files.values()),
        }
        self._json(info, commit, head)

    def _tree(self, repo: HubRepo, revision: str, folder: str, head: bool) -> None:
        commit, files = self.hub._commit_files(repo, revision)
        prefix = folder.strip("/") + "/" if folder.strip("/") else ""
        folders = sorted(
            {
                "/".join(f.path.split("/")[: depth + 1])
                for f in files.values()
                if f.path.startswith(prefix)
                for depth in range(f.path.count("/"))
            }
        )
        entries: list[dict[str, object]] = [
            {"type": "directory", "oid": "0" * 40, "size": 0, "path": name}
            for name in folders
            if name.startswith(prefix) and name != prefix.rstrip("/")
        ]
        entries += [f.tree_entry() for f in files.values() if f.path.startswith(prefix)]
        self._json(entries, commit, head)

    # --- files -------------------------------------------------------------------------------
    def _resolve(self, rest: str, token: str | None, head: bool) -> None:
        repo, tail = self.hub._find_repo(rest)
        parts = tail.split("/", 2)
        if len(parts) != 3 or parts[0] != "resolve":
            raise _HubError(404, None, f"Not found: /{rest}")
        revision, path = parts[1], parts[2]
        if not repo.allows(token):
            if token is None:
                raise _HubError(
                    401,
                    "GatedRepo",
                    f"Access to model {repo.repo_id} is restricted. You must have access to it "
                    "and be authenticated to access it. Please log in.",
                )
            raise _HubError(
                403,
                "GatedRepo",
                f"Access to model {repo.repo_id} is restricted and you are not in the "
                "authorized list. Visit the model page to ask for access.",
            )
        commit, files = self.hub._commit_files(repo, revision)
        file = files.get(path)
        if file is None:
            raise _HubError(404, "EntryNotFound", f"{path} does not exist", commit)
        self._send_file(repo.repo_id, commit, file, head)

    def _send_file(self, repo_id: str, commit: str, file: RepoFile, head: bool) -> None:
        start, end = 0, file.size - 1
        status = 200
        range_header = self.headers.get("Range")
        if range_header:
            match = _RANGE.match(range_header.strip())
            if match is None or int(match.group(1)) >= max(file.size, 1):
                self._record(416, 0)
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{file.size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = int(match.group(1))
            end = min(int(match.group(2)), end) if match.group(2) else end
            status = 206
        length = max(end - start + 1, 0)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{file.etag}"')
        self.send_header("X-Repo-Commit", commit)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{file.size}")
        self.end_headers()
        if head:
            self._record(status, 0)
            return
        cut = self.hub._take_interruption(repo_id, file.path)
        limit = length if cut is None else min(length, cut)
        sent = 0
        try:
            with file.source.open("rb") as stream:
                stream.seek(start)
                while sent < limit:
                    chunk = stream.read(min(_CHUNK, limit - sent))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    sent += len(chunk)
                    if self.hub.rate_limit:
                        time.sleep(len(chunk) / self.hub.rate_limit)
            self.wfile.flush()
        finally:
            self._record(status, sent)
        if cut is not None and sent < length:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    # --- responses ---------------------------------------------------------------------------
    def _record(self, status: int, body_bytes: int) -> None:
        self.hub._record(
            ServedRequest(
                method=self.command,
                path=unquote(urlsplit(self.path).path),
                status=status,
                body_bytes=body_bytes,
                range=self.headers.get("Range"),
                authorized=self._authorized,
            )
        )

    def _json(self, payload: object, commit: str | None, head: bool) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if commit:
            self.send_header("X-Repo-Commit", commit)
        self.end_headers()
        if not head:
            self.wfile.write(body)
        self._record(200, 0 if head else len(body))

    def _error(self, error: _HubError, head: bool) -> None:
        body = json.dumps({"error": error.message}).encode()
        self.send_response(error.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if error.code:
            self.send_header("X-Error-Code", error.code)
        self.send_header("X-Error-Message", error.message)
        if error.commit:
            self.send_header("X-Repo-Commit", error.commit)
        self.end_headers()
        if not head:
            self.wfile.write(body)
        self._record(error.status, 0)
