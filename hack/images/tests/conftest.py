"""Fixtures of the image smoke tests: the images `make images` built, started with `buildah run`.

Each container starts from its image (`buildah from`) and runs the image's own ENTRYPOINT as the
image's own USER (`buildah run --isolation chroot`, host network), so what runs is what a
kubelet would run. Images are named `$IMAGE_REPO/<service>:$IMAGE_TAG` (localhost/kaito, dev).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kaito_testing.tiny_model import cached_tiny_model

REPO = os.environ.get("IMAGE_REPO", "localhost/kaito")
TAG = os.environ.get("IMAGE_TAG", "dev")
DRIVER = os.environ.get("KAITO_BUILDAH_DRIVER", "overlay")
ROOT = Path(__file__).resolve().parents[3]
USER_ID = 65532
SERVICES = ["workspace-controller", "gpu-provisioner", "inference-server", "tuning-runner"]


def buildah(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """One buildah command; raises with its stderr when it fails."""
    done = subprocess.run(
        ["buildah", "--storage-driver", DRIVER, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"buildah {' '.join(args)} failed: {done.stderr.strip()}")
    return done


def image_name(service: str) -> str:
    return f"{REPO}/{service}:{TAG}"


@dataclass(frozen=True)
class Layer:
    digest: str
    size: int


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an image's OCI config that decide how it starts."""

    name: str
    entrypoint: list[str]
    user: str
    env: dict[str, str]
    labels: dict[str, str]
    layers: list[Layer]


def image_config(service: str) -> ImageConfig:
    name = image_name(service)
    try:
        data: dict[str, Any] = json.loads(buildah("inspect", "--type", "image", name).stdout)
    except RuntimeError:
        pytest.fail(f"image {name} is missing: run `make images` first")
    config = data["OCIv1"]["config"]
    manifest = json.loads(data["Manifest"])
    layers = [Layer(item["digest"], int(item["size"])) for item in manifest["layers"]]
    env = dict(item.split("=", 1) for item in config.get("Env", []))
    return ImageConfig(
        name=name,
        entrypoint=list(config.get("Entrypoint") or []),
        user=str(config.get("User", "")),
        env=env,
        labels=dict(config.get("Labels") or {}),
        layers=layers,
    )


class Container:
    """A working container of one image; `start` runs the image's entrypoint in it."""

    def __init__(self, service: str, log_dir: Path) -> None:
        self.config = image_config(service)
        self.service = service
        self.log_path = log_dir / f"{service}.log"
        self.id = buildah("from", "--pull-never", self.config.name).stdout.strip()
        self._process: subprocess.Popen[bytes] | None = None

    def _run_argv(
        self, argv: Sequence[str], volumes: Sequence[str], env: dict[str, str]
    ) -> list[str]:
        cmd = ["buildah", "--storage-driver", DRIVER, "run", "--isolation", "chroot"]
        for volume in volumes:
            cmd += ["--volume", volume]
        for key, value in env.items():
            cmd += ["--env", f"{key}={value}"]
        return [*cmd, self.id, "--", *argv]

    def exec(
        self, argv: Sequence[str], *, volumes: Sequence[str] = (), env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` in the container to its end (no entrypoint), as the image's user."""
        return subprocess.run(
            self._run_argv(argv, volumes, env or {}),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    def start(
        self, args: Sequence[str], *, volumes: Sequence[str] = (), env: dict[str, str] | None = None
    ) -> None:
        """Start the image's ENTRYPOINT with `args`, in the background; output to the log."""
        argv = self._run_argv([*self.config.entrypoint, *args], volumes, env or {})
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def run_entrypoint(
        self,
        args: Sequence[str],
        *,
        volumes: Sequence[str] = (),
        env: dict[str, str] | None = None,
        timeout: float = 600,
    ) -> int:
        """Run the ENTRYPOINT with `args` to its end; its exit status."""
        self.start(args, volumes=volumes, env=env)
        assert self._process is not None
        return self._process.wait(timeout=timeout)

    def alive(self) -> None:
        """Raise when the started process has exited (for wait_for's `alive`)."""
        if self._process is not None and self._process.poll() is not None:
            raise AssertionError(
                f"{self.service} exited with {self._process.returncode}:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=20)
        buildah("rm", self.id)


@pytest.fixture
def container(tmp_path: Path) -> Iterator[Any]:
    """Factory: `container(service)` -> a Container, stopped and removed after the test."""
    made: list[Container] = []

    def make(service: str) -> Container:
        made.append(Container(service, tmp_path))
        return made[-1]

    yield make
    for item in made:
        item.stop()


def shared_dir(path: Path) -> Path:
    """A host folder the image's non-root user can read and write when mounted."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, USER_ID, USER_ID)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with tokenizer and chat template, readable by the image's user."""
    model = cached_tiny_model(tmp_path_factory.mktemp("models"))
    for path in [model, *model.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    model.parent.chmod(0o755)
    return model
