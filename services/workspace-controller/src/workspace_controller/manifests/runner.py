"""Containers that run the tuning runner image (fetch, push, adapter pull): locked down.

The image runs as a non-root user and needs no writable root filesystem (its caches go to the
/tmp emptyDir), so these containers get the strictest security context that still works.
"""

from __future__ import annotations

from typing import Any

from workspace_controller.manifests.runner_access import RunnerAccess
from workspace_controller.manifests.tuning_plan import (
    TERMINATION_LOG,
    pull_secret_dir,
    pull_secret_volume,
)

Obj = dict[str, Any]

TMP_VOLUME = "tmp"


def tmp_volume() -> Obj:
    return {"name": TMP_VOLUME, "emptyDir": {}}


def tmp_mount() -> Obj:
    return {"name": TMP_VOLUME, "mountPath": "/tmp"}


def secret_volume(secret: str) -> Obj:
    return {"name": pull_secret_volume(secret), "secret": {"secretName": secret}}


def secret_mount(secret: str) -> Obj:
    return {
        "name": pull_secret_volume(secret),
        "mountPath": pull_secret_dir(secret),
        "readOnly": True,
    }


def locked_down() -> Obj:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }


def runner_container(
    name: str,
    image: str,
    command: list[str],
    mounts: list[Obj],
    access: RunnerAccess | None = None,
) -> Obj:
    """The pod must also have `access.volumes()` (the CA bundle) when `access` names one."""
    access = access or RunnerAccess()
    container: Obj = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "volumeMounts": [*mounts, *access.mounts(), tmp_mount()],
        "terminationMessagePath": TERMINATION_LOG,
        # A crash before the runner writes its reason still leaves the log's tail in status.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": locked_down(),
    }
    env = access.env()
    if env:
        container["env"] = env
    return container
