#!/usr/bin/env bash
# `make dev-up`: the local control plane, what the chart installs besides the controllers (CRDs,
# default ConfigMaps, rendered from charts/kaito), then every controller of the project.
#
# Convention: every executable-or-not script named hack/dev/start-<component>.sh is started here,
# in name order. Each one starts its component in the background against .dev/kubeconfig, writes
# its pid to .dev/<component>.pid and its logs to .dev/<component>.log, waits until the component
# is ready, and does nothing when its pid file names a live process (so dev-up is safe to run
# twice). `make dev-down` stops every .dev/*.pid, then the cluster. A new component (e.g. the
# gpu-provisioner) only adds its own start-<component>.sh; this script needs no change.
set -euo pipefail
cd "$(dirname "$0")/../.."

DEV=.dev
make --no-print-directory cluster-up
KUBECTL="$DEV/cluster/kubectl"
[ -x "$KUBECTL" ] || KUBECTL="$(bash hack/testbin/build.sh --print-dir)/kubectl"
export KUBECONFIG="$PWD/$DEV/kubeconfig"

# What the chart installs besides the controllers (CRDs, default ConfigMaps), from the chart itself.
RELEASE_NAMESPACE="${KAITO_RELEASE_NAMESPACE:-kaito-workspace}"
"$KUBECTL" create namespace "$RELEASE_NAMESPACE" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
bash hack/dev/release-objects.sh "$RELEASE_NAMESPACE" |
  "$KUBECTL" apply --server-side --force-conflicts -f - >/dev/null
"$KUBECTL" wait --for=condition=Established --timeout=60s \
  crd/workspaces.kaito.sh crd/nodeclaims.karpenter.sh >/dev/null
echo "Installed the CRDs and the default ConfigMaps in namespace $RELEASE_NAMESPACE (rendered from charts/kaito)"

for script in hack/dev/start-*.sh; do
  [ -e "$script" ] || continue
  echo "Starting $(basename "$script" .sh | sed 's/^start-//')"
  KUBECTL="$KUBECTL" bash "$script"
done
echo "export KUBECONFIG=$KUBECONFIG"
