"""Run a pod spec's containers on this machine, as a kubelet would run them in order.

Only for pods whose containers run `python -m tuning_runner ...`, or an image entrypoint given
here (a model image's copier, as a local binary): each container's argv and env are taken
verbatim from the spec, with every path that lies under one of its volume mounts (or
under a path the image provides, such as the model weights) mapped to a folder of a temp dir,
and container ports mapped to free local ports. Init containers run one after the other and the
first failure stops the pod, as in Kubernetes; then the main containers run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Obj = dict[str, Any]


@dataclass
class ContainerRun:
    name: str
    argv: list[str]
    returncode: int
    stderr: str
    stdout: str
    termination_message: str
    seconds: float


@dataclass
class LocalPod:
    spec: Obj
    root: Path
    image_paths: dict[str, Path] = field(default_factory=dict)  # path in the image -> here
    ports: dict[int, int] = field(default_factory=dict)  # containerPort -> local port
    # image -> (entrypoint here, its extra env), for containers that give only `args`
    entrypoints: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)
    runs: list[ContainerRun] = field(default_factory=list)

    @property
    def rootfs(self) -> Path:
        return self.root / "rootfs"

    def _mount_path(self, volume: str) -> str:
        for c in [*(self.spec.get("initContainers") or []), *self.spec["containers"]]:
            for m in c.get("volumeMounts") or []:
                if m["name"] == volume:
                    return str(m["mountPath"])
        raise KeyError(f"volume {volume} is mounted by no container")

    def local_path(self, path: str) -> Path:
        """Where an absolute path of the pod lies here: the image's paths as given, the rest
        (volume mounts, /mnt, the termination log) under one root shared by the containers."""
        for inside, outside in sorted(self.image_paths.items(), key=lambda p: -len(p[0])):
            if path == inside or path.startswith(inside.rstrip("/") + "/"):
                return Path(str(outside) + path[len(inside.rstrip("/")) :])
        return self.rootfs / path.lstrip("/")

    def volume_dir(self, volume: str) -> Path:
        path = self.local_path(self._mount_path(volume))
        path.mkdir(parents=True, exist_ok=True)
        return path

    def termination_path(self, container: Obj) -> Path:
        path = self.local_path(container.get("terminationMessagePath") or "/dev/termination-log")
        path = path.with_name(f"{path.name}-{container['name']}")  # one per container
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def map_value(self, container: Obj, value: str) -> str:
        if value == (container.get("terminationMessagePath") or "/dev/termination-log"):
            return str(self.termination_path(container))
        if value.startswith("/"):
            return str(self.local_path(value))
        if value.isdigit() and int(value) in self.ports:
            return str(self.ports[int(value)])
        return value

    def _entrypoint(self, container: Obj) -> tuple[list[str], dict[str, str]] | None:
        if "command" in container:
            return None
        return self.entrypoints.get(container["image"])

    def argv(self, container: Obj) -> list[str]:
        found = self._entrypoint(container)
        if found is not None:
            entrypoint, _ = found
            args = container.get("args", [])
            return [*entrypoint, *(self.map_value(container, a) for a in args)]
        command = [*container.get("command", []), *container.get("args", [])]
        assert command[:3] == ["python", "-m", "tuning_runner"], command
        return [sys.executable, *(self.map_value(container, a) for a in command[1:])]

    def env(self, container: Obj) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAITO_TUNING_")}
        env["HOME"] = str(self.local_path("/tmp"))
        found = self._entrypoint(container)
        if found is not None:
            env.update(found[1])
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = self.map_value(container, str(item["value"]))
        return env

    def run_container(
        self, container: Obj, while_running: Callable[[subprocess.Popen[str]], None] | None = None
    ) -> ContainerRun:
        for m in container.get("volumeMounts") or []:
            self.volume_dir(m["name"])
        argv = self.argv(container)
        started = time.monotonic()
        proc = subprocess.Popen(
            argv,
            env=self.env(container),
            # An entrypoint's report is kept; the runner's stdout is not read while it runs.
            stdout=subprocess.PIPE if self._entrypoint(container) else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if while_running is not None:
            while_running(proc)
        stdout, stderr = proc.communicate(timeout=600)
        stdout = stdout or ""
        path = self.termination_path(container)
        run = ContainerRun(
            container["name"],
            argv,
            proc.returncode,
            stderr,
            stdout,
            path.read_text() if path.exists() else "",
            time.monotonic() - started,
        )
        self.runs.append(run)
        return run

    def run(
        self, while_running: dict[str, Callable[[subprocess.Popen[str]], None]] | None = None
    ) -> bool:
        """Init containers in order, then the containers; False at the first failure."""
        hooks = while_running or {}
        for container in [*(self.spec.get("initContainers") or []), *self.spec["containers"]]:
            run = self.run_container(container, hooks.get(container["name"]))
            if run.returncode != 0:
                return False
        return True
