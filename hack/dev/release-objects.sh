#!/usr/bin/env bash
# Prints the cluster-wide objects the chart installs besides the controllers themselves: the CRDs
# and the workspace controller's default ConfigMaps (the params templates a Workspace without a
# `config` falls back to), rendered from charts/kaito with helm. `make dev-up` applies this output,
# so a Workspace meets the same objects with host-process controllers as with `helm install`.
# (The registry the chart requires is set only to render: no image of these objects is used.)
#
#   release-objects.sh [NAMESPACE]   (default: kaito-workspace, the controller's release namespace)
set -euo pipefail
cd "$(dirname "$0")/../.."

NAMESPACE="${1:-kaito-workspace}"
HELM="$(bash hack/testbin/build.sh --print-dir)/helm"
"$HELM" template kaito charts/kaito --namespace "$NAMESPACE" \
  --set global.image.registry=localhost/kaito \
  --show-only templates/crds.yaml \
  --show-only charts/workspace-controller/templates/configmaps.yaml
