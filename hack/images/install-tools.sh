#!/usr/bin/env bash
# Installs what `make images` / `make smoke-images` need from Debian: buildah (builds and runs
# OCI images with --isolation chroot, no daemon), debootstrap (the base image's rootfs) and
# docker-compose (only `docker-compose config` checks docker-compose.test.yml).
# Idempotent: does nothing when all are present; `apt-get update` only when a package is missing
# from the current lists.
set -euo pipefail

packages=(buildah debootstrap docker-compose ca-certificates)
missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
[ "${#missing[@]}" -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

for pkg in "${missing[@]}"; do
  if ! apt-cache show "$pkg" >/dev/null 2>&1; then
    echo "Updated apt lists: $pkg not in the current lists"
    $SUDO apt-get update -qq
    break
  fi
done
echo "Installing ${missing[*]}"
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
command -v buildah >/dev/null
command -v debootstrap >/dev/null
