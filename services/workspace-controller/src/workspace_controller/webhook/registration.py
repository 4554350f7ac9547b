"""The ValidatingWebhookConfiguration the controller registers (with its caBundle)."""

from __future__ import annotations

import base64
from typing import Any

from kaito_common.api import labels as L
from kaito_common.api.workspace import WORKSPACE_PLURAL, WORKSPACE_VERSIONS

WEBHOOK_NAME = "validation.workspace.kaito.sh"
WEBHOOK_PATH = "/validate/workspace.kaito.sh"


def webhook_configuration(
    name: str,
    ca_pem: bytes,
    *,
    url: str = "",
    service_name: str = "",
    service_namespace: str = "",
    service_port: int = 443,
    timeout_s: int = 5,
) -> dict[str, Any]:
    """`url` for a controller running outside the cluster (tests, dev), else a Service."""
    client_config: dict[str, Any] = {"caBundle": base64.b64encode(ca_pem).decode()}
    if url:
        client_config["url"] = url
    else:
        client_config["service"] = {
            "name": service_name,
            "namespace": service_namespace,
            "path": WEBHOOK_PATH,
            "port": service_port,
        }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "clientConfig": client_config,
                "rules": [
                    {
                        "apiGroups": [L.KAITO_GROUP],
                        "apiVersions": list(WORKSPACE_VERSIONS),
                        "operations": ["CREATE", "UPDATE"],
                        "resources": [WORKSPACE_PLURAL],
                        "scope": "Namespaced",
                    }
                ],
                "failurePolicy": "Fail",
                "matchPolicy": "Equivalent",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": timeout_s,
            }
        ],
    }
