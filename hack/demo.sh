#!/usr/bin/env bash
# `make demo`: Kaito end to end on this machine (no GPU, no cloud). Installs what it needs, then
# runs the seed's flow:
# - on a real node (containerd + kubelet on this machine, every step in pods, images pulled from a
#   registry) where the machine allows it: root, and Debian's containerd installable;
# - otherwise on kwok nodes, where no container runs (hack/demo/demo.py says what it simulates).
# Each step is printed as it happens; it ends by saying what runs and how to stop it
# (make demo-down). KAITO_DEMO=kwok forces the kwok form.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
elapsed() { echo "$(( $(date +%s) - started ))s"; }

make --no-print-directory testbin install-registry
echo "Control plane binaries and docker-registry present (make testbin install-registry, $(elapsed))"

real_node_possible() {
  [ "${KAITO_DEMO:-}" != kwok ] || return 1
  [ "$(id -u)" = 0 ] || { echo "Not root: no real node here (containerd and the kubelet need root)"; return 1; }
  make --no-print-directory realnode-tools image-tools || {
    echo "Could not install Debian's containerd, runc and CNI plugins or buildah: no real node here"
    return 1
  }
}

if real_node_possible; then
  echo "This machine can run a real node: the demo runs the seed's flow on a real kubelet node ($(elapsed))"
  echo "Building the project's images (make images; a second run reuses the layers)"
  make --no-print-directory images
  echo "Images built ($(elapsed))"
  exec .venv/bin/python hack/demo/real.py up
fi
echo "The demo runs on kwok nodes: the objects are real, no container runs ($(elapsed))"
exec .venv/bin/python hack/demo/demo.py up
