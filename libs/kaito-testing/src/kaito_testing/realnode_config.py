"""How a real node joins the local control plane (:class:`RealNodeConfig`) and its defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kaito_common.pki import CertPair

NODE_NAME = "kaito-realnode"
POD_SUBNET = "10.85.0.0/24"
BRIDGE = "kaito-rn0"
GPU_RESOURCE = "nvidia.com/gpu"


@dataclass(frozen=True)
class RealNodeConfig:
    """How the node joins: API server, CA, admin kubeconfig and the node's own settings."""

    work_dir: Path
    bin_dir: Path
    server: str
    ca: CertPair
    admin_kubeconfig: Path
    cluster_cidr: str = POD_SUBNET
    service_cidr: str = "10.96.0.0/16"
    node_name: str = NODE_NAME
    pod_subnet: str = POD_SUBNET
    bridge: str = BRIDGE
    node_ip: str | None = None
    gpus: int = 0
    max_pods: int = 40
    labels: Mapping[str, str] = field(default_factory=dict)
    # containerd's root (images, snapshots); None: the default cache, kept between runs so
    # that images are imported once per machine.
    image_store: Path | None = None


def default_image_store() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("KAITO_REALNODE_IMAGES") or cache / "kaito-realnode" / "containerd")
