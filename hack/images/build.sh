#!/usr/bin/env bash
# Builds the four service images with buildah (no daemon, --isolation chroot), base image first.
#   hack/images/build.sh [SERVICE...]        default: all four
# Env: IMAGE_REPO (default localhost/kaito), IMAGE_TAG (default dev), BASE_IMAGE (build arg;
# default debian:bookworm-slim, made by base-image.sh), KAITO_BUILD_CA (PEM file passed as the
# `ca` build secret; default the host's CA bundle when it exists, "" for none),
# KAITO_BUILDAH_DRIVER (overlay or vfs).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=hack/images/common.sh
source "$here/common.sh"

repo="${IMAGE_REPO:-localhost/kaito}"
tag="${IMAGE_TAG:-dev}"
services=("$@")
[ "${#services[@]}" -eq 0 ] && services=("${KAITO_SERVICES[@]}")

bash "$here/install-tools.sh"
if [ -z "${BASE_IMAGE:-}" ]; then
  bash "$here/base-image.sh"
fi

args=(--layers --force-rm --isolation chroot --format oci --quiet)
[ -n "${BASE_IMAGE:-}" ] && args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
ca="${KAITO_BUILD_CA-/etc/ssl/certs/ca-certificates.crt}"
if [ -n "$ca" ] && [ -s "$ca" ]; then
  args+=(--secret "id=ca,src=$ca")
fi

cd "$root"
for svc in "${services[@]}"; do
  start=$(date +%s)
  echo "Building $repo/$svc:$tag"
  bah bud "${args[@]}" -f "services/$svc/Dockerfile" -t "$repo/$svc:$tag" . >/dev/null
  size=$(bah inspect --type image --format '{{.FromImageID}}' "$repo/$svc:$tag" >/dev/null 2>&1 && \
    bah images --format '{{.Size}}' "$repo/$svc:$tag" | head -n1)
  echo "Built $repo/$svc:$tag in $(( $(date +%s) - start ))s (size $size)"
done
