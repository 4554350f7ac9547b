"""A Kaito-shaped GPU NodeClaim for the provisioner benchmarks and the cloud chaos run."""

from __future__ import annotations

from kaito_common.controller.objects import Obj

BENCH_SKU = "Standard_NC24ads_A100_v4"


def gpu_nodeclaim(name: str, workspace: str) -> Obj:
    """A NodeClaim for one `BENCH_SKU` node, labelled as the workspace `workspace` asks."""
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodeClaim",
        "metadata": {
            "name": name,
            "labels": {"karpenter.sh/nodepool": "kaito", "kaito.sh/workspace": workspace},
        },
        "spec": {
            "nodeClassRef": {"group": "kaito.sh", "kind": "KaitoNodeClass", "name": "default"},
            "taints": [{"key": "sku", "value": "gpu", "effect": "NoSchedule"}],
            "requirements": [
                {
                    "key": "node.kubernetes.io/instance-type",
                    "operator": "In",
                    "values": [BENCH_SKU],
                },
            ],
            "resources": {"requests": {"storage": "256Gi"}},
        },
    }
