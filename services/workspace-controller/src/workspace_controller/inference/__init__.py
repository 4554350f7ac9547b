"""The inference feature: from a workspace to serving pods, and whether they serve.

`plan` resolves the workspace, its preset and SKU into an `InferencePlan`; `pod` (with its
adapter pullers), `workload` and `service` build the Deployment or StatefulSet and its Services
from the plan (pure, with the shared builders of `manifests/`); `reconcile` applies them and
`readiness` reads back whether the workload serves.
"""
