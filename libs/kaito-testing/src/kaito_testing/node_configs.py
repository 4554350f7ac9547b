"""The real node's kubelet and kube-proxy configuration files (pure builders)."""

from __future__ import annotations

from pathlib import Path


def kubelet_config(
    *,
    node_ip: str,
    port: int,
    healthz_port: int,
    runtime_endpoint: str,
    client_ca: Path,
    max_pods: int,
    pod_cidr: str,
) -> dict[str, object]:
    """A KubeletConfiguration: webhook authn/z, cgroupfs, eviction only when truly out."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node_ip,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "cgroupDriver": "cgroupfs",
        # cgroup v1 is what this machine mounts; Kubernetes 1.35 refuses it by default.
        "failCgroupV1": False,
        "failSwapOn": False,
        "containerRuntimeEndpoint": runtime_endpoint,
        "imageServiceEndpoint": runtime_endpoint,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(client_ca)},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDomain": "cluster.local",
        "maxPods": max_pods,
        "podCIDR": pod_cidr,
        "resolvConf": "/etc/resolv.conf",
        "serializeImagePulls": False,
        # The machine is shared and its disk fills with images: evict only when truly out.
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "cgroupsPerQOS": True,
        "enforceNodeAllocatable": ["pods"],
        "nodeStatusUpdateFrequency": "4s",
        "nodeStatusReportFrequency": "10s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "shutdownGracePeriod": "0s",
        "registerNode": True,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "logging": {"format": "text"},
    }


def kube_proxy_config(
    *,
    kubeconfig: Path,
    node_name: str,
    node_ip: str,
    cluster_cidr: str,
    healthz_port: int,
    metrics_port: int,
) -> dict[str, object]:
    """A KubeProxyConfiguration in iptables mode that leaves the host's conntrack alone."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node_name,
        "clusterCIDR": cluster_cidr,
        "bindAddress": "127.0.0.1",
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "nodePortAddresses": [f"{node_ip}/32"],
        # Leave the host's conntrack sysctls alone.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {"syncPeriod": "10s", "minSyncPeriod": "0s"},
    }
