#!/usr/bin/env bash
# Builds, with hack/images/build.sh, the images the real-node tests run that buildah's store
# lacks (workspace-controller, gpu-provisioner, inference-server, tuning-runner). Images already there are
# kept as they are: run `make images` to rebuild them after a source change.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
IMAGE_REPO="${IMAGE_REPO:-localhost/kaito}"
IMAGE_TAG="${IMAGE_TAG:-dev}"
export IMAGE_REPO IMAGE_TAG

bash "$HERE/../images/install-tools.sh"
missing=()
for service in workspace-controller gpu-provisioner inference-server tuning-runner; do
  if ! buildah inspect --type image "$IMAGE_REPO/$service:$IMAGE_TAG" >/dev/null 2>&1; then
    missing+=("$service")
  fi
done
if ((${#missing[@]} > 0)); then
  printf '%s realnode: Building missing images %s\n' "$(date +%H:%M:%S)" "${missing[*]}" >&2
  bash "$HERE/../images/build.sh" "${missing[@]}"
fi
