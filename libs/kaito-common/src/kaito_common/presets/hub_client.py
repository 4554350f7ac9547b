"""`HuggingFaceHubSource`: a repository's facts read from the Hugging Face hub's HTTP API.

It asks for two or three things: the model info at a revision with file sizes
(`/api/models/{repo}/revision/{rev}?blobs=true`: the commit, the gate, the `*.safetensors`
sizes), `config.json` at that commit, and the safetensors index only when the sizes are missing.
It speaks HTTP with aiohttp (the controllers' client) rather than `huggingface_hub`, which the
controller images do not carry; the routes and the `X-Error-Code` header are the hub's own.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import aiohttp

from kaito_common.presets.hub_model import GatedRepoError, HubModelError, ModelFacts

DEFAULT_ENDPOINT = "https://huggingface.co"
INDEX_FILE = "model.safetensors.index.json"


class HuggingFaceHubSource:
    """Reads repositories from `endpoint` (empty: huggingface.co), each request within
    `timeout_s`. `facts` is async: it is the controller's `HubModelSource`."""

    def __init__(self, endpoint: str = "", timeout_s: float = 10.0) -> None:
        self.endpoint = (endpoint or DEFAULT_ENDPOINT).rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def facts(self, repo_id: str, revision: str, token: str | None) -> ModelFacts:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with aiohttp.ClientSession(timeout=self._timeout, headers=headers) as session:
            info_url = (
                f"{self.endpoint}/api/models/{repo_id}/revision/{quote(revision, safe='')}"
                "?blobs=true"
            )
            info = await self._json(session, info_url, repo_id, revision, token, "model info")
            commit = str(info.get("sha") or "")
            if not commit:
                raise HubModelError(
                    f"Hugging Face repository {repo_id}: the hub at {self.endpoint} named no "
                    f"commit for revision {revision}"
                )
            gated = bool(info.get("gated"))
            siblings = [s for s in info.get("siblings") or [] if isinstance(s, dict)]
            names = {str(s.get("rfilename") or "") for s in siblings}
            weights = _safetensors_bytes(siblings)
            if weights <= 0 and INDEX_FILE in names:
                index = await self._json(
                    session, self._file_url(repo_id, commit, INDEX_FILE), repo_id, commit,
                    token, INDEX_FILE,
                )  # fmt: skip
                weights = int((index.get("metadata") or {}).get("total_size") or 0)
            if not any(n.endswith(".safetensors") for n in names):
                raise HubModelError(
                    f"Hugging Face repository {repo_id} at {commit} has no *.safetensors "
                    "weights; only safetensors models can be served"
                )
            if "config.json" not in names:
                raise HubModelError(
                    f"Hugging Face repository {repo_id} at {commit} has no config.json"
                )
            config = await self._json(
                session, self._file_url(repo_id, commit, "config.json"), repo_id, commit,
                token, "config.json",
            )  # fmt: skip
        return ModelFacts(repo_id, commit, config, weights, gated)

    def _file_url(self, repo_id: str, commit: str, path: str) -> str:
        return f"{self.endpoint}/{repo_id}/resolve/{commit}/{path}"

    async def _json(
        self,
        session: aiohttp.ClientSession,
        url: str,
        repo_id: str,
        revision: str,
        token: str | None,
        what: str,
    ) -> dict[str, Any]:
        async with session.get(url) as response:
            if response.status >= 400:
                raise _error(response, repo_id, revision, token, what, self.endpoint)
            body = await response.read()
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise HubModelError(
                f"Hugging Face repository {repo_id}: {what} is not valid JSON ({exc})"
            ) from exc
        if not isinstance(data, dict):
            raise HubModelError(f"Hugging Face repository {repo_id}: {what} is not a JSON object")
        return data


def _safetensors_bytes(siblings: list[dict[str, Any]]) -> int:
    total = 0
    for sibling in siblings:
        if not str(sibling.get("rfilename") or "").endswith(".safetensors"):
            continue
        size = sibling.get("size")
        if size is None:
            size = (sibling.get("lfs") or {}).get("size")
        total += int(size or 0)
    return total


def _error(
    response: aiohttp.ClientResponse,
    repo_id: str,
    revision: str,
    token: str | None,
    what: str,
    endpoint: str,
) -> Exception:
    """A hub refusal as `HubModelError` (the repository cannot be a preset as asked), anything
    else (overload, server errors) as `OSError` (worth another try)."""
    code = response.headers.get("X-Error-Code", "")
    message = response.headers.get("X-Error-Message", "")
    status = response.status
    if code == "GatedRepo" or (status in (401, 403) and token and code != "RepoNotFound"):
        if not token:
            return GatedRepoError(
                f"Hugging Face repository {repo_id} is gated: it needs "
                "presetOptions.modelAccessSecret, a Secret whose HF_TOKEN can read it"
            )
        return GatedRepoError(
            f"Hugging Face repository {repo_id} refused the token of the modelAccessSecret "
            f"(HTTP {status}: {message or 'no access'})"
        )
    if code == "RepoNotFound" or (status in (401, 404) and what == "model info" and not code):
        return HubModelError(
            f"Hugging Face repository {repo_id} not found at {endpoint} (HTTP {status}"
            f"{': ' + message if message else ''})"
        )
    if code == "RevisionNotFound":
        return HubModelError(
            f"Hugging Face repository {repo_id} has no revision {revision} (HTTP {status})"
        )
    if code == "EntryNotFound" or status == 404:
        return HubModelError(f"Hugging Face repository {repo_id} at {revision} has no {what}")
    return OSError(
        f"Reading {what} of Hugging Face repository {repo_id} from {endpoint} failed: "
        f"HTTP {status}{': ' + message if message else ''}"
    )
