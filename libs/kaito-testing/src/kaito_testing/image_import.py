"""Images built by ``make images`` (buildah's store) imported into the real node's containerd.

``buildah push`` writes the image as an uncompressed OCI archive into a named pipe that ``ctr
images import`` reads (no temporary copy of multi-gigabyte images; no gzip of layers that are
unpacked at once anyway). An image whose config digest containerd already holds under the same
name is skipped, so with the node's persistent image store a warm run imports nothing.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from kaito_testing.containerd import Containerd, ContainerdError, ContainerdPaths

log = logging.getLogger(__name__)


class ImageImportError(RuntimeError):
    """An image is missing from buildah's store or its import failed."""


def buildah_image_id(name: str) -> str:
    """The config digest (``sha256:...``) buildah holds for ``name``."""
    result = subprocess.run(
        [
            "buildah",
            "inspect",
            "--type",
            "image",
            "--format",
            "{{.FromImageDigest}} {{.FromImageID}}",
            name,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ImageImportError(
            f"image {name} is not in buildah's store (run `make images`): {result.stderr.strip()}"
        )
    image_id = result.stdout.split()[-1]
    return image_id if image_id.startswith("sha256:") else f"sha256:{image_id}"


def containerd_image_id(node: Containerd, name: str) -> str | None:
    """The config digest containerd holds for ``name``, None when it has no such image."""
    try:
        out = node.ctr("images", "ls", f"name=={name}")
    except ContainerdError:
        return None
    lines = out.splitlines()[1:]
    if not lines:
        return None
    manifest_digest = lines[0].split()[2]
    try:
        manifest = json.loads(node.ctr("content", "get", manifest_digest))
    except (ContainerdError, ValueError):
        return None
    digest = manifest.get("config", {}).get("digest")
    return str(digest) if digest else None


def import_image(node: Containerd, name: str) -> bool:
    """Imports ``name`` from buildah's store unless containerd has it; True when imported."""
    wanted = buildah_image_id(name)
    if containerd_image_id(node, name) == wanted:
        return False
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kaito-import-") as tmp:
        fifo = Path(tmp) / "image.tar"
        os.mkfifo(fifo)
        push = subprocess.Popen(
            [
                "buildah",
                "push",
                "--quiet",
                "--disable-compression",
                "--format",
                "oci",
                name,
                f"oci-archive:{fifo}:{name}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        ctr = subprocess.run(
            [*node.ctr_argv(), "images", "import", str(fifo)],
            capture_output=True,
            text=True,
            check=False,
        )
        push_err = push.communicate()[1].decode(errors="replace")
    if push.returncode != 0 or ctr.returncode != 0:
        raise ImageImportError(
            f"importing {name} failed: buildah push: {push_err.strip()} ctr: {ctr.stderr.strip()}"
        )
    log.info(
        "Imported image",
        extra={"image": name, "id": wanted, "duration_s": round(time.monotonic() - started, 1)},
    )
    return True


def import_images(node: Containerd, names: Sequence[str]) -> list[str]:
    """Imports each image that containerd lacks; returns the names imported."""
    return [name for name in names if import_image(node, name)]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kaito_testing.image_import --socket SOCK IMAGE...`` (the dev node)."""
    import argparse

    parser = argparse.ArgumentParser(prog="image_import", description=__doc__)
    parser.add_argument("--socket", type=Path, required=True, help="the node's containerd socket")
    parser.add_argument(
        "--copy",
        action="store_true",
        help="import through an archive instead of hard-linking the layers (snapshot_import)",
    )
    parser.add_argument("images", nargs="+")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    node = Containerd(ContainerdPaths(args.socket.parent), Path(os.devnull))
    if args.copy:
        imported = import_images(node, args.images)
    else:
        from kaito_testing.snapshot_import import import_linked

        work = Path(tempfile.mkdtemp(prefix="kaito-import-"))
        imported = [name for name in args.images if import_linked(node, name, work)]
        work.rmdir()
    print(f"imported {len(imported)} of {len(args.images)} images: {' '.join(imported)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
