"""The container's termination message: what the Workspace status shows when the Job ends."""

from __future__ import annotations

import contextlib
from pathlib import Path

# Kubernetes keeps at most 4096 bytes of a termination message.
MAX_BYTES = 4096


def one_paragraph(text: str) -> str:
    return " ".join(text.split())


def write_termination_message(path: Path, text: str) -> None:
    """Write `text` as one paragraph; a missing folder (outside a pod) is not an error."""
    data = one_paragraph(text).encode()[:MAX_BYTES]
    # Outside Kubernetes /dev/termination-log does not exist; the log has the same text.
    with contextlib.suppress(OSError):
        path.write_bytes(data)
