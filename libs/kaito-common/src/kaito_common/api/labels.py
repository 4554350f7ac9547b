"""Every label, annotation and finalizer key the system reads or writes, as named constants.

Keys are part of the public contract with users and with Karpenter-core provisioners, so they are
spelled once here and imported everywhere else.
"""

from typing import Final

# --- API groups -------------------------------------------------------------------------------
KAITO_GROUP: Final = "kaito.sh"
KARPENTER_GROUP: Final = "karpenter.sh"

# --- Workspace: labels stamped on children, NodeClaims and (through them) Nodes -----------------
LABEL_WORKSPACE: Final = "kaito.sh/workspace"
LABEL_WORKSPACE_NAMESPACE: Final = "kaito.sh/workspacenamespace"
LABEL_RAGENGINE: Final = "kaito.sh/ragengine"  # set by Kaito's RAGEngine controller
LABEL_MACHINE_TYPE: Final = "kaito.sh/machine-type"
LABEL_CREATION_TIMESTAMP: Final = "kaito.sh/creation-timestamp"
LABEL_WORKSPACE_NAME: Final = "workspace.kaito.io/name"  # on ControllerRevisions
LABEL_ACCELERATOR: Final = "accelerator"
ACCELERATOR_NVIDIA: Final = "nvidia"

# Keys a user may not select on: the controller owns them.
RESERVED_SELECTOR_KEYS: Final = frozenset(
    {
        LABEL_WORKSPACE,
        LABEL_WORKSPACE_NAMESPACE,
        LABEL_RAGENGINE,
        "kaito.sh/ragenginenamespace",
        "karpenter.kaito.sh/workspace-name",
        "karpenter.kaito.sh/workspace-namespace",
    }
)

# --- Workspace annotations a user may set --------------------------------------------------------
ANNOTATION_RUNTIME: Final = "kaito.sh/runtime"
ANNOTATION_ENABLE_LB: Final = "kaito.sh/enablelb"
ANNOTATION_BYPASS_RESOURCE_CHECKS: Final = "kaito.sh/bypass-resource-checks"
ANNOTATION_NODE_IMAGE_FAMILY: Final = "kaito.sh/node-image-family"
# How the model weights reach the pod (docs/presets.md): download | image | volume, the last
# with a PVC in the Workspace's namespace or a directory on the node that holds the files.
ANNOTATION_WEIGHTS_SOURCE: Final = "kaito.sh/weights-source"
ANNOTATION_WEIGHTS_VOLUME_CLAIM: Final = "kaito.sh/weights-volume-claim"
ANNOTATION_WEIGHTS_HOST_PATH: Final = "kaito.sh/weights-host-path"
# The commit of a Hugging Face repository named as preset: set by the controller on first
# resolution (the pods download it), changed by the user to move to another commit.
ANNOTATION_MODEL_REVISION: Final = "kaito.sh/model-revision"

RUNTIME_TRANSFORMERS: Final = "transformers"
RUNTIME_VLLM: Final = "vllm"
NODE_IMAGE_FAMILIES: Final = ("ubuntu", "azurelinux")

# --- Workspace annotations and finalizer owned by the controller --------------------------------
ANNOTATION_WORKSPACE_HASH: Final = "workspace.kaito.io/hash"
ANNOTATION_WORKSPACE_REVISION: Final = "workspace.kaito.io/revision"
FINALIZER_WORKSPACE: Final = "workspace.finalizer.kaito.sh"

# --- Karpenter / NodeClaim ----------------------------------------------------------------------
LABEL_NODEPOOL: Final = "karpenter.sh/nodepool"
LABEL_CAPACITY_TYPE: Final = "karpenter.sh/capacity-type"
LABEL_REGISTERED: Final = "karpenter.sh/registered"
LABEL_INITIALIZED: Final = "karpenter.sh/initialized"
ANNOTATION_DO_NOT_DISRUPT: Final = "karpenter.sh/do-not-disrupt"
FINALIZER_TERMINATION: Final = "karpenter.sh/termination"
TAINT_UNREGISTERED: Final = "karpenter.sh/unregistered"
TAINT_DISRUPTED: Final = "karpenter.sh/disrupted"
KAITO_NODEPOOL: Final = "kaito"  # placeholder pool name; no NodePool object exists for it

# Well-known node labels.
LABEL_INSTANCE_TYPE: Final = "node.kubernetes.io/instance-type"
LABEL_OS: Final = "kubernetes.io/os"
LABEL_ZONE: Final = "topology.kubernetes.io/zone"
LABEL_AZURE_SKU_NAME: Final = "karpenter.azure.com/sku-name"
LABEL_AKS_AGENTPOOL: Final = "agentpool"
LABEL_AKS_AGENTPOOL_QUALIFIED: Final = "kubernetes.azure.com/agentpool"

# GPU feature-discovery labels used for bring-your-own nodes of unknown SKU.
LABEL_GPU_PRODUCT: Final = "nvidia.com/gpu.product"
LABEL_GPU_COUNT: Final = "nvidia.com/gpu.count"
LABEL_GPU_MEMORY: Final = "nvidia.com/gpu.memory"

# Resources and taints.
RESOURCE_NVIDIA_GPU: Final = "nvidia.com/gpu"
TAINT_SKU_KEY: Final = "sku"
TAINT_SKU_VALUE: Final = "gpu"

# kwok: nodes carrying this annotation are kept Ready by the kwok controller.
ANNOTATION_KWOK_NODE: Final = "kwok.x-k8s.io/node"
KWOK_NODE_FAKE: Final = "fake"
