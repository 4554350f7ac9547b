#!/usr/bin/env bash
# Installs what the registry tests need: Debian's `docker-registry` (the CNCF distribution
# registry) and `apache2-utils` (htpasswd with bcrypt). Idempotent: does nothing when both are
# present, and runs `apt-get update` only when a package cannot be found in the current lists.
set -euo pipefail

packages=(docker-registry apache2-utils)
missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive

lists_have_all=true
for pkg in "${missing[@]}"; do
  if ! apt-cache show "$pkg" >/dev/null 2>&1; then
    lists_have_all=false
  fi
done
if [ "$lists_have_all" = false ]; then
  echo "Updated apt lists: ${missing[*]} not in the current lists"
  $SUDO apt-get update -qq
fi
echo "Installing ${missing[*]}"
# The package's postinst may try to start a service; there is no init system here, and the
# tests start their own registry, so a failing service start must not fail the install.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
command -v docker-registry >/dev/null || [ -x /usr/bin/docker-registry ]
command -v htpasswd >/dev/null
