"""Containers that run the tuning runner image (fetch, push, adapter pull): locked down.

Every step is one program, `python -m tuning_runner <step>`, that writes its failure reason to
the termination log. The image runs as a non-root user and needs no writable root filesystem
(its caches go to the /tmp emptyDir), so these containers get the strictest security context
that still works. Registry credentials are mounted one Secret per directory.
"""

from __future__ import annotations

from kaito_common.controller.objects import Obj
from workspace_controller.manifests.names import dns_label
from workspace_controller.manifests.runner_access import RunnerAccess

RUNNER = ("python", "-m", "tuning_runner")
TERMINATION_LOG = "/dev/termination-log"
PULL_SECRETS_DIR = "/etc/kaito/pull-secrets"
TMP_VOLUME = "tmp"


def runner_argv(subcommand: str, *args: str) -> list[str]:
    """`python -m tuning_runner --termination-log /dev/termination-log <sub> <args>`."""
    return [*RUNNER, "--termination-log", TERMINATION_LOG, subcommand, *args]


def pull_secret_dir(secret: str) -> str:
    return f"{PULL_SECRETS_DIR}/{secret}"


def pull_secret_volume(secret: str) -> str:
    return dns_label(f"pull-secret-{secret}")


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
