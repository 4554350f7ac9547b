"""The real node's sandbox ("pause") image, built here from ``hack/realnode/pause``.

No registry image can be pulled on this machine, so the pause program is our own (a static Go
binary that waits for SIGTERM and reaps zombies) and its image is written as a one-layer OCI
archive for ``ctr images import``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from kaito_common.testing.oci_archive import ImageFile, ImageSpec, write_image_archive

PAUSE_IMAGE = "kaito.local/pause:1"
SOURCE = Path("hack/realnode/pause")


class PauseImageError(RuntimeError):
    """The pause program could not be found or built."""


def find_source() -> Path:
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for folder in [start, *start.parents]:
            if (folder / SOURCE / "main.go").is_file():
                return folder / SOURCE
    raise PauseImageError(f"cannot find {SOURCE}/main.go from the working directory")


def _go() -> str:
    found = shutil.which("go")
    if found:
        return found
    if Path("/usr/local/go/bin/go").is_file():
        return "/usr/local/go/bin/go"
    raise PauseImageError("found no go on PATH to build the pause program (run make testbin)")


def build_pause_binary(out: Path) -> Path:
    """Builds the static pause binary into ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false", "GOTOOLCHAIN": "local"}
    result = subprocess.run(
        [_go(), "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out), "."],
        cwd=find_source(),
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if result.returncode != 0:
        raise PauseImageError(f"go build of the pause program failed: {result.stderr}")
    return out


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
