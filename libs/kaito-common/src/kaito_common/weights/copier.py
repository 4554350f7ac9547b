"""The weight copier of model images: the static Go program in hack/images/copy-weights, the
image's entrypoint (it needs no shell or Python in the image)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from kaito_common.weights.errors import WeightsError

COPIER_SOURCE = Path("hack/images/copy-weights")
_GO_FALLBACK = Path("/usr/local/go/bin/go")


class CopierBuildError(WeightsError):
    """No Go toolchain, no copier source, or a failed build."""


def find_copier_source() -> Path:
    """hack/images/copy-weights looked up from the working directory and from this package
    upwards (a checkout), whatever the current directory."""
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for folder in (start, *start.parents):
            if (folder / COPIER_SOURCE / "main.go").is_file():
                return folder / COPIER_SOURCE
    raise CopierBuildError(
        f"Cannot find {COPIER_SOURCE}/main.go from {Path.cwd()}: run from the repository "
        "checkout, or pass --copier-source or a built --copier"
    )


def go_binary() -> str:
    found = shutil.which("go")
    if found:
        return found
    if _GO_FALLBACK.is_file():
        return str(_GO_FALLBACK)
    raise CopierBuildError(
        "Found no go on PATH to build the weight copier (run make testbin), or pass --copier"
    )


def build_copier(out: Path, source: Path | None = None) -> Path:
    """Builds the copier as the static binary `out` (CGO off, stripped)."""
    source = source or find_copier_source()
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false", "GOTOOLCHAIN": "local"}
    result = subprocess.run(
        [go_binary(), "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out.resolve()), "."],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if result.returncode != 0:
        raise CopierBuildError(f"go build of {source} failed: {result.stderr.strip()}")
    return out
