"""The real node: registration, GPUs as an extended resource, pods that really run, Services
that really route (kube-proxy iptables), pods that reach the API server, logs through it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kaito_common.pki import CertPair
from kaito_testing.realnode import RealNode, RealNodeError
from kaito_testing.realnode_config import GPU_RESOURCE, RealNodeConfig
from kaito_testing.toolbox_image import TOOLBOX_IMAGE
from kaito_testing.waiting import wait_for

WEB_PAGE = "hello-from-a-real-pod"


def _web(name: str) -> str:
    """A Deployment of busybox httpd that asks for one GPU, and its ClusterIP Service."""
    script = (
        f"mkdir -p /tmp/www && echo {WEB_PAGE} > /tmp/www/index.html && "
        "exec httpd -f -p 8080 -h /tmp/www"
    )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    # busybox as PID 1 ignores SIGTERM: do not wait 30 s on deletion.
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "web",
                            "image": TOOLBOX_IMAGE,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["/bin/sh", "-c", script],
                            "ports": [{"containerPort": 8080}],
                            "readinessProbe": {
                                "httpGet": {"path": "/index.html", "port": 8080},
                                "periodSeconds": 1,
                            },
                            "resources": {"limits": {GPU_RESOURCE: "1"}},
                        }
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    return yaml.safe_dump_all([deployment, service])


def _run_to_completion(cluster: Any, ns: str, name: str, script: str) -> str:
    """Runs ``script`` in a toolbox pod; returns its log once the pod has Succeeded."""
    cluster.kubectl(
        "run", name, "-n", ns, f"--image={TOOLBOX_IMAGE}", "--image-pull-policy=IfNotPresent",
        "--restart=Never", "--command", "--", "/bin/sh", "-c", script,
    )  # fmt: skip

    def finished() -> bool:
        phase = cluster.get("pod", name, "-n", ns)["status"].get("phase")
        assert phase != "Failed", cluster.kubectl("logs", name, "-n", ns, check=False)
        return bool(phase == "Succeeded")

    wait_for(finished, timeout=60.0, what=f"pod {name} to succeed", interval=0.5)
    return cluster.kubectl("logs", name, "-n", ns)


def test_node_is_ready_with_gpus_and_real_runtime(node_cluster: Any) -> None:
    node = node_cluster.get("node", node_cluster.node.name)
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True"
    assert node["status"]["allocatable"][GPU_RESOURCE] == "1"
    assert node["status"]["capacity"][GPU_RESOURCE] == "1"
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == node_cluster.node.node_ip
    assert "kwok.x-k8s.io/node" not in node["metadata"].get("annotations", {})


def test_gpu_pod_runs_and_its_clusterip_routes(node_cluster: Any, ns: str) -> None:
    node_cluster.apply(_web("web"), ns)
    node_cluster.kubectl(
        "wait", "--for=condition=Available", "deployment/web", "-n", ns, "--timeout=90s"
    )
    pods = node_cluster.get("pods", "-n", ns, "-l", "app=web")["items"]
    assert len(pods) == 1
    pod = pods[0]
    assert pod["spec"]["nodeName"] == node_cluster.node.name
    assert pod["status"]["podIP"].startswith("10.85.0.")
    cluster_ip = node_cluster.get("service", "web", "-n", ns)["spec"]["clusterIP"]

    # Another pod reaches the web pod through its ClusterIP (kube-proxy's iptables DNAT) and
    # the API server through the `kubernetes` Service.
    log = _run_to_completion(
        node_cluster,
        ns,
        "client",
        f"wget -O- http://{cluster_ip}/index.html && "
        "nc -w 5 10.96.0.1 443 </dev/null && echo api-server-reachable",
    )
    assert WEB_PAGE in log
    assert "api-server-reachable" in log

    # (The client's output came through `kubectl logs`: the API server reached the kubelet.)

    # Deleting the Deployment stops its containers on the node.
    node_cluster.kubectl("delete", "deployment", "web", "-n", ns, "--wait=true", "--timeout=60s")

    def web_gone() -> bool:
        return not node_cluster.get("pods", "-n", ns, "-l", "app=web")["items"]

    wait_for(web_gone, timeout=60.0, what="the web pod to go", interval=0.5)


def test_pod_service_account_reaches_the_api(node_cluster: Any, ns: str) -> None:
    """A pod's projected ServiceAccount token and CA let it call the API server in-cluster."""
    script = (
        "test -s /var/run/secrets/kubernetes.io/serviceaccount/token && "
        "test -s /var/run/secrets/kubernetes.io/serviceaccount/ca.crt && "
        'echo "host=$KUBERNETES_SERVICE_HOST port=$KUBERNETES_SERVICE_PORT"'
    )
    log = _run_to_completion(node_cluster, ns, "sa", script)
    assert "host=10.96.0.1 port=443" in log


def test_node_status_survives_kubelet_updates(node_cluster: Any) -> None:
    """The patched extended resource stays after several kubelet status reports."""
    name = node_cluster.node.name

    def heartbeat() -> str:
        node = node_cluster.get("node", name)
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        return str(ready["lastHeartbeatTime"])

    first = heartbeat()
    wait_for(lambda: heartbeat() != first, timeout=60.0, what="a new node heartbeat", interval=1)
    node = node_cluster.get("node", name)
    assert node["status"]["allocatable"][GPU_RESOURCE] == "1", json.dumps(node["status"])


def test_a_second_node_is_refused_and_leaves_the_first_alone(
    node_cluster: Any, tmp_path: Path
) -> None:
    plane = node_cluster.plane
    pki = plane.work_dir / "pki"
    second = RealNode(
        RealNodeConfig(
            work_dir=tmp_path / "second",
            bin_dir=plane.bin_dir,
            server=plane.server,
            ca=CertPair(pki / "ca.crt", pki / "ca.key"),
            admin_kubeconfig=plane.kubeconfig_path,
            node_name="second-node",
        )
    )
    with pytest.raises(RealNodeError, match="another real node runs on this machine"):
        second.start()
    second.stop()  # a no-op: it owns nothing
    assert all(node_cluster.node.running().values()), node_cluster.node.running()
    assert not node_cluster.kubectl("get", "node", "second-node", "--ignore-not-found")
