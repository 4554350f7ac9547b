"""A single-layer OCI image archive written from local files, for ``ctr images import``.

The real node cannot pull from any registry, so the images it needs that are not built by
``make images`` (the sandbox "pause" image, small helper images) are written here: one
uncompressed layer holding the given files, an image config, a manifest and an ``index.json``
whose annotation names the image, in an OCI image layout packed as a tar.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
_CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
_MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
_INDEX_TYPE = "application/vnd.oci.image.index.v1+json"


@dataclass(frozen=True)
class ImageFile:
    """One file in the image: its path inside the image, its bytes and its mode; or, when
    ``link`` is set, a symbolic link to ``link``."""

    path: str
    data: bytes = b""
    mode: int = 0o755
    link: str | None = None


@dataclass(frozen=True)
class ImageSpec:
    """What goes into the image and how it starts."""

    name: str
    files: Sequence[ImageFile]
    entrypoint: Sequence[str]
    cmd: Sequence[str] = ()
    user: str = ""
    env: Mapping[str, str] = field(default_factory=dict)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    archive.addfile(info, io.BytesIO(data))


def _add_dir(archive: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = 0
    archive.addfile(info)


def _layer(files: Sequence[ImageFile]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        seen: set[str] = set()
        for item in sorted(files, key=lambda f: f.path):
            parts = item.path.strip("/").split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                if folder not in seen:
                    seen.add(folder)
                    _add_dir(archive, folder)
            if item.link is not None:
                info = tarfile.TarInfo("/".join(parts))
                info.type = tarfile.SYMTYPE
                info.linkname = item.link
                info.mode = 0o777
                info.mtime = 0
                archive.addfile(info)
            else:
                _add_bytes(archive, "/".join(parts), item.data, item.mode)
    return buffer.getvalue()


def image_archive(spec: ImageSpec) -> bytes:
    """Returns the OCI layout tar of ``spec`` (deterministic: same input, same bytes)."""
    layer = _layer(spec.files)
    config_doc: dict[str, object] = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": list(spec.entrypoint),
            "Cmd": list(spec.cmd) or None,
            "User": spec.user,
            "Env": [f"{key}={value}" for key, value in spec.env.items()]
            or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        },
        "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
    }
    config = json.dumps(config_doc, sort_keys=True).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": _MANIFEST_TYPE,
            "config": {"mediaType": _CONFIG_TYPE, "digest": _digest(config), "size": len(config)},
            "layers": [{"mediaType": _LAYER_TYPE, "digest": _digest(layer), "size": len(layer)}],
        },
        sort_keys=True,
    ).encode()
    tag = spec.name.rsplit(":", 1)[1] if ":" in spec.name.rsplit("/", 1)[-1] else "latest"
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": _INDEX_TYPE,
            "manifests": [
                {
                    "mediaType": _MANIFEST_TYPE,
                    "digest": _digest(manifest),
                    "size": len(manifest),
                    "annotations": {
                        "io.containerd.image.name": spec.name,
                        "org.opencontainers.image.ref.name": tag,
                    },
                }
            ],
        },
        sort_keys=True,
    ).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        _add_bytes(archive, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}', 0o644)
        _add_dir(archive, "blobs")
        _add_dir(archive, "blobs/sha256")
        for blob in (layer, config, manifest):
            _add_bytes(archive, "blobs/sha256/" + _digest(blob)[7:], blob, 0o644)
        _add_bytes(archive, "index.json", index, 0o644)
    return buffer.getvalue()


def write_image_archive(spec: ImageSpec, path: Path) -> Path:
    """Writes the archive of ``spec`` to ``path`` and returns it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_archive(spec))
    return path


def metadata_archive(name: str, config: bytes, manifest: bytes) -> bytes:
    """An OCI layout tar naming ``name`` that holds only the manifest and config blobs (for
    ``ctr images import --no-unpack`` when the layers are put in place otherwise)."""
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": _INDEX_TYPE,
            "manifests": [
                {
                    "mediaType": _MANIFEST_TYPE,
                    "digest": _digest(manifest),
                    "size": len(manifest),
                    "annotations": {"io.containerd.image.name": name},
                }
            ],
        },
        sort_keys=True,
    ).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        _add_bytes(archive, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}', 0o644)
        _add_dir(archive, "blobs")
        _add_dir(archive, "blobs/sha256")
        for blob in (config, manifest):
            _add_bytes(archive, "blobs/sha256/" + _digest(blob)[7:], blob, 0o644)
        _add_bytes(archive, "index.json", index, 0o644)
    return buffer.getvalue()
