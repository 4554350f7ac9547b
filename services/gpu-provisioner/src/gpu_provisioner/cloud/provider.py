"""The narrow cloud interface the controllers use: one NodeClaim = one cloud instance.

Instances are named after their NodeClaim, so a claim that never got a providerID can still be
cleaned up, and a create that was in flight when the process died is found again by name.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol

from kaito_common.controller.objects import Obj


@dataclass(frozen=True)
class Instance:
    """What a cloud knows about the machine behind one NodeClaim."""

    name: str
    provider_id: str = ""
    instance_type: str = ""
    zone: str = ""
    capacity: dict[str, str] = field(default_factory=dict)
    allocatable: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    created_at: dt.datetime | None = None
    deleting: bool = False
    image_id: str = ""


class CloudError(Exception):
    """A cloud call failed. `code` is the provider's error code (metrics label), `reason` the
    NodeClaim condition reason to show, `message` the provider's own text."""

    reason = "LaunchFailed"
    retryable = True

    def __init__(self, message: str, *, code: str = "Unknown") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class QuotaExceededError(CloudError):
    """The subscription has no quota left for the size (retried: quota may be raised)."""


class ThrottledError(CloudError):
    """The cloud API throttled us (retried)."""


class AuthError(CloudError):
    """The credential was refused (retried: identities are often fixed after the fact)."""


class TerminalLaunchError(CloudError):
    """Launching this claim can never succeed as written (e.g. the size is not offered here)."""

    reason = "LaunchFailed"
    retryable = False


class SkuNotAvailableError(TerminalLaunchError):
    reason = "SKUNotAvailable"


class InvalidClaimError(TerminalLaunchError):
    """The claim cannot be turned into an instance (bad name, no instance type, no storage)."""

    reason = "InvalidNodeClaim"


class CloudProvider(Protocol):
    """`create` is idempotent by claim name: an existing or in-flight instance is adopted."""

    name: str

    async def create(self, claim: Obj) -> Instance: ...

    async def delete(self, name: str) -> bool:
        """Start or continue deleting the instance named `name`; True once it is gone."""
        ...

    async def get(self, name: str) -> Instance | None: ...

    async def list(self) -> list[Instance]:
        """Every instance this provisioner owns."""
        ...

    async def close(self) -> None: ...
