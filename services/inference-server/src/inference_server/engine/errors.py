"""The engine's error vocabulary; `api/errors.py` maps each to an HTTP status in one place."""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every error an engine raises to the serving layer."""


class EngineNotReadyError(EngineError):
    """The model is still loading (or failed to load)."""


class QueueFullError(EngineError):
    """Too many requests are waiting; the client should retry after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class AdapterNotFoundError(EngineError):
    """A request or an unload named an adapter that is not loaded."""


class AdapterConflictError(EngineError):
    """An adapter cannot be loaded or unloaded in the current state."""
