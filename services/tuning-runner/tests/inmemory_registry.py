"""An in-memory registry with the `RegistryClient` interface, for tests of the code above it."""

from __future__ import annotations

import json
from pathlib import Path

from tuning_runner.oci.client import RegistryError, sha256_digest


class InMemoryRegistry:
    def __init__(self) -> None:
        self.blobs: dict[str, dict[str, bytes]] = {}
        self.manifests: dict[str, dict[str, tuple[bytes, str]]] = {}

    def blob_exists(self, repository: str, digest: str) -> bool:
        return digest in self.blobs.get(repository, {})

    def push_blob(self, repository: str, digest: str, data: bytes | Path) -> None:
        if isinstance(data, Path):
            data = data.read_bytes()
        if sha256_digest(data) != digest:
            raise RegistryError(f"blob digest mismatch for {digest}")
        self.blobs.setdefault(repository, {})[digest] = data

    def get_blob(self, repository: str, digest: str) -> bytes:
        try:
            return self.blobs[repository][digest]
        except KeyError as err:
            raise RegistryError(f"GET blob {digest} failed with HTTP 404") from err

    def download_blob(self, repository: str, digest: str, target: Path) -> int:
        data = self.get_blob(repository, digest)
        target.write_bytes(data)
        return len(data)

    def put_manifest(
        self, repository: str, reference: str, manifest: bytes, media_type: str
    ) -> str:
        doc = json.loads(manifest)
        for desc in [doc.get("config", {}), *doc.get("layers", [])]:
            if desc and not self.blob_exists(repository, desc["digest"]):
                raise RegistryError(f"manifest references unknown blob {desc['digest']}")
        digest = sha256_digest(manifest)
        store = self.manifests.setdefault(repository, {})
        store[reference] = store[digest] = (manifest, media_type)
        return digest

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str]:
        try:
            return self.manifests[repository][reference]
        except KeyError as err:
            raise RegistryError(f"GET manifest {repository}:{reference}: HTTP 404") from err
