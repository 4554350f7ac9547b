"""Build a registry client for an image reference from the runner's settings."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from tuning_runner.oci.auth import DockerConfig
from tuning_runner.oci.client import HttpRegistryClient
from tuning_runner.oci.reference import ImageReference
from tuning_runner.tls import ssl_context


def is_loopback_host(registry: str) -> bool:
    host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def client_for(
    ref: ImageReference,
    docker_config_paths: list[Path],
    plain_http_registries: list[str],
    timeout: float,
    ca_file: Path | None = None,
) -> HttpRegistryClient:
    config = DockerConfig.load(docker_config_paths)
    plain = is_loopback_host(ref.registry) or ref.registry in plain_http_registries
    return HttpRegistryClient(
        ref.api_host,
        config.for_registry(ref.registry),
        plain_http=plain,
        timeout=timeout,
        verify=True if plain else ssl_context(ca_file),
    )
