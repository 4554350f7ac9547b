"""The real node's pod network: Debian's CNI plugins (bridge + host-local + portmap).

Pods get an address from ``host-local`` in the node's pod subnet on a Linux bridge of our own
(the bridge plugin is the gateway and masquerades traffic leaving the subnet; hairpin mode lets
a pod reach itself through a Service). ``portmap`` serves ``hostPort``. containerd's CRI plugin
adds the loopback interface itself. Every iptables rule the plugins add carries a comment naming
the network, which is how :func:`iptables_leftovers` finds what is ours.

:func:`teardown_sandbox` runs the plugins' ``DEL`` for one sandbox (what the CRI plugin does when
the kubelet stops a pod), for sandboxes whose pods were never stopped.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

NETWORK_NAME = "kaito-realnode"
CNI_VERSION = "1.0.0"
DEFAULT_BIN_DIRS = (Path("/usr/lib/cni"), Path("/opt/cni/bin"))
REQUIRED_PLUGINS = ("bridge", "host-local", "loopback", "portmap")


class CniError(RuntimeError):
    """The CNI plugins are missing or one of them failed."""


@dataclass(frozen=True)
class PodNetwork:
    """The node's pod network: bridge name, subnet and where the plugins keep state."""

    bridge: str
    subnet: str
    conf_dir: Path
    ipam_dir: Path
    bin_dir: Path


def find_bin_dir() -> Path:
    """The directory holding the CNI plugins (Debian puts them in /usr/lib/cni)."""
    for candidate in DEFAULT_BIN_DIRS:
        if all((candidate / name).is_file() for name in REQUIRED_PLUGINS):
            return candidate
    raise CniError(
        f"found no CNI plugins {', '.join(REQUIRED_PLUGINS)} in "
        f"{', '.join(map(str, DEFAULT_BIN_DIRS))}; run hack/realnode/install.sh"
    )


def conflist(network: PodNetwork) -> dict[str, object]:
    """The network configuration list the CRI plugin loads."""
    return {
        "cniVersion": CNI_VERSION,
        "name": NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": network.bridge,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": network.subnet}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(network.ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ],
    }


def write_conflist(network: PodNetwork) -> Path:
    network.conf_dir.mkdir(parents=True, exist_ok=True)
    network.ipam_dir.mkdir(parents=True, exist_ok=True)
    path = network.conf_dir / "10-kaito-realnode.conflist"
    path.write_text(json.dumps(conflist(network), indent=2))
    return path


def _invoke(network: PodNetwork, plugin: dict[str, object], container_id: str, netns: str) -> None:
    config = {"cniVersion": CNI_VERSION, "name": NETWORK_NAME, **plugin}
    env = {
        **os.environ,
        "CNI_COMMAND": "DEL",
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(network.bin_dir),
    }
    plugin_type = str(plugin["type"])
    result = subprocess.run(
        [str(network.bin_dir / plugin_type)],
        input=json.dumps(config).encode(),
        env=env,
        capture_output=True,
        check=False,
        timeout=30,
    )
    if result.returncode != 0:
        raise CniError(
            f"CNI {plugin_type} DEL for {container_id} failed: "
            f"{result.stdout.decode(errors='replace')} {result.stderr.decode(errors='replace')}"
        )


def teardown_sandbox(network: PodNetwork, container_id: str, netns: str = "") -> None:
    """Runs every plugin's DEL for one sandbox, last plugin first (as libcni does)."""
    plugins = conflist(network)["plugins"]
    assert isinstance(plugins, list)
    for plugin in reversed(plugins):
        _invoke(network, plugin, container_id, netns)


def allocated_sandboxes(network: PodNetwork) -> dict[str, str]:
    """host-local's allocations: address -> sandbox (container) id."""
    allocations: dict[str, str] = {}
    for path in network.ipam_dir.glob(f"{NETWORK_NAME}/*"):
        if path.name.startswith("last_reserved_ip") or path.name == "lock":
            continue
        text = path.read_text().splitlines()
        if text:
            allocations[path.name] = text[0].strip()
    return allocations


def bridge_exists(bridge: str) -> bool:
    return Path(f"/sys/class/net/{bridge}").exists()


def delete_bridge(bridge: str) -> bool:
    """Deletes the bridge when it exists; True when it did."""
    if not bridge_exists(bridge):
        return False
    subprocess.run(["ip", "link", "delete", bridge], check=True, capture_output=True)
    return True


def veths_on(bridge: str) -> list[str]:
    """Interfaces still attached to the bridge."""
    folder = Path(f"/sys/class/net/{bridge}/brif")
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _ours(rule: str) -> bool:
    return f'name: \\"{NETWORK_NAME}\\"' in rule or f'name: "{NETWORK_NAME}"' in rule


def remove_iptables_leftovers() -> int:
    """Deletes every rule commented with our network name and the ``CNI-`` chains they
    jumped to once empty (what DEL removes; for sandboxes whose DEL could not run)."""
    removed = 0
    for table in ("nat", "filter"):
        rules = subprocess.run(
            ["iptables", "-t", table, "-S"], capture_output=True, text=True, check=False
        ).stdout.splitlines()
        chains: set[str] = set()
        for rule in rules:
            if not rule.startswith("-A ") or not _ours(rule):
                continue
            parts = shlex.split(rule)
            if "-j" in parts and parts[parts.index("-j") + 1].startswith("CNI-"):
                chains.add(parts[parts.index("-j") + 1])
            if parts[1].startswith("CNI-"):
                chains.add(parts[1])
            subprocess.run(["iptables", "-t", table, "-D", *parts[1:]], capture_output=True)
            removed += 1
        for chain in chains:
            subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True)
            subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True)
    return removed


def iptables_leftovers() -> list[str]:
    """Rules and chains of ours still in iptables: CNI rules commented with our network name."""
    found = []
    for table in ("nat", "filter"):
        dump = subprocess.run(
            ["iptables-save", "-t", table], capture_output=True, text=True, check=True
        ).stdout
        found += [f"{table}: {line}" for line in dump.splitlines() if _ours(line)]
    return found
