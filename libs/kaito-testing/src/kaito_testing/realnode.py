"""One real Kubernetes node joined to the local control plane.

containerd (CRI plugin, runc, cgroupfs), the CNI plugins (bridge + host-local + portmap), the
kubelet (client certificate from the launcher's CA, registered as ``system:node:<name>``) and
kube-proxy (iptables mode) run as child processes with every state directory under the work
directory, so pods really run and ClusterIPs really route. The node can advertise
``nvidia.com/gpu`` as an extended resource (patched into its status, the documented way without
a device plugin) so GPU pod specs schedule; their containers run on the CPU.

:meth:`RealNode.stop` removes what the node made: containers and their shims, mounts, the
pods' network (CNI DEL per sandbox, so the plugins' iptables rules go), the bridge,
kube-proxy's rules (``kube-proxy --cleanup``) and the pods' cgroups; :meth:`RealNode.leftovers`
lists anything still there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from kaito_testing import cni, containerd, node_host, node_pki
from kaito_testing.kubeconfig import write_kubeconfig
from kaito_testing.node_configs import kube_proxy_config, kubelet_config
from kaito_testing.pause_image import PAUSE_IMAGE, write_pause_archive
from kaito_testing.ports import free_port
from kaito_testing.process import CommandError, Component, run
from kaito_testing.realnode_config import GPU_RESOURCE, RealNodeConfig, default_image_store
from kaito_testing.waiting import wait_for

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 120.0
LOCK_PATH = Path("/run/lock/kaito-realnode.lock")


class RealNodeError(RuntimeError):
    """A node component failed to start or the node did not become Ready."""


def host_ip() -> str:
    """The address the host uses for its default route (the node's InternalIP)."""
    out = run(["ip", "-j", "route", "get", "1.1.1.1"]).stdout
    routes = json.loads(out)
    if not routes or "prefsrc" not in routes[0]:
        raise RealNodeError(f"cannot find the host's address from `ip route get`: {out}")
    return str(routes[0]["prefsrc"])


class RealNode:
    """containerd + kubelet + kube-proxy on this machine, registered as one Node."""

    def __init__(self, config: RealNodeConfig) -> None:
        self.config = config
        self.name = config.node_name
        self.node_ip = config.node_ip or host_ip()
        self.dir = config.work_dir.resolve()
        self.log_dir = self.dir / "logs"
        self.containerd = containerd.Containerd(
            containerd.ContainerdPaths(
                self.dir / "containerd", config.image_store or default_image_store()
            ),
            self.log_dir / "containerd.log",
        )
        self.network = cni.PodNetwork(
            bridge=config.bridge,
            subnet=config.pod_subnet,
            conf_dir=self.dir / "cni" / "net.d",
            ipam_dir=self.dir / "cni" / "ipam",
            bin_dir=cni.find_bin_dir(),
        )
        self.kubelet_dir = self.dir / "kubelet"
        self._components: dict[str, Component] = {}
        self._sysctls = node_host.Sysctls()
        self._machine_lock = node_host.MachineLock(LOCK_PATH)

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Starts containerd, kube-proxy and the kubelet; waits for the Node to be Ready."""
        started = time.monotonic()
        self._lock()
        self.cleanup()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._sysctls.set()
        cni.write_conflist(self.network)
        self.containerd.write_config(
            sandbox_image=PAUSE_IMAGE,
            cni_bin_dir=self.network.bin_dir,
            cni_conf_dir=self.network.conf_dir,
        )
        try:
            self.containerd.start()
            self.containerd.import_image(write_pause_archive(self.dir / "pause"))
            self._write_identities()
            self._start_kube_proxy()
            self._start_kubelet()
            wait_for(
                self._ready,
                timeout=READY_TIMEOUT_S,
                what=f"Node {self.name} to be Ready",
                interval=0.5,
                alive=self._check_alive,
            )
            if self.config.labels:
                self.label(dict(self.config.labels))
            if self.config.gpus:
                self.advertise_gpus(self.config.gpus)
        except BaseException:
            for name, text in self.component_logs(30).items():
                log.error("Node component log tail", extra={"component": name, "log": text})
            self.stop()
            raise
        log.info(
            "Started real node",
            extra={
                "node": self.name,
                "node_ip": self.node_ip,
                "pod_subnet": self.config.pod_subnet,
                "duration_s": round(time.monotonic() - started, 2),
            },
        )

    def stop(self) -> None:
        """Stops the node's processes and removes everything they made."""
        if not self._machine_lock.held:
            return  # never started (or another node holds the machine): nothing of ours
        started = time.monotonic()
        for name in ("kubelet", "kube-proxy"):
            component = self._components.pop(name, None)
            if component is not None:
                component.stop(grace=10.0)
        removed = self.cleanup()
        self._unlock()
        log.info(
            "Stopped real node",
            extra={
                "node": self.name,
                **removed,
                "duration_s": round(time.monotonic() - started, 2),
            },
        )

    def cleanup(self) -> dict[str, int]:
        """Removes containers, sandboxes' networks, shims, mounts, the bridge, kube-proxy's
        rules and the pods' cgroups (also those of an earlier run in the same directory)."""
        counts = {"containers": 0, "sandboxes": 0, "mounts": 0, "processes": 0}
        if self.containerd.paths.config.exists():
            if not self.containerd.running() and self._has_containers():
                with contextlib.suppress(containerd.ContainerdError, TimeoutError):
                    self.containerd.start()
            if self.containerd.running():
                counts["sandboxes"] = self._teardown_sandboxes()
                counts["containers"] = len(self.containerd.remove_everything())
                self.containerd.stop()
        # Whatever the sandboxes did not release (a crashed run): DEL by host-local's records,
        # then the processes left in the pods' cgroups, the shims and any rule of ours.
        for sandbox in set(cni.allocated_sandboxes(self.network).values()):
            self._cni_del(sandbox, "")
            counts["sandboxes"] += 1
        counts["processes"] = node_host.kill_cgroup_processes("kubepods")
        containerd.kill_shims(self.containerd.paths)
        counts["mounts"] = len(containerd.unmount_under(self.dir))
        counts["mounts"] += len(containerd.unmount_under(self.containerd.paths.root))
        cni.delete_bridge(self.config.bridge)
        cni.remove_iptables_leftovers()
        self._kube_proxy_cleanup()
        node_host.remove_kube_chains()
        node_host.remove_cgroups("kubepods")
        self._sysctls.restore()
        for folder in (self.containerd.paths.state, self.kubelet_dir / "pods"):
            if folder.exists() and not containerd.mounts_under(folder):
                shutil.rmtree(folder, ignore_errors=True)
        return counts

    def _lock(self) -> None:
        """Takes the machine-wide real-node lock (see :class:`node_host.MachineLock`)."""
        try:
            self._machine_lock.acquire(f"pid {os.getpid()} work {self.dir}")
        except node_host.MachineBusyError as err:
            raise RealNodeError(
                f"another real node runs on this machine ({err}; lock "
                f"{LOCK_PATH}); stop it first (`make cluster-down` or its test session)"
            ) from None

    def _unlock(self) -> None:
        self._machine_lock.release()

    def _has_containers(self) -> bool:
        paths = self.containerd.paths
        tasks = paths.state / "io.containerd.runtime.v2.task"
        sandboxes = paths.root / "io.containerd.grpc.v1.cri" / "sandboxes"
        return any(tasks.glob("*/*")) or any(sandboxes.glob("*"))

    def leftovers(self) -> list[str]:
        """What of the node is still on the machine (empty after a clean :meth:`stop`)."""
        found = [f"mount {p}" for p in containerd.mounts_under(self.dir)]
        found += [f"mount {p}" for p in containerd.mounts_under(self.containerd.paths.root)]
        found += [f"shim pid {p}" for p in containerd.shim_pids(self.containerd.paths)]
        if cni.bridge_exists(self.config.bridge):
            found.append(f"interface {self.config.bridge}")
        found += [f"iptables {rule}" for rule in cni.iptables_leftovers()]
        found += [f"iptables {rule}" for rule in node_host.kube_proxy_rules()]
        found += [f"cgroup {p}" for p in node_host.cgroups("kubepods")]
        found += [f"process {n}" for n, c in self._components.items() if c.running()]
        if self.containerd.running():
            found.append("process containerd")
        return found

    def running(self) -> dict[str, bool]:
        status = {name: c.running() for name, c in self._components.items()}
        status["containerd"] = self.containerd.running()
        return status

    def component_logs(self, lines: int = 40) -> dict[str, str]:
        logs = {name: c.log_tail(lines) for name, c in self._components.items()}
        logs["containerd"] = self.containerd.log_tail(lines)
        return logs

    # --- operations -----------------------------------------------------------------------

    def import_image(self, archive: Path) -> None:
        """Imports an image archive (OCI or docker) into containerd's ``k8s.io`` namespace."""
        self.containerd.import_image(archive)

    def images(self) -> list[str]:
        return self.containerd.image_names()

    def label(self, labels: Mapping[str, str]) -> None:
        """Sets labels on the Node as the admin (NodeRestriction forbids some to the kubelet)."""
        pairs = [f"{key}={value}" for key, value in labels.items()]
        self._kubectl("label", "node", self.name, "--overwrite", *pairs)

    def advertise_gpus(self, count: int) -> None:
        """Patches ``nvidia.com/gpu: count`` into the Node's status capacity and waits until the
        kubelet reports it allocatable."""
        path = "/status/capacity/" + GPU_RESOURCE.replace("/", "~1")
        patch = [{"op": "add", "path": path, "value": str(count)}]
        self._kubectl(
            "patch",
            "node",
            self.name,
            "--subresource=status",
            "--type=json",
            "-p",
            json.dumps(patch),
        )
        wait_for(
            lambda: self._allocatable(GPU_RESOURCE) == str(count),
            timeout=60.0,
            what=f"{GPU_RESOURCE} to be allocatable on {self.name}",
            interval=0.5,
        )
        log.info(
            "Advertised GPUs", extra={"node": self.name, "resource": GPU_RESOURCE, "count": count}
        )

    # --- internals ------------------------------------------------------------------------

    def _kubectl(self, *args: str) -> str:
        argv = [
            str(self.config.bin_dir / "kubectl"),
            f"--kubeconfig={self.config.admin_kubeconfig}",
            *args,
        ]
        try:
            return run(argv, timeout=60).stdout
        except CommandError as err:
            raise RealNodeError(f"kubectl {' '.join(args)} failed: {err.stderr.strip()}") from err

    def _node(self) -> dict[str, object] | None:
        try:
            out = self._kubectl("get", "node", self.name, "-o", "json")
        except RealNodeError:
            return None
        node: dict[str, object] = json.loads(out)
        return node

    def _ready(self) -> bool:
        node = self._node()
        if node is None:
            return False
        status = node.get("status")
        conditions = status.get("conditions", []) if isinstance(status, dict) else []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    def _allocatable(self, resource: str) -> str | None:
        node = self._node()
        status = node.get("status") if node else None
        if not isinstance(status, dict):
            return None
        value = status.get("allocatable", {}).get(resource)
        return str(value) if value is not None else None

    def _launch(self, name: str, argv: Sequence[str]) -> None:
        component = Component(name, argv, self.log_dir / f"{name}.log")
        component.start()
        self._components[name] = component

    def _check_alive(self) -> None:
        for name, component in self._components.items():
            if not component.running():
                raise RealNodeError(
                    f"{name} exited with code {component.exit_code()}; "
                    f"log {component.log_path}:\n{component.log_tail(30)}"
                )
        if not self.containerd.running():
            raise RealNodeError(f"containerd exited:\n{self.containerd.log_tail(30)}")

    def _write_identities(self) -> None:
        pki = self.dir / "pki"
        for stem, identity in (
            ("kubelet", node_pki.kubelet_identity(self.name)),
            ("kube-proxy", node_pki.KUBE_PROXY_IDENTITY),
        ):
            pair = node_pki.issue_client_pair(self.config.ca, pki, stem, identity)
            write_kubeconfig(
                self.dir / f"{stem}.kubeconfig",
                server=self.config.server,
                ca_cert=self.config.ca.cert,
                client=pair,
                user_name=stem,
            )

    def _kubelet_config(self) -> dict[str, object]:
        return kubelet_config(
            node_ip=self.node_ip,
            port=free_port("0.0.0.0"),
            healthz_port=free_port("0.0.0.0"),
            runtime_endpoint=self.containerd.endpoint,
            client_ca=self.config.ca.cert,
            max_pods=self.config.max_pods,
            pod_cidr=self.config.pod_subnet,
        )

    def _start_kubelet(self) -> None:
        config_path = self.dir / "kubelet.yaml"
        config_path.write_text(yaml.safe_dump(self._kubelet_config(), sort_keys=False))
        self.kubelet_dir.mkdir(parents=True, exist_ok=True)
        self._launch(
            "kubelet",
            [
                str(self.config.bin_dir / "kubelet"),
                f"--config={config_path}",
                f"--kubeconfig={self.dir / 'kubelet.kubeconfig'}",
                f"--root-dir={self.kubelet_dir}",
                f"--cert-dir={self.dir / 'kubelet-pki'}",
                f"--hostname-override={self.name}",
                f"--node-ip={self.node_ip}",
                "--v=1",
            ],
        )

    def _kube_proxy_config(self) -> dict[str, object]:
        return kube_proxy_config(
            kubeconfig=self.dir / "kube-proxy.kubeconfig",
            node_name=self.name,
            node_ip=self.node_ip,
            cluster_cidr=self.config.cluster_cidr,
            healthz_port=free_port("0.0.0.0"),
            metrics_port=free_port("0.0.0.0"),
        )

    def _start_kube_proxy(self) -> None:
        config_path = self.dir / "kube-proxy.yaml"
        config_path.write_text(yaml.safe_dump(self._kube_proxy_config(), sort_keys=False))
        self._launch(
            "kube-proxy",
            [str(self.config.bin_dir / "kube-proxy"), f"--config={config_path}", "--v=1"],
        )

    def _kube_proxy_cleanup(self) -> None:
        if not node_host.kube_proxy_rules():
            return
        binary = self.config.bin_dir / "kube-proxy"
        result = subprocess.run(
            [str(binary), "--cleanup", "--v=0"], capture_output=True, text=True, check=False
        )
        log.info(
            "Removed kube-proxy rules",
            extra={"exit_code": result.returncode, "output": result.stderr[-400:]},
        )

    def _teardown_sandboxes(self) -> int:
        """CNI DEL for every sandbox while its network namespace still exists."""
        try:
            sandboxes = self.containerd.sandbox_ids()
        except containerd.ContainerdError as err:
            log.warning("Failed to list sandboxes", extra={"error": str(err)})
            return 0
        for sandbox in sandboxes:
            netns = ""
            with contextlib.suppress(containerd.ContainerdError, ValueError):
                netns = self.containerd.network_namespace(sandbox)
            self._cni_del(sandbox, netns)
        return len(sandboxes)

    def _cni_del(self, sandbox: str, netns: str) -> None:
        try:
            cni.teardown_sandbox(self.network, sandbox, netns)
        except cni.CniError as err:
            log.warning("Failed to tear down a sandbox's network", extra={"error": str(err)})
