"""Large images from buildah's store into the real node's containerd without copying them.

The ML images (inference server, tuning runner) are about 6 GB each. An import through an
archive needs them about three times on disk at its peak (buildah's temporary OCI layout,
containerd's content store, the unpacked snapshots), more than this shared machine can spare.
But both sides keep layers the same way: buildah's ``overlay`` storage driver keeps each layer
unpacked in ``overlay/<layer>/diff`` (overlayfs whiteouts and opaque directories included), and
containerd's ``overlayfs`` snapshotter keeps each committed snapshot as such a directory. So for
each layer, bottom up, this module:

1. prepares an active snapshot on top of the previous layer's chain ID (``ctr snapshots
   prepare``), copies the layer's ``diff`` directory into it as hard links (``cp -al``, which
   keeps ownership, modes, device whiteouts and xattrs; overlayfs never writes to a lower
   layer, so sharing the inodes is safe) and commits it under the layer's chain ID, exactly as
   containerd's unpacker names it;
2. imports the image's own config (byte for byte, so the image ID is buildah's) and a manifest
   listing the uncompressed layers (``ctr images import --no-unpack``; the layer blobs
   themselves are not stored, as with containerd's ``discard_unpacked_layers``);
3. labels the config blob with the top snapshot (``containerd.io/gc.ref.snapshot.overlayfs``)
   so containerd's garbage collector keeps the snapshots while the image exists.

The CRI plugin then sees the image as unpacked and runs it like any other. Snapshots already
present (layers shared with an image imported earlier) are reused.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kaito_testing.containerd import Containerd, ContainerdError
from kaito_testing.oci_archive import metadata_archive

log = logging.getLogger(__name__)

STORAGE = Path("/var/lib/containers/storage")
SNAPSHOTTER = "overlayfs"
_LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"


class SnapshotImportError(RuntimeError):
    """The image is not in buildah's overlay store or containerd refused a step."""


@dataclass(frozen=True)
class StoredLayer:
    """One layer of buildah's store: where its files are and what it is."""

    id: str
    diff_id: str
    size: int
    diff_dir: Path


@dataclass(frozen=True)
class StoredImage:
    """An image of buildah's store: its exact config bytes and its layers, bottom first."""

    name: str
    config: bytes
    layers: list[StoredLayer]

    @property
    def image_id(self) -> str:
        return "sha256:" + hashlib.sha256(self.config).hexdigest()


def _big_data(image_dir: Path, key: str) -> bytes:
    name = "=" + base64.b64encode(key.encode()).decode()
    return (image_dir / name).read_bytes()


def read_stored_image(name: str, storage: Path = STORAGE) -> StoredImage:
    """Reads ``name`` from containers-storage's ``overlay`` driver."""
    images = json.loads((storage / "overlay-images" / "images.json").read_text())
    entry = next((i for i in images if name in (i.get("names") or [])), None)
    if entry is None:
        raise SnapshotImportError(f"image {name} is not in {storage} (run `make images`)")
    config = _big_data(storage / "overlay-images" / entry["id"], f"sha256:{entry['id']}")
    if hashlib.sha256(config).hexdigest() != entry["id"]:
        raise SnapshotImportError(f"the stored config of {name} does not match its image ID")
    by_id = {
        layer["id"]: layer
        for layer in json.loads((storage / "overlay-layers" / "layers.json").read_text())
    }
    chain: list[StoredLayer] = []
    layer_id: str | None = entry["layer"]
    while layer_id:
        layer = by_id[layer_id]
        diff_dir = storage / "overlay" / layer_id / "diff"
        if not diff_dir.is_dir():
            raise SnapshotImportError(f"layer {layer_id} of {name} has no diff directory")
        chain.append(StoredLayer(layer_id, layer["diff-digest"], int(layer["diff-size"]), diff_dir))
        layer_id = layer.get("parent")
    chain.reverse()
    diff_ids = json.loads(config)["rootfs"]["diff_ids"]
    if diff_ids != [layer.diff_id for layer in chain]:
        raise SnapshotImportError(f"the layers of {name} do not match its config's diff_ids")
    return StoredImage(name, config, chain)


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The OCI chain ID of each layer (the names containerd's unpacker gives snapshots)."""
    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out


def _snapshot_exists(node: Containerd, key: str) -> bool:
    try:
        node.ctr("snapshots", "--snapshotter", SNAPSHOTTER, "info", key)
    except ContainerdError:
        return False
    return True


def _upper_dir(node: Containerd, key: str) -> Path:
    out = node.ctr("snapshots", "--snapshotter", SNAPSHOTTER, "mounts", "/unused", key)
    match = re.search(r"upperdir=([^,\s]+)", out)
    if match:
        return Path(match.group(1))
    bind = re.search(r"mount -t bind (\S+) ", out)
    if bind:
        return Path(bind.group(1))
    raise SnapshotImportError(f"cannot find the directory of snapshot {key}: {out}")


def _commit_layer(node: Containerd, layer: StoredLayer, chain_id: str, parent: str | None) -> None:
    key = f"kaito-import-{chain_id.removeprefix('sha256:')[:32]}"
    if _snapshot_exists(node, key):
        node.ctr("snapshots", "--snapshotter", SNAPSHOTTER, "rm", key)
    args = ["snapshots", "--snapshotter", SNAPSHOTTER, "prepare", key]
    node.ctr(*args, *([parent] if parent else []))
    upper = _upper_dir(node, key)
    result = subprocess.run(
        ["cp", "-a", "-l", f"{layer.diff_dir}/.", f"{upper}/"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        node.ctr("snapshots", "--snapshotter", SNAPSHOTTER, "rm", key)
        raise SnapshotImportError(f"linking layer {layer.id} failed: {result.stderr.strip()}")
    node.ctr("snapshots", "--snapshotter", SNAPSHOTTER, "commit", chain_id, key)


def import_linked(node: Containerd, name: str, work_dir: Path, storage: Path = STORAGE) -> bool:
    """Imports ``name`` by linking its layers; False when containerd already has this image."""
    from kaito_testing.image_import import containerd_image_id

    image = read_stored_image(name, storage)
    if containerd_image_id(node, name) == image.image_id:
        return False
    started = time.monotonic()
    chains = chain_ids([layer.diff_id for layer in image.layers])
    linked = 0
    for index, (layer, chain_id) in enumerate(zip(image.layers, chains, strict=True)):
        if not _snapshot_exists(node, chain_id):
            _commit_layer(node, layer, chain_id, chains[index - 1] if index else None)
            linked += 1
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": image.image_id,
                "size": len(image.config),
            },
            "layers": [
                {"mediaType": _LAYER_TYPE, "digest": layer.diff_id, "size": layer.size}
                for layer in image.layers
            ],
        },
        sort_keys=True,
    ).encode()
    archive = work_dir / "metadata.tar"
    work_dir.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(metadata_archive(name, image.config, manifest))
    try:
        node.ctr("images", "import", "--no-unpack", str(archive))
    finally:
        archive.unlink(missing_ok=True)
    node.ctr(
        "content",
        "label",
        image.image_id,
        f"containerd.io/gc.ref.snapshot.{SNAPSHOTTER}={chains[-1]}",
    )
    log.info(
        "Imported image by linking its layers",
        extra={
            "image": name,
            "id": image.image_id,
            "layers": len(image.layers),
            "linked": linked,
            "duration_s": round(time.monotonic() - started, 1),
        },
    )
    return True
