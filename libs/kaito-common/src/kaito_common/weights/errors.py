"""What can stop a download, each with the message an operator acts on.

The command exits 1 with the message in its log and in the container's termination message
(`/dev/termination-log`), which Kubernetes shows in the pod's status.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from kaito_common.weights.progress import human_bytes

# Kubernetes keeps at most 4096 bytes of a termination message.
_TERMINATION_MAX_BYTES = 4096


class WeightsError(Exception):
    """A download or image build failed; `str()` is the operator's message."""


class GatedWithoutTokenError(WeightsError):
    def __init__(self, repo: str) -> None:
        super().__init__(
            f"Hugging Face repository {repo} is gated: give the Workspace a modelAccessSecret "
            "whose HF_TOKEN can read it"
        )


class TokenRefusedError(WeightsError):
    def __init__(self, repo: str, endpoint: str, detail: str) -> None:
        super().__init__(
            f"The Hugging Face hub at {endpoint} refused the HF_TOKEN of the Workspace's "
            f"modelAccessSecret for repository {repo}: {detail}. Check that the token is valid "
            "and that its account has been granted access to the repository on its model page"
        )


class RepositoryNotFoundError(WeightsError):
    def __init__(self, repo: str, revision: str, endpoint: str) -> None:
        super().__init__(
            f"Hugging Face repository {repo} (revision {revision}) was not found at {endpoint}: "
            "check the repository id (private repositories also need a modelAccessSecret)"
        )


class RevisionNotFoundError(WeightsError):
    def __init__(self, repo: str, revision: str, endpoint: str) -> None:
        super().__init__(
            f"Revision {revision} was not found in Hugging Face repository {repo} at {endpoint}: "
            "check the pinned commit"
        )


class NoMatchingFilesError(WeightsError):
    def __init__(self, repo: str, revision: str, patterns: tuple[str, ...]) -> None:
        super().__init__(
            f"Hugging Face repository {repo} at revision {revision} has no files matching "
            f"{', '.join(patterns)} (safetensors weights are required; *.bin, *.pt, *.pth, "
            "*.gguf, *.onnx and original/ are never fetched)"
        )


class HubUnreachableError(WeightsError):
    def __init__(self, endpoint: str, what: str, attempts: int, detail: str) -> None:
        super().__init__(
            f"Could not reach the Hugging Face hub at {endpoint} while {what} after {attempts} "
            f"attempt(s): {detail}. Check the node's network access to it (HF_ENDPOINT, "
            "proxy, firewall); a restarted pod continues the download where it stopped"
        )


class HubResponseError(WeightsError):
    def __init__(self, endpoint: str, what: str, detail: str) -> None:
        super().__init__(
            f"The Hugging Face hub at {endpoint} answered with an error while {what}: {detail}"
        )


class DiskFullError(WeightsError):
    def __init__(self, dest: Path, needed: int, free: int) -> None:
        super().__init__(
            f"Not enough space in {dest} for the model weights: {human_bytes(needed)} "
            f"({needed} bytes) more are needed, {human_bytes(free)} ({free} bytes) are free. "
            "Give the weights volume more space (the preset's disk size, or the PVC's)"
        )
        self.needed = needed
        self.free = free


class IntegrityError(WeightsError):
    def __init__(self, path: str, expected: str, actual: str) -> None:
        super().__init__(
            f"The downloaded {path} does not match the hub's checksum ({expected}, got "
            f"{actual}); the partial file was deleted and a restarted pod downloads it again"
        )


def write_termination_message(path: Path | None, text: str) -> None:
    """Writes `text` (one paragraph) where Kubernetes reads the termination message, when that
    file can be written (outside a pod it usually cannot: the log has the same text)."""
    if path is None:
        return
    data = " ".join(text.split()).encode()[:_TERMINATION_MAX_BYTES]
    with contextlib.suppress(OSError):
        path.write_bytes(data)
