"""Request errors raised by the serving layer (the engine's own live in `engine/errors.py`)."""

from __future__ import annotations


class InvalidRequestError(Exception):
    """The request cannot be served as sent; `param` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ModelNotFoundError(Exception):
    """The request named a model id that is neither the base model nor a loaded adapter."""

    def __init__(self, model: str) -> None:
        super().__init__(f"The model `{model}` does not exist.")
        self.param = "model"


class UnsupportedMediaTypeError(InvalidRequestError):
    """The body is neither declared as JSON nor parses as JSON (HTTP 415)."""
