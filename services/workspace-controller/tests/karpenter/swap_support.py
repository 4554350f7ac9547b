"""What the provisioner-swap test and its fixtures share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The SKU the test asks for; Karpenter's kwok provider offers exactly the catalog's entry.
SKU = "Standard_NC12s_v3"
SKU_GPUS = "2"


@dataclass(frozen=True)
class Provisioner:
    """Which provisioner runs, and the workspace controller settings that go with it."""

    name: str
    controller_args: tuple[str, ...]
    log_path: Path
