"""The runner's error vocabulary: a reason a controller shows, a message a person acts on."""

from __future__ import annotations


class TuningFailure(Exception):
    """A failure with a CamelCase `reason` and a one-paragraph `message`."""

    reason = "TuningFailed"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason

    def __str__(self) -> str:
        return self.message


class ConfigError(TuningFailure):
    reason = "InvalidTrainingConfig"


class FetchError(TuningFailure):
    reason = "InputFetchFailed"


class DatasetError(TuningFailure):
    reason = "InvalidDataset"


class ModelLoadError(TuningFailure):
    reason = "ModelLoadFailed"


class TrainingError(TuningFailure):
    reason = "TrainingFailed"


class PushError(TuningFailure):
    reason = "AdapterPushFailed"


class PullError(TuningFailure):
    reason = "ImagePullFailed"
