"""Install the `kaito` chart into a local control plane and run its controllers as host processes.

The chart is installed as a user would install it, except that its Deployments get no replicas:
the two controllers run on this machine instead, each with its chart ServiceAccount's identity (a
kubeconfig holding a token from the TokenRequest API), with the arguments and environment the
chart wrote into its Deployment, and with the webhook certificate from the chart's Secret (what
the pod would mount). Only what cannot be the same outside a pod is changed: ports, the listen
address, the certificate directory and the kubeconfig. Used by `make demo` and the chart's e2e
tests.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kaito_testing.checkout import repo_root
from kaito_testing.ports import free_port
from kaito_testing.process import Component, run
from kaito_testing.waiting import wait_for

REPO = repo_root()
CHART = REPO / "charts" / "kaito"
RELEASE = "kaito"
RELEASE_NAMESPACE = "kaito-workspace"
WEBHOOK_PATH = "/validate/workspace.kaito.sh"
WEBHOOK_CONFIG = "validation.workspace.kaito.sh"
WC = "workspace-controller"
GP = "gpu-provisioner"

Obj = dict[str, Any]


@dataclass(frozen=True)
class Cluster:
    """kubectl and helm against one cluster, as its admin."""

    bin_dir: Path
    kubeconfig: Path

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        return _run([str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
                    input=input, check=check)  # fmt: skip

    def helm(self, *args: str) -> str:
        return _run([str(self.bin_dir / "helm"), "--kubeconfig", str(self.kubeconfig), *args])

    def get_json(self, *args: str) -> Obj:
        doc: Obj = json.loads(self.kubectl("get", *args, "-o", "json"))
        return doc


def _run(argv: list[str], input: str | None = None, check: bool = True) -> str:
    return run(argv, input=input, check=check, timeout=300).stdout


def local_values(webhook_port: int) -> list[str]:
    """`--set` values for a chart whose controllers run as host processes."""
    return [
        f"workspace-controller.webhook.url=https://127.0.0.1:{webhook_port}{WEBHOOK_PATH}",
        "workspace-controller.replicaCount=0",
        "workspace-controller.presets.enableTestPresets=true",
        "gpu-provisioner.replicaCount=0",
        "gpu-provisioner.cloud=kwok",
        # The images `make images` builds (IMAGE_REPO/IMAGE_TAG as in mk/images.mk).
        f"global.image.registry={os.environ.get('IMAGE_REPO', 'localhost/kaito')}",
        f"global.image.tag={os.environ.get('IMAGE_TAG', 'dev')}",
    ]


def helm_install(cluster: Cluster, values: list[str], namespace: str = RELEASE_NAMESPACE) -> str:
    """`helm upgrade --install` the chart and wait for its CRDs; returns helm's output."""
    argv = ["upgrade", "--install", RELEASE, str(CHART), "--namespace", namespace,
            "--create-namespace", "--wait", "--timeout", "2m"]  # fmt: skip
    for value in values:
        argv += ["--set", value]
    out = cluster.helm(*argv)
    crds = ["crd/workspaces.kaito.sh"]
    if cluster.kubectl("get", "crd", "nodeclaims.karpenter.sh", check=False):
        crds.append("crd/nodeclaims.karpenter.sh")
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", *crds)
    return out


def service_account_kubeconfig(
    cluster: Cluster, namespace: str, service_account: str, path: Path
) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount (a TokenRequest token)."""
    token = cluster.kubectl(
        "create", "token", service_account, "-n", namespace, "--duration=2h"
    ).strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    server_cluster = admin["clusters"][0]["cluster"]
    user = f"system:serviceaccount:{namespace}:{service_account}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": server_cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": user}}],
        "current-context": "sa",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def write_secret_files(cluster: Cluster, namespace: str, secret: str, directory: Path) -> Path:
    """Write a Secret's keys as files, as the kubelet mounts them into the pod."""
    data = cluster.get_json("secret", secret, "-n", namespace)["data"]
    directory.mkdir(parents=True, exist_ok=True)
    for key, value in data.items():
        target = directory / key
        target.write_bytes(base64.b64decode(value))
        target.chmod(0o600)
    return directory


def deployment_container(cluster: Cluster, namespace: str, name: str) -> Obj:
    deployment = cluster.get_json("deployment", name, "-n", namespace)
    container: Obj = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def _replace_flags(args: list[str], overrides: dict[str, str]) -> list[str]:
    kept = [a for a in args if a.split("=", 1)[0] not in overrides]
    return kept + [f"{flag}={value}" for flag, value in overrides.items()]


def _env_of(container: Obj) -> dict[str, str]:
    return {e["name"]: str(e.get("value", "")) for e in container.get("env") or []}


@dataclass
class HostProcess:
    """A controller or server on this machine, ready when `ready_url` answers 200.

    A :class:`~kaito_testing.process.Component` (own session, output in `log_path`) without
    the parent-death signal: `make demo` leaves it running until `make demo-down`."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    ready_url: str
    component: Component | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.component.pid if self.component else None

    def start(self, timeout_s: float = 90.0) -> None:
        component = Component(self.name, self.argv, self.log_path, env=self.env)
        self.component = component
        component.start(die_with_parent=False)

        def alive() -> None:
            if not component.running():
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")

        try:
            wait_for(
                lambda: _http_ok(self.ready_url),
                timeout=timeout_s,
                what=f"{self.name} to answer {self.ready_url}",
                interval=0.2,
                alive=alive,
            )
        except TimeoutError as err:
            raise RuntimeError(
                f"{self.name} not ready after {timeout_s:.0f}s:\n{self.log_tail()}"
            ) from err

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self) -> None:
        """SIGTERM to the process group; SIGKILL for what is left after 15 s."""
        if self.component is not None:
            self.component.stop(grace=15.0)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def workspace_controller_process(
    cluster: Cluster, python: str, work_dir: Path, webhook_port: int,
    namespace: str = RELEASE_NAMESPACE, extra_args: tuple[str, ...] = (),
) -> HostProcess:  # fmt: skip
    """The chart's workspace controller, with its Deployment's args and its SA's identity."""
    container = deployment_container(cluster, namespace, WC)
    sa = cluster.get_json("deployment", WC, "-n", namespace)["spec"]["template"]["spec"][
        "serviceAccountName"
    ]
    kubeconfig = service_account_kubeconfig(cluster, namespace, sa, work_dir / f"{WC}.kubeconfig")
    volumes = cluster.get_json("deployment", WC, "-n", namespace)["spec"]["template"]["spec"][
        "volumes"
    ]
    secret = next(v["secret"]["secretName"] for v in volumes if "secret" in v)
    cert_dir = write_secret_files(cluster, namespace, secret, work_dir / "webhook-cert")
    metrics_port = free_port()
    args = _replace_flags(
        list(container.get("args") or []),
        {
            "--kubeconfig": str(kubeconfig),
            "--webhook-cert-dir": str(cert_dir),
            "--webhook-host": "127.0.0.1",
            "--webhook-port": str(webhook_port),
            "--metrics-port": str(metrics_port),
        },
    )
    return HostProcess(
        WC,
        [python, "-m", "workspace_controller", *args, *extra_args],
        _env_of(container),
        work_dir / f"{WC}.log",
        f"http://127.0.0.1:{metrics_port}/readyz",
    )


def gpu_provisioner_process(
    cluster: Cluster, python: str, work_dir: Path, namespace: str = RELEASE_NAMESPACE
) -> HostProcess:
    """The chart's gpu-provisioner, with its Deployment's env and its SA's identity."""
    container = deployment_container(cluster, namespace, GP)
    sa = cluster.get_json("deployment", GP, "-n", namespace)["spec"]["template"]["spec"][
        "serviceAccountName"
    ]
    kubeconfig = service_account_kubeconfig(cluster, namespace, sa, work_dir / f"{GP}.kubeconfig")
    metrics_port = free_port()
    env = {
        **_env_of(container),
        "METRICS_PORT": str(metrics_port),
        "GPU_PROVISIONER_KUBECONFIG": str(kubeconfig),
    }
    return HostProcess(
        GP,
        [python, "-m", "gpu_provisioner"],
        env,
        work_dir / f"{GP}.log",
        f"http://127.0.0.1:{metrics_port}/readyz",
    )


SEED_TUNING = REPO / "examples" / "kaito_workspace_tuning_phi_3.yaml"
SEED_INFERENCE = REPO / "examples" / "kaito_workspace_phi_3_mini.yaml"


def seed_tuning_workspace(registry_host: str, push_secret: str) -> str:
    """The seed's tuning Workspace with its placeholders filled (output to a local registry)."""
    text = SEED_TUNING.read_text()
    filled = text.replace("ACR_REPO_HERE.azurecr.io", registry_host).replace(
        "IMAGE_NAME_HERE", "tuning-phi-3"
    )
    filled = filled.replace("ACR_REGISTRY_SECRET_HERE", push_secret)
    if "_HERE" in filled:
        raise ValueError(f"{SEED_TUNING} has a placeholder this demo does not fill")
    return filled


def registry_secret(name: str, namespace: str, registry_host: str, user: str, password: str) -> str:
    """A kubernetes.io/dockerconfigjson Secret for the push credentials."""
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    config = {"auths": {registry_host: {"username": user, "password": password, "auth": auth}}}
    doc = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": name, "namespace": namespace},
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
    }
    return yaml.safe_dump(doc)
