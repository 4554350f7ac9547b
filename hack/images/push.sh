#!/usr/bin/env bash
# Pushes the project's images from buildah's store to an OCI registry (docs/installation.md).
#   REGISTRY=<host[:port]/path> [TAG=<tag>] hack/images/push.sh      (`make images-push`)
# Pushes the four service images (which must be built: `make images`), and, when they are built,
# inference-server-vllm (`make image-vllm`) and every weights image `kaito-model-<preset>`
# (`make model-image`), each as <REGISTRY>/<name>:<TAG>. The chart then names them all with
# `--set global.image.registry=<REGISTRY> --set global.image.tag=<TAG>`.
# Env: REGISTRY (required), TAG (default: the chart's appVersion, the tag the chart uses),
# AUTHFILE (a docker config.json with the registry's credentials; default: buildah's own login,
# then ~/.docker/config.json), TLS_VERIFY (true; false for a plain-HTTP or self-signed registry),
# COMPRESSION (gzip, the default, or zstd; a layer the registry already holds is reused as it is
# compressed there), IMAGE_REPO / IMAGE_TAG (the local names: localhost/kaito,
# dev), KAITO_BUILDAH_DRIVER (overlay or vfs).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=hack/images/common.sh
source "$here/common.sh"

fail() {
  echo "images-push: $*" >&2
  exit 1
}

registry="${REGISTRY:-}"
[ -n "$registry" ] || fail "REGISTRY is required, e.g. make images-push REGISTRY=myregistry.azurecr.io/kaito"
case "$registry" in
  *://*) fail "REGISTRY is host[:port]/path without a scheme (got $registry)" ;;
esac
registry="${registry%/}"
tag="${TAG:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$root/charts/kaito/Chart.yaml")}"
[ -n "$tag" ] || fail "TAG is empty and charts/kaito/Chart.yaml names no appVersion"
src_repo="${IMAGE_REPO:-localhost/kaito}"
src_tag="${IMAGE_TAG:-dev}"
tls_verify="${TLS_VERIFY:-true}"
case "$tls_verify" in
  true | false) ;;
  *) fail "TLS_VERIFY is true or false (got $tls_verify)" ;;
esac
compression="${COMPRESSION:-gzip}"
case "$compression" in
  gzip | zstd) ;;
  *) fail "COMPRESSION is gzip or zstd (got $compression)" ;;
esac
push_args=(--tls-verify="$tls_verify" --compression-format "$compression" --quiet)
if [ -n "${AUTHFILE:-}" ]; then
  [ -r "$AUTHFILE" ] || fail "AUTHFILE $AUTHFILE does not exist or cannot be read"
  push_args+=(--authfile "$AUTHFILE")
  credentials="the credentials in $AUTHFILE"
else
  credentials="buildah's default credentials (buildah login, or ~/.docker/config.json); set AUTHFILE"
fi

built() {
  bah inspect --type image "$1" >/dev/null 2>&1
}

# The four services must be there; the others are pushed when they were built.
names=()
missing=()
for svc in "${KAITO_SERVICES[@]}"; do
  if built "$src_repo/$svc:$src_tag"; then names+=("$svc"); else missing+=("$src_repo/$svc:$src_tag"); fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  fail "not built: ${missing[*]} (run \`make images\` first; IMAGE_REPO/IMAGE_TAG name the local images)"
fi
built "$src_repo/inference-server-vllm:$src_tag" && names+=(inference-server-vllm)
# (An image matching the filter is listed under each of its names: keep the weights images' only.)
while read -r ref; do
  case "$ref" in
    "$src_repo"/kaito-model-*:"$src_tag") names+=("$(basename "${ref%:*}")") ;;
  esac
done < <(bah images --noheading --format '{{.Name}}:{{.Tag}}' \
  --filter "reference=$src_repo/kaito-model-*:$src_tag" | sort -u)

echo "Pushing ${#names[@]} images to $registry with tag $tag (TLS verification $tls_verify, $compression layers)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for name in "${names[@]}"; do
  src="$src_repo/$name:$src_tag"
  dest="$registry/$name:$tag"
  start=$(date +%s)
  echo "  $src -> $dest"
  if ! bah push "${push_args[@]}" --digestfile "$work/digest" "$src" "docker://$dest" \
    2>"$work/err"; then
    err="$(tail -n 5 "$work/err")"
    if grep -qiE 'unauthorized|authentication required|denied|invalid username/password|\b401\b|\b403\b' "$work/err"; then
      fail "the registry refused $credentials for $dest:
$err"
    fi
    fail "could not push $dest:
$err"
  fi
  echo "    pushed $(cat "$work/digest") in $(( $(date +%s) - start ))s"
done
echo "Pushed ${#names[@]} images. Install the chart from them with:"
echo "  helm install kaito charts/kaito -n kaito-workspace --create-namespace \\"
echo "    --set global.image.registry=$registry --set global.image.tag=$tag"
