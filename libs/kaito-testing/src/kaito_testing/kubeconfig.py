"""Kubeconfig files for the local control plane (certificates embedded, so they can be moved)."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from kaito_common.pki import CertPair


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca_cert: Path,
    client: CertPair,
    cluster_name: str = "kaito-local",
    user_name: str = "admin",
) -> Path:
    """Writes a kubeconfig whose current context reaches ``server`` as the ``client`` identity."""
    context = f"{user_name}@{cluster_name}"
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_cert)},
            }
        ],
        "users": [
            {
                "name": user_name,
                "user": {
                    "client-certificate-data": _b64(client.cert),
                    "client-key-data": _b64(client.key),
                },
            }
        ],
        "contexts": [
            {
                "name": context,
                "context": {"cluster": cluster_name, "user": user_name, "namespace": "default"},
            }
        ],
        "current-context": context,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    path.chmod(0o600)
    return path
