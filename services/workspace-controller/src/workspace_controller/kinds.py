"""The custom kinds this controller reads and writes."""

from kaito_common.api import labels as L
from kaito_common.api.nodeclaim import NODECLAIM_PLURAL, NODECLAIM_VERSION
from kaito_common.api.workspace import WORKSPACE_PLURAL, WORKSPACE_STORAGE_VERSION
from kaito_common.controller.kinds import Kind

WORKSPACE = Kind(L.KAITO_GROUP, WORKSPACE_STORAGE_VERSION, WORKSPACE_PLURAL, "Workspace")
NODECLAIM = Kind(L.KARPENTER_GROUP, NODECLAIM_VERSION, NODECLAIM_PLURAL, "NodeClaim", False)
VALIDATING_WEBHOOK_CONFIGURATION = Kind(
    "admissionregistration.k8s.io",
    "v1",
    "validatingwebhookconfigurations",
    "ValidatingWebhookConfiguration",
    False,
)
FIELD_MANAGER = "workspace-controller"
