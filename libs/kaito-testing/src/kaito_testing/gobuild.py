"""The Go toolchain `make testbin` installs, used to build the small static programs of the
real node's images (the pause program, a model image's weight copier) from the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from kaito_testing.checkout import find_in_checkout

GO_FALLBACK = Path("/usr/local/go/bin/go")


class GoBuildError(RuntimeError):
    """No Go toolchain, a missing source folder, or a failed build."""


def go_command(purpose: str) -> str:
    """The `go` binary: on PATH, else where `make testbin` installs it."""
    found = shutil.which("go")
    if found:
        return found
    if GO_FALLBACK.is_file():
        return str(GO_FALLBACK)
    raise GoBuildError(f"found no go on PATH to {purpose} (run make testbin)")


def find_in_repo(relative: Path) -> Path:
    """`relative` (a folder with a main.go) looked up from the working directory and from this
    package upwards, so it is found from a checkout whatever the current directory."""
    main = find_in_checkout(relative / "main.go")
    if main is not None:
        return main.parent
    raise GoBuildError(f"cannot find {relative}/main.go from the working directory")


def build_static(relative: Path, out: Path) -> Path:
    """Builds the Go program in the repository folder `relative` as a static binary `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false", "GOTOOLCHAIN": "local"}
    result = subprocess.run(
        [go_command(f"build {relative}"), "build", "-trimpath", "-ldflags", "-s -w",
         "-o", str(out), "."],
        cwd=find_in_repo(relative),
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )  # fmt: skip
    if result.returncode != 0:
        raise GoBuildError(f"go build of {relative} failed: {result.stderr.strip()}")
    return out
