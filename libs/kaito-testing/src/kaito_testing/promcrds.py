"""The Prometheus operator's CRDs (PodMonitor, ServiceMonitor), so tests can have a real API
server check the chart's monitors.

They come from the operator's Go module (its example/prometheus-operator-crd folder), fetched
through the Go module proxy with the toolchain `make testbin` installs; the Go module cache keeps
the download, and a copy of the two files is kept beside the testbin's other downloads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from kaito_testing.gobuild import go_command

MODULE = "github.com/prometheus-operator/prometheus-operator"
VERSION = "v0.77.1"
CRD_DIR = "example/prometheus-operator-crd"
CRD_FILES = ("monitoring.coreos.com_podmonitors.yaml", "monitoring.coreos.com_servicemonitors.yaml")
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kaito-promcrds"


class PromCrdsError(RuntimeError):
    """The operator's module could not be downloaded or lacks the CRD files."""


def _download_module(version: str) -> Path:
    """The module's folder in the Go module cache (`go mod download` fetches it when missing)."""
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    result = subprocess.run(
        [go_command("download the Prometheus operator's CRDs"), "mod", "download", "-json",
         f"{MODULE}@{version}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )  # fmt: skip
    info = json.loads(result.stdout or "{}") if result.stdout.strip().startswith("{") else {}
    if result.returncode != 0 or not info.get("Dir"):
        reason = info.get("Error") or result.stderr.strip() or f"exit code {result.returncode}"
        raise PromCrdsError(f"go mod download {MODULE}@{version} failed: {reason}")
    return Path(info["Dir"])


def prometheus_operator_crds(version: str = VERSION) -> list[Path]:
    """Paths of the PodMonitor and ServiceMonitor CRD YAMLs of operator release `version`."""
    cached = [CACHE / version / name for name in CRD_FILES]
    if all(path.is_file() for path in cached):
        return cached
    source = _download_module(version) / CRD_DIR
    missing = [name for name in CRD_FILES if not (source / name).is_file()]
    if missing:
        raise PromCrdsError(f"{MODULE}@{version} has no {', '.join(missing)} in {CRD_DIR}")
    (CACHE / version).mkdir(parents=True, exist_ok=True)
    for name, target in zip(CRD_FILES, cached, strict=True):
        partial = target.with_suffix(".part")
        shutil.copyfile(source / name, partial)
        partial.replace(target)
    return cached
