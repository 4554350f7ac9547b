"""kwok's configuration for the local control plane: which fake Nodes it manages and how.

kwok plays the kubelet for Nodes annotated ``kwok.x-k8s.io/node=fake``: its Stages below make such
a Node Ready, move Pods bound to it to Running (Job Pods then to Succeeded), and finish the
deletion of Pods that are being deleted, as a kubelet would.
"""

from __future__ import annotations

import contextlib
import socket
import urllib.error
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from kaito_testing.apiserver_http import AdminHttp

NODE_ANNOTATION = "kwok.x-k8s.io/node"
NODE_ANNOTATION_VALUE = "fake"
MANAGE_SELECTOR = f"{NODE_ANNOTATION}={NODE_ANNOTATION_VALUE}"
POD_CIDR = "10.244.0.0/16"
NODE_IP = "10.240.0.10"

_NODE_READY_STATUS = """\
{{ $now := Now }}
{{ $since := or .metadata.creationTimestamp $now }}
phase: Running
conditions:
- type: Ready
  status: "True"
  reason: KubeletReady
  message: kwok is playing the kubelet
  lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ $since | Quote }}
- type: MemoryPressure
  status: "False"
  reason: KubeletHasSufficientMemory
  message: kwok reports no pressure
  lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ $since | Quote }}
- type: DiskPressure
  status: "False"
  reason: KubeletHasNoDiskPressure
  message: kwok reports no pressure
  lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ $since | Quote }}
- type: PIDPressure
  status: "False"
  reason: KubeletHasSufficientPID
  message: kwok reports no pressure
  lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ $since | Quote }}
- type: NetworkUnavailable
  status: "False"
  reason: RouteCreated
  message: kwok reports a network
  lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ $since | Quote }}
{{ if not .status.addresses }}
addresses:
- type: InternalIP
  address: {{ NodeIP | Quote }}
- type: Hostname
  address: {{ .metadata.name | Quote }}
{{ end }}
capacity:
{{ with .status.capacity }}{{ YAML . 1 }}{{ else }}
  cpu: "64"
  memory: 512Gi
  pods: "110"
{{ end }}
allocatable:
{{ with .status.allocatable }}{{ YAML . 1 }}{{ else }}
{{ with .status.capacity }}{{ YAML . 1 }}{{ else }}
  cpu: "64"
  memory: 512Gi
  pods: "110"
{{ end }}
{{ end }}
nodeInfo:
  architecture: amd64
  operatingSystem: linux
  kubeletVersion: {{ printf "kwok-%s" Version | Quote }}
  kubeProxyVersion: {{ printf "kwok-%s" Version | Quote }}
  containerRuntimeVersion: {{ printf "kwok-%s" Version | Quote }}
  kernelVersion: {{ printf "kwok-%s" Version | Quote }}
  osImage: kwok
  machineID: ""
  bootID: ""
  systemUUID: ""
"""

_POD_RUNNING_STATUS = """\
{{ $now := Now }}
phase: Running
startTime: {{ $now | Quote }}
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
hostIPs:
- ip: {{ NodeIPWith .spec.nodeName | Quote }}
{{ $ip := PodIPWith .spec.nodeName (or .spec.hostNetwork false) (or .metadata.uid "") \
(or .metadata.name "") (or .metadata.namespace "") }}
podIP: {{ $ip | Quote }}
podIPs:
- ip: {{ $ip | Quote }}
conditions:
- type: PodScheduled
  status: "True"
  lastTransitionTime: {{ $now | Quote }}
- type: Initialized
  status: "True"
  lastTransitionTime: {{ $now | Quote }}
- type: ContainersReady
  status: "True"
  lastTransitionTime: {{ $now | Quote }}
- type: Ready
  status: "True"
  lastTransitionTime: {{ $now | Quote }}
{{ range .spec.readinessGates }}
- type: {{ .conditionType | Quote }}
  status: "True"
  lastTransitionTime: {{ $now | Quote }}
{{ end }}
{{ with .spec.initContainers }}
initContainerStatuses:
{{ range . }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  imageID: {{ .image | Quote }}
  ready: true
  restartCount: 0
  state:
    terminated:
      exitCode: 0
      reason: Completed
      startedAt: {{ $now | Quote }}
      finishedAt: {{ $now | Quote }}
{{ end }}
{{ end }}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  imageID: {{ .image | Quote }}
  ready: true
  started: true
  restartCount: 0
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}
"""

_POD_SUCCEEDED_STATUS = """\
{{ $now := Now }}
phase: Succeeded
conditions:
- type: Ready
  status: "False"
  reason: PodCompleted
  lastTransitionTime: {{ $now | Quote }}
- type: ContainersReady
  status: "False"
  reason: PodCompleted
  lastTransitionTime: {{ $now | Quote }}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  imageID: {{ .image | Quote }}
  ready: false
  started: false
  restartCount: 0
  state:
    terminated:
      exitCode: 0
      reason: Completed
      startedAt: {{ $now | Quote }}
      finishedAt: {{ $now | Quote }}
{{ end }}
"""


def _stage(
    name: str, kind: str, match: list[dict[str, Any]], nxt: dict[str, Any]
) -> dict[str, Any]:
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": kind},
            "selector": {"matchExpressions": match},
            "next": nxt,
        },
    }


def _expr(key: str, operator: str, values: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key, "operator": operator}
    if values is not None:
        out["values"] = values
    return out


_READY = '.status.conditions.[] | select( .type == "Ready" ) | .status'


def stages() -> list[dict[str, Any]]:
    """The Stage objects kwok applies to the Nodes and Pods it manages."""
    return [
        _stage(
            "kaito-node-ready",
            "Node",
            [_expr(_READY, "NotIn", ["True"])],
            {"statusTemplate": _NODE_READY_STATUS},
        ),
        _stage(
            "kaito-pod-running",
            "Pod",
            [
                _expr(".metadata.deletionTimestamp", "DoesNotExist"),
                _expr(".status.phase", "In", ["Pending"]),
            ],
            {"statusTemplate": _POD_RUNNING_STATUS},
        ),
        _stage(
            "kaito-job-pod-succeeded",
            "Pod",
            [
                _expr(".metadata.deletionTimestamp", "DoesNotExist"),
                _expr(".status.phase", "In", ["Running"]),
                _expr(".metadata.ownerReferences.[].kind", "In", ["Job"]),
            ],
            {"statusTemplate": _POD_SUCCEEDED_STATUS},
        ),
        _stage(
            "kaito-pod-deleted",
            "Pod",
            [_expr(".metadata.deletionTimestamp", "Exists")],
            {"delete": True},
        ),
    ]


def write_config(path: Path) -> Path:
    """Writes kwok's configuration file (the Stages) and returns its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(stages(), sort_keys=False))
    return path


def node_manifest(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    capacity: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """A Node object that kwok will manage (it carries kwok's annotation)."""
    all_labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
    }
    all_labels.update(labels or {})
    cap = {"cpu": "64", "memory": "512Gi", "pods": "110"}
    cap.update(capacity or {})
    node: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": all_labels,
            "annotations": {NODE_ANNOTATION: NODE_ANNOTATION_VALUE},
        },
        "spec": {"taints": taints or []},
        "status": {"capacity": cap, "allocatable": cap},
    }
    return node


def release_node_leases(http: AdminHttp) -> list[str]:
    """Deletes the node Leases that kwok processes of this host held; returns their names.

    A new kwok process has a new identity (hostname plus a random suffix) and only plays the
    Pods of Nodes whose Lease it holds, so after a restart it would otherwise wait for the old
    Leases to expire (40 s) before moving any Pod."""
    prefix = f"{socket.gethostname()}_"
    path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
    released = []
    for lease in http.request_json("GET", path).get("items", []):
        holder = lease.get("spec", {}).get("holderIdentity") or ""
        if holder.startswith(prefix):
            name = lease["metadata"]["name"]
            with contextlib.suppress(urllib.error.HTTPError):
                http.request_json("DELETE", f"{path}/{name}")
            released.append(name)
    return released
