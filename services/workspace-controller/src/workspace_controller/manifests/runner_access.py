"""What the tuning runner's containers may reach: the operator's data allow-list and registries.

Off by default (empty): the runner then refuses private, loopback and metadata data URLs and
speaks HTTPS, with the default roots, to every registry but loopback ones. An operator with
datasets on an in-cluster MinIO or an internal registry sets them on the controller
(`--tuning-allowed-data-networks`, `--tuning-plain-http-registries`,
`--tuning-ca-bundle-config-map`), and every runner container (the tuning Job's fetch and push
steps, the inference pods' adapter pulls) gets them as the runner's `KAITO_TUNING_*` settings.
The controller's own `--log-format json` reaches every runner container the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from kaito_common.controller.objects import Obj

CA_VOLUME = "kaito-ca-bundle"
CA_DIR = "/etc/kaito/ca"
CA_KEY = "ca.crt"
CA_FILE = f"{CA_DIR}/{CA_KEY}"
RUNNER_LOG_FORMAT_ENV = "KAITO_TUNING_LOG_FORMAT"
SERVER_LOG_FORMAT_ENV = "KAITO_LOG_FORMAT"


def log_format_env(variable: str, log_format: str) -> list[Obj]:
    """`variable=json` for JSON logs; nothing for text, each service's default."""
    return [{"name": variable, "value": log_format}] if log_format != "text" else []


@dataclass(frozen=True)
class RunnerAccess:
    # CIDRs or host names the fetch step may reach although private (`URLPolicy` allow-list).
    allowed_data_networks: tuple[str, ...] = ()
    # Registries (`host[:port]`) spoken to over plain HTTP.
    plain_http_registries: tuple[str, ...] = ()
    # A ConfigMap in the workspace's namespace whose `ca.crt` the runner trusts (private CAs).
    ca_bundle_config_map: str | None = None
    # The controller's log format: the runner's containers log the same way (text or json).
    log_format: str = "text"

    def env(self) -> list[Obj]:
        """The runner's settings, as JSON lists where the runner reads lists."""
        env: list[Obj] = log_format_env(RUNNER_LOG_FORMAT_ENV, self.log_format)
        if self.allowed_data_networks:
            value = json.dumps(list(self.allowed_data_networks))
            env.append({"name": "KAITO_TUNING_ALLOWED_DATA_NETWORKS", "value": value})
        if self.plain_http_registries:
            value = json.dumps(list(self.plain_http_registries))
            env.append({"name": "KAITO_TUNING_PLAIN_HTTP_REGISTRIES", "value": value})
        if self.ca_bundle_config_map:
            env.append({"name": "KAITO_TUNING_CA_FILE", "value": CA_FILE})
        return env

    def volumes(self) -> list[Obj]:
        if not self.ca_bundle_config_map:
            return []
        config_map = {"name": self.ca_bundle_config_map, "items": [{"key": CA_KEY, "path": CA_KEY}]}
        return [{"name": CA_VOLUME, "configMap": config_map}]

    def mounts(self) -> list[Obj]:
        if not self.ca_bundle_config_map:
            return []
        return [{"name": CA_VOLUME, "mountPath": CA_DIR, "readOnly": True}]
