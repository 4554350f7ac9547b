"""The command lines of the local control plane's components (pure: paths and ports in,
argv out), and the client identities its PKI issues.

:class:`~kaito_testing.controlplane.ControlPlane` starts these; keeping them apart leaves the
launcher with the lifecycle only.
"""

from __future__ import annotations

from pathlib import Path

from kaito_testing import certs as certs_mod
from kaito_testing import kwok

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
CLUSTER_NAME = "kaito-local"

_ADMISSION_PLUGINS = ",".join(
    [
        "NamespaceLifecycle",
        "LimitRanger",
        "ServiceAccount",
        "NodeRestriction",
        "TaintNodesByCondition",
        "Priority",
        "DefaultTolerationSeconds",
        "DefaultStorageClass",
        "StorageObjectInUseProtection",
        "RuntimeClass",
        "DefaultIngressClass",
        "PodSecurity",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionWebhook",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionWebhook",
        "ResourceQuota",
    ]
)

_CONTROLLERS = ",".join(
    [
        "garbage-collector-controller",
        "clusterrole-aggregation-controller",
        "serviceaccount-token-controller",
        "serviceaccount-controller",
        "root-ca-certificate-publisher-controller",
        "namespace-controller",
        "deployment-controller",
        "replicaset-controller",
        "statefulset-controller",
        "daemonset-controller",
        "job-controller",
        "cronjob-controller",
        "ttl-after-finished-controller",
        "endpoints-controller",
        "endpointslice-controller",
        "disruption-controller",
        "resourcequota-controller",
        "pod-garbage-collector-controller",
        "node-lifecycle-controller",
        "taint-eviction-controller",
        "service-cidr-controller",
        "validatingadmissionpolicy-status-controller",
    ]
)

CLIENTS = {
    "admin": certs_mod.ClientIdentity("kaito-admin", ("system:masters",)),
    # With --use-service-account-credentials=false every controller acts as the
    # controller-manager itself, which therefore needs full rights.
    "controller-manager": certs_mod.ClientIdentity(
        "system:kube-controller-manager", ("system:masters",)
    ),
    "scheduler": certs_mod.ClientIdentity("system:kube-scheduler"),
    "kwok": certs_mod.ClientIdentity("kwok-controller", ("system:masters",)),
    # The API server's identity towards the real node's kubelet (node profile).
    "kubelet-client": certs_mod.ClientIdentity(
        "kube-apiserver-kubelet-client", ("system:masters",)
    ),
}

# The components with a kubeconfig of their own (under ``<work_dir>/kubeconfigs``).
CLIENT_KUBECONFIGS = ("controller-manager", "scheduler", "kwok")


def etcd_argv(bin_dir: Path, work_dir: Path, client_url: str, peer_url: str) -> list[str]:
    return [
        str(bin_dir / "etcd"),
        "--name=kaito",
        f"--data-dir={work_dir / 'etcd'}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=kaito={peer_url}",
        "--initial-cluster-state=new",
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def apiserver_argv(
    bin_dir: Path,
    work_dir: Path,
    certs: certs_mod.ControlPlaneCerts,
    *,
    etcd_url: str,
    port: int,
    node_ip: str | None,
) -> list[str]:
    """kube-apiserver on loopback, or (``node_ip`` set: the ``node`` profile) on every address
    with a client certificate towards the real node's kubelet."""
    return [
        str(bin_dir / "kube-apiserver"),
        f"--etcd-servers={etcd_url}",
        *_apiserver_address_args(certs, node_ip),
        f"--secure-port={port}",
        f"--cert-dir={work_dir / 'pki'}",
        f"--tls-cert-file={certs.serving.cert}",
        f"--tls-private-key-file={certs.serving.key}",
        f"--client-ca-file={certs.ca.cert}",
        f"--service-account-key-file={certs.service_account_pub}",
        f"--service-account-signing-key-file={certs.service_account_key}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        f"--enable-admission-plugins={_ADMISSION_PLUGINS}",
        "--allow-privileged=true",
        "--profiling=false",
        "--v=0",
    ]


def _apiserver_address_args(certs: certs_mod.ControlPlaneCerts, node_ip: str | None) -> list[str]:
    if node_ip is None:
        return [
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # The default reconciler would publish 127.0.0.1 as the `kubernetes` Service's
            # endpoint, which validation rejects (loopback); nothing in-cluster dials it.
            "--endpoint-reconciler-type=none",
        ]
    kubelet_client = certs.clients["kubelet-client"]
    # Real pods dial the `kubernetes` Service, so the API server listens on the host's
    # address too and publishes it as that Service's endpoint.
    return [
        "--bind-address=0.0.0.0",
        f"--advertise-address={node_ip}",
        "--endpoint-reconciler-type=lease",
        f"--kubelet-client-certificate={kubelet_client.cert}",
        f"--kubelet-client-key={kubelet_client.key}",
        "--kubelet-preferred-address-types=InternalIP,Hostname",
    ]


def controller_manager_argv(
    bin_dir: Path, work_dir: Path, certs: certs_mod.ControlPlaneCerts, port: int
) -> list[str]:
    return [
        str(bin_dir / "kube-controller-manager"),
        f"--kubeconfig={work_dir / 'kubeconfigs' / 'controller-manager.kubeconfig'}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={work_dir / 'kube-controller-manager'}",
        "--leader-elect=false",
        f"--controllers={_CONTROLLERS}",
        f"--service-account-private-key-file={certs.service_account_key}",
        f"--root-ca-file={certs.ca.cert}",
        "--use-service-account-credentials=false",
        f"--cluster-name={CLUSTER_NAME}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--v=0",
    ]


def scheduler_argv(bin_dir: Path, work_dir: Path, port: int) -> list[str]:
    return [
        str(bin_dir / "kube-scheduler"),
        f"--kubeconfig={work_dir / 'kubeconfigs' / 'scheduler.kubeconfig'}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        "--leader-elect=false",
        "--v=0",
    ]


def kwok_argv(bin_dir: Path, work_dir: Path) -> list[str]:
    """kwok with its stages written to ``<work_dir>/kwok.yaml``."""
    return [
        str(bin_dir / "kwok"),
        f"--kubeconfig={work_dir / 'kubeconfigs' / 'kwok.kubeconfig'}",
        f"--config={kwok.write_config(work_dir / 'kwok.yaml')}",
        f"--manage-nodes-with-annotation-selector={kwok.MANAGE_SELECTOR}",
        f"--cidr={kwok.POD_CIDR}",
        f"--node-ip={kwok.NODE_IP}",
        "--node-lease-duration-seconds=40",
    ]
