"""The real node's sandbox ("pause") image, built here from ``hack/realnode/pause``.

No registry image can be pulled on this machine, so the pause program is our own (a static Go
binary that waits for SIGTERM and reaps zombies) and its image is written as a one-layer OCI
archive for ``ctr images import``.
"""

from __future__ import annotations

from pathlib import Path

from kaito_testing.gobuild import build_static
from kaito_testing.oci_archive import ImageFile, ImageSpec, write_image_archive

PAUSE_IMAGE = "kaito.local/pause:1"
SOURCE = Path("hack/realnode/pause")


def build_pause_binary(out: Path) -> Path:
    """Builds the static pause binary into ``out``."""
    return build_static(SOURCE, out)


def write_pause_archive(work_dir: Path) -> Path:
    """Builds the pause program and writes its image archive; returns the archive's path."""
    binary = build_pause_binary(work_dir / "pause")
    spec = ImageSpec(
        name=PAUSE_IMAGE,
        files=[ImageFile("pause", binary.read_bytes())],
        entrypoint=["/pause"],
        user="65535:65535",
    )
    return write_image_archive(spec, work_dir / "pause.tar")
