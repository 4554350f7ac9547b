"""How huggingface_hub's and the network's exceptions become the operator's errors, and which
of them are worth another try."""

from __future__ import annotations

from dataclasses import dataclass

from kaito_common.weights import errors

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Request:
    """What was being asked of the hub, for the messages."""

    repo: str
    revision: str
    endpoint: str
    has_token: bool


def is_retryable(exc: BaseException) -> bool:
    """A network failure or an overloaded hub: worth another try."""
    import httpx2
    from huggingface_hub import errors as hf

    if isinstance(exc, httpx2.TransportError):
        return True
    if isinstance(exc, hf.HfHubHTTPError) and exc.response is not None:
        return exc.response.status_code in RETRY_STATUSES
    return False


def describe(exc: BaseException) -> str:
    """One line: the HTTP status and the hub's message, or the exception's type and first line."""
    from huggingface_hub import errors as hf

    if isinstance(exc, hf.HfHubHTTPError) and exc.response is not None:
        message = exc.response.headers.get("X-Error-Message")
        status = exc.response.status_code
        return f"HTTP {status}: {message}" if message else f"HTTP {status}"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def classify(exc: BaseException, request: Request, what: str, attempts: int) -> BaseException:
    """The operator's error for `exc`, raised while `what` (e.g. "downloading config.json");
    an exception it does not know is returned as it is."""
    import httpx2
    from huggingface_hub import errors as hf

    repo, revision, hub = request.repo, request.revision, request.endpoint
    if isinstance(exc, errors.WeightsError):
        return exc
    if isinstance(exc, hf.GatedRepoError):
        if not request.has_token:
            return errors.GatedWithoutTokenError(repo)
        return errors.TokenRefusedError(repo, hub, "no access to this gated repository")
    if isinstance(exc, hf.RevisionNotFoundError):
        return errors.RevisionNotFoundError(repo, revision, hub)
    if isinstance(exc, hf.RepositoryNotFoundError):
        return errors.RepositoryNotFoundError(repo, revision, hub)
    if isinstance(exc, hf.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        if status in (401, 403) and request.has_token:
            detail = exc.response.headers.get("X-Error-Message") or f"HTTP {status}"
            return errors.TokenRefusedError(repo, hub, detail)
        if status in RETRY_STATUSES:
            return errors.HubUnreachableError(hub, what, attempts, describe(exc))
        return errors.HubResponseError(hub, what, describe(exc))
    if isinstance(exc, httpx2.TransportError):
        return errors.HubUnreachableError(hub, what, attempts, describe(exc))
    return exc
