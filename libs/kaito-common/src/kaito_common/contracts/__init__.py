"""What one service promises another: the names and shapes both sides must agree on.

Each contract is spelled once, here or in the module named below, and both sides import it;
nobody else writes these strings.

- `kinds`: the Workspace and NodeClaim kinds (group, version, plural) that the workspace
  controller, gpu-provisioner and the CRDs share.
- `tuning_progress`: the tuning runner's progress gauges (`kaito_tuning_*`) and progress JSON
  (progress file and termination message), read by the workspace controller.
- Condition types, reasons and states of Workspace and NodeClaim status:
  `kaito_common.api.conditions`.
- Label, annotation, finalizer and taint keys, and the API group names:
  `kaito_common.api.labels`.
- The CRD schemas themselves: the pydantic models in `kaito_common.api`, rendered by
  `kaito_common.crdgen`.

Modules here import neither the Kubernetes client nor the ML stack, so every service can use them.
"""
