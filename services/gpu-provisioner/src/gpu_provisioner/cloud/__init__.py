"""Cloud providers behind one narrow interface: azure (AKS agent pools) and kwok."""

from gpu_provisioner.cloud.provider import (
    AuthError,
    CloudError,
    CloudProvider,
    Instance,
    InvalidClaimError,
    QuotaExceededError,
    SkuNotAvailableError,
    TerminalLaunchError,
    ThrottledError,
)

__all__ = [
    "AuthError",
    "CloudError",
    "CloudProvider",
    "Instance",
    "InvalidClaimError",
    "QuotaExceededError",
    "SkuNotAvailableError",
    "TerminalLaunchError",
    "ThrottledError",
]
