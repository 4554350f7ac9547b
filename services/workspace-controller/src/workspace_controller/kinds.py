"""This controller's own kind and field manager.

Workspace and NodeClaim, which gpu-provisioner also addresses, are in
`kaito_common.contracts.kinds`; the built-in kinds in `kaito_common.controller.kinds`.
"""

from kaito_common.controller.kinds import Kind

VALIDATING_WEBHOOK_CONFIGURATION = Kind(
    "admissionregistration.k8s.io",
    "v1",
    "validatingwebhookconfigurations",
    "ValidatingWebhookConfiguration",
    False,
)
FIELD_MANAGER = "workspace-controller"
