"""Registry credentials from a docker config JSON (the `.dockerconfigjson` of a Secret)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from tuning_runner.oci.reference import DOCKER_HUB, DOCKER_HUB_API

_HUB_ALIASES = {DOCKER_HUB, DOCKER_HUB_API, "index.docker.io"}


class DockerConfigError(ValueError):
    """The docker config JSON cannot be read."""


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""


def _host_of(key: str) -> str:
    host = key.strip()
    for prefix in ("https://", "http://"):
        if host.startswith(prefix):
            host = host[len(prefix) :]
    return host.split("/", 1)[0].lower()


def _entry_credentials(key: str, entry: object) -> Credentials:
    if not isinstance(entry, dict):
        raise DockerConfigError(f"auths entry {key!r} is not an object")
    username = str(entry.get("username") or "")
    password = str(entry.get("password") or "")
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(str(entry["auth"])).decode()
        except (ValueError, UnicodeDecodeError) as err:
            raise DockerConfigError(f"auths entry {key!r}: auth is not base64") from err
        username, sep, password = decoded.partition(":")
        if not sep:
            raise DockerConfigError(f"auths entry {key!r}: auth is not 'user:password'")
    return Credentials(
        username=username,
        password=password,
        identity_token=str(entry.get("identitytoken") or ""),
        registry_token=str(entry.get("registrytoken") or ""),
    )


@dataclass(frozen=True)
class DockerConfig:
    """Credentials by registry host."""

    auths: dict[str, Credentials]

    @classmethod
    def empty(cls) -> DockerConfig:
        return cls(auths={})

    @classmethod
    def from_json(cls, text: str, source: str = "docker config") -> DockerConfig:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as err:
            raise DockerConfigError(f"{source} is not valid JSON: {err}") from err
        if not isinstance(doc, dict):
            raise DockerConfigError(f"{source} is not a JSON object")
        # A `.dockercfg` (old format) is the auths map itself.
        auths = doc.get("auths", doc if "auths" not in doc else {})
        if not isinstance(auths, dict):
            raise DockerConfigError(f"{source}: 'auths' is not an object")
        return cls(auths={_host_of(k): _entry_credentials(k, v) for k, v in auths.items()})

    @classmethod
    def load(cls, paths: list[Path]) -> DockerConfig:
        """Merge several files (each a file, or a folder with `config.json`/`.dockerconfigjson`)."""
        merged: dict[str, Credentials] = {}
        for path in paths:
            candidates = (
                [path / "config.json", path / ".dockerconfigjson", path / ".dockercfg"]
                if path.is_dir()
                else [path]
            )
            for candidate in candidates:
                if candidate.is_file():
                    merged.update(cls.from_json(candidate.read_text(), str(candidate)).auths)
        return cls(auths=merged)

    def for_registry(self, registry: str) -> Credentials | None:
        host = registry.lower()
        if host in self.auths:
            return self.auths[host]
        if host in _HUB_ALIASES:
            for alias in _HUB_ALIASES:
                if alias in self.auths:
                    return self.auths[alias]
        return None
