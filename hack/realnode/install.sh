#!/usr/bin/env bash
# Installs what the real node needs from Debian: containerd (with its CRI plugin), runc, the
# CNI plugins (bridge, host-local, loopback, portmap), iptables, conntrack and busybox-static (the
# static binary of the test pods' toolbox image). Idempotent: when
# every package is already installed it does nothing (no apt-get update either).
set -euo pipefail

PACKAGES=(containerd runc containernetworking-plugins iptables conntrack busybox-static)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

SUDO=""
if [[ "$(id -u)" != 0 ]]; then
  SUDO="sudo"
fi

printf '%s realnode: Installing %s\n' "$(date +%H:%M:%S)" "${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends: no systemd unit is started; the launcher runs containerd itself.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
printf '%s realnode: Installed %s\n' "$(date +%H:%M:%S)" "${missing[*]}" >&2
