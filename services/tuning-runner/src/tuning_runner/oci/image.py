"""Kaito's adapter image format, pushed and pulled through a `RegistryClient`.

A plain OCI image: config `application/vnd.oci.image.config.v1+json` with `rootfs.diff_ids`, one
`tar+gzip` layer holding `data/<file>`, manifest annotation `sh.kaito.model.name`. Kaito's own
oras-based pusher and skopeo-based puller read and write the same thing. The layer is built
deterministically (zeroed times and owners), so pushing the same adapter twice gives one digest.
Layers are built into and pulled through files on disk, never held whole in memory.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tuning_runner.oci.blobs import CHUNK_BYTES, HashingWriter
from tuning_runner.oci.client import (
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    RegistryClient,
    RegistryError,
    sha256_digest,
)
from tuning_runner.oci.reference import ImageReference

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_LAYER_TAR_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MODEL_NAME_ANNOTATION = "sh.kaito.model.name"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
DATA_DIR = "data"


class ImageFormatError(ValueError):
    """The image does not have the shape this program reads or writes."""


@dataclass(frozen=True)
class PushedImage:
    reference: ImageReference
    manifest_digest: str
    layer_digest: str
    diff_id: str


@dataclass(frozen=True)
class Layer:
    """A layer built on disk: the gzip file, its digest and size, and the tar's diff_id."""

    path: Path
    digest: str
    size: int
    diff_id: str


def build_layer(files: Sequence[Path], target: Path, prefix: str = DATA_DIR) -> Layer:
    """Write a gzip tar of `files` under `prefix/` to `target`, streaming (the files are read in
    chunks, never whole); the digests are computed on the way."""
    with target.open("wb") as out:
        compressed = HashingWriter(out)
        with gzip.GzipFile(
            filename="", mode="wb", fileobj=compressed, compresslevel=6, mtime=0
        ) as gz:
            raw = HashingWriter(gz)  # type: ignore[arg-type]
            with tarfile.open(fileobj=raw, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                folder = tarfile.TarInfo(prefix)
                folder.type = tarfile.DIRTYPE
                folder.mode = 0o755
                tar.addfile(folder)
                for path in sorted(files, key=lambda p: p.name):
                    info = tarfile.TarInfo(f"{prefix}/{path.name}")
                    info.size = path.stat().st_size
                    info.mode = 0o644
                    with path.open("rb") as fh:
                        tar.addfile(info, fh)
    return Layer(target, compressed.digest, compressed.size, raw.digest)


def image_config(diff_ids: list[str]) -> bytes:
    doc = {
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _descriptor(media_type: str, data: bytes) -> dict[str, object]:
    return {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data)}


def push_adapter(
    client: RegistryClient, ref: ImageReference, adapter_dir: Path, model_name: str
) -> PushedImage:
    """Push `adapter_config.json` + `adapter_model.safetensors` from `adapter_dir` as `ref`."""
    files = [adapter_dir / name for name in ADAPTER_FILES]
    missing = [p.name for p in files if not p.is_file()]
    if missing:
        raise ImageFormatError(f"{adapter_dir} lacks {', '.join(missing)}; nothing to push")
    with tempfile.TemporaryDirectory(prefix="kaito-layer-") as scratch:
        layer = build_layer(files, Path(scratch) / "layer.tar.gz")
        config = image_config([layer.diff_id])
        manifest_doc: dict[str, object] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _descriptor(OCI_CONFIG, config),
            "layers": [
                {"mediaType": OCI_LAYER_TAR_GZIP, "digest": layer.digest, "size": layer.size}
            ],
            "annotations": {MODEL_NAME_ANNOTATION: model_name},
        }
        blobs: list[tuple[str, bytes | Path]] = [
            (layer.digest, layer.path),
            (sha256_digest(config), config),
        ]
        for digest, blob in blobs:
            if not client.blob_exists(ref.repository, digest):
                client.push_blob(ref.repository, digest, blob)
    manifest = json.dumps(manifest_doc, separators=(",", ":")).encode()
    digest = client.put_manifest(ref.repository, ref.reference, manifest, OCI_MANIFEST)
    return PushedImage(ref, digest, layer.digest, layer.diff_id)


def _select_manifest(client: RegistryClient, ref: ImageReference) -> dict[str, object]:
    body, media_type = client.get_manifest(ref.repository, ref.reference)
    doc = json.loads(body)
    if media_type in (OCI_INDEX, DOCKER_MANIFEST_LIST) or "manifests" in doc:
        entries = doc.get("manifests") or []
        if not entries:
            raise ImageFormatError(f"image index {ref} lists no manifests")
        chosen = next(
            (
                m
                for m in entries
                if m.get("platform", {}).get("os") == "linux"
                and m.get("platform", {}).get("architecture") == "amd64"
            ),
            entries[0],
        )
        body, media_type = client.get_manifest(ref.repository, str(chosen["digest"]))
        doc = json.loads(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("layers"), list):
        raise ImageFormatError(f"manifest of {ref} has no layers")
    return doc


@contextmanager
def _open_layer(path: Path, media_type: str) -> Iterator[tarfile.TarFile]:
    """The layer file as a tar read front to back (gzip decompressed on the fly)."""
    with path.open("rb") as fh:
        magic = fh.read(2)
        fh.seek(0)
        if magic == b"\x1f\x8b":
            mode = "r|gz"
        elif media_type.endswith("+zstd"):
            raise ImageFormatError(f"layer media type {media_type} (zstd) is not supported")
        else:
            mode = "r|"
        with tarfile.open(fileobj=fh, mode=mode) as tar:  # type: ignore[call-overload]
            yield tar


def _extract_under(tar: tarfile.TarFile, prefix: str, target: Path) -> list[str]:
    """Copy regular files below `prefix/` into `target`, refusing anything outside it. Reads
    the tar in order (a stream), copying each file in chunks."""
    written: list[str] = []
    for member in tar:
        name = PurePosixPath(member.name.lstrip("/"))
        parts = [p for p in name.parts if p not in ("", ".")]
        if not parts or parts[0] != prefix or len(parts) < 2:
            continue
        if ".." in parts:
            raise ImageFormatError(f"layer entry {member.name!r} escapes its folder")
        relative = Path(*parts[1:])
        if member.isdir():
            (target / relative).mkdir(parents=True, exist_ok=True)
            continue
        if not member.isfile():
            continue  # links and devices are not copied
        out = target / relative
        out.parent.mkdir(parents=True, exist_ok=True)
        src = tar.extractfile(member)
        if src is None:
            continue
        with src, out.open("wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK_BYTES)
        written.append(relative.as_posix())
    return written


def pull_image(
    client: RegistryClient, ref: ImageReference, dest: Path, prefix: str = DATA_DIR
) -> list[str]:
    """Copy the image's `/<prefix>/*` into `dest` (created; replaced files are whole or absent).

    Returns the relative paths written. Files land in a scratch folder beside `dest` first and
    are moved in only after every layer was read and verified.
    """
    manifest = _select_manifest(client, ref)
    dest.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".pull-", dir=dest.parent))
    try:
        written: list[str] = []
        files = scratch / "files"
        for layer in manifest["layers"]:  # type: ignore[attr-defined]
            blob = scratch / "layer"
            client.download_blob(ref.repository, str(layer["digest"]), blob)
            with _open_layer(blob, str(layer.get("mediaType", ""))) as tar:
                written.extend(_extract_under(tar, prefix, files))
            blob.unlink()
        if not written:
            raise ImageFormatError(f"image {ref} holds no files under /{prefix}")
        for rel in dict.fromkeys(written):
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(files / rel, target)
        return sorted(dict.fromkeys(written))
    except (tarfile.TarError, OSError, KeyError) as err:
        raise RegistryError(f"reading image {ref} failed: {err}") from err
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
