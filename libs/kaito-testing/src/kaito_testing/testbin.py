"""Where the control plane's binaries are, building them when they are missing.

The binaries come from ``hack/testbin/build.sh`` (``make testbin``), which builds only what is
missing and prints the directory holding them. ``KAITO_TESTBIN`` names that directory
explicitly (the script honours it too).
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

from kaito_testing.checkout import find_in_checkout

log = logging.getLogger(__name__)

BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "helm",
)
BUILD_SCRIPT = Path("hack/testbin/build.sh")


class TestbinError(RuntimeError):
    """The binaries are missing and could not be built."""


def _find_build_script() -> Path | None:
    return find_in_checkout(BUILD_SCRIPT)


def _complete(directory: Path) -> bool:
    return all((directory / name).is_file() for name in BINARIES)


def ensure_testbin() -> Path:
    """Returns the directory holding every binary, running the build script when needed.

    A warm cache makes this a few milliseconds: the script only checks its stamps."""
    script = _find_build_script()
    if script is None:
        explicit = os.environ.get("KAITO_TESTBIN")
        if explicit and _complete(Path(explicit)):
            return Path(explicit)
        raise TestbinError(
            "cannot find hack/testbin/build.sh from the working directory; run `make testbin` "
            "in the repository and set KAITO_TESTBIN to the directory it prints"
        )
    result = subprocess.run(
        ["bash", str(script)],
        stdout=subprocess.PIPE,
        stderr=None,  # the build's progress goes to the terminal
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise TestbinError(f"{script} failed with exit code {result.returncode}")
    directory = Path(result.stdout.strip().splitlines()[-1])
    missing = [name for name in BINARIES if not (directory / name).is_file()]
    if missing:
        raise TestbinError(f"{script} finished but {directory} lacks {', '.join(missing)}")
    log.debug("Found control plane binaries", extra={"bin_dir": str(directory)})
    return directory
