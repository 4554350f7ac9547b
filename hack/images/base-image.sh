#!/usr/bin/env bash
# Makes the base image locally, since Docker Hub is out of reach: `debootstrap --variant=minbase
# bookworm`, trimmed like debian:bookworm-slim (no docs, man pages or locales; no apt lists),
# committed with buildah from scratch and tagged docker.io/library/debian:bookworm-slim so that the
# Dockerfile's default `BASE_IMAGE=debian:bookworm-slim` resolves to it.
# Idempotent: does nothing when the tag exists (pass --force to rebuild).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/images/common.sh
source "$here/common.sh"

tag="${BASE_IMAGE_TAG:-docker.io/library/debian:bookworm-slim}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
force=false
[ "${1:-}" = "--force" ] && force=true

if ! $force && bah inspect --type image "$tag" >/dev/null 2>&1; then
  exit 0
fi

work="$(mktemp -d /var/tmp/kaito-base.XXXXXX)"
ctr=""
cleanup() {
  [ -n "$ctr" ] && bah rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

rootfs="$work/rootfs"
echo "Bootstrapping bookworm minbase from $mirror"
start=$(date +%s)
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  exit 1
}

# Trim as the slim image does: dpkg never installs docs, man pages or translations again.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$rootfs/usr/share/man/"* "$rootfs/usr/share/info/"* "$rootfs/usr/share/locale/"*
rm -rf "$rootfs/var/lib/apt/lists/"* "$rootfs/var/cache/apt/"*.bin "$rootfs/var/cache/apt/archives/"*.deb
rm -f "$rootfs/var/log/"*.log "$rootfs/var/log/apt/"* "$rootfs/etc/hostname" "$rootfs/etc/resolv.conf"
rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC

ctr="$(bah from scratch)"
mnt="$(bah mount "$ctr")"
tar -C "$rootfs" --numeric-owner -cf - . | tar -C "$mnt" --numeric-owner -xpf -
bah umount "$ctr" >/dev/null
bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --cmd '["bash"]' --os linux --arch amd64 \
  --label org.opencontainers.image.description="debootstrap --variant=minbase bookworm, trimmed like debian:bookworm-slim" \
  "$ctr"
bah commit --quiet "$ctr" "$tag" >/dev/null
echo "Committed $tag in $(( $(date +%s) - start ))s ($(du -sh "$rootfs" | cut -f1) rootfs)"
