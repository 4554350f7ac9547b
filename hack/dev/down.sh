#!/usr/bin/env bash
# `make dev-down`: stop every component started by a hack/dev/start-*.sh (their .dev/*.pid),
# then the local control plane. Safe to run when nothing is running.
set -euo pipefail
cd "$(dirname "$0")/../.."

DEV=.dev
for pid_file in "$DEV"/*.pid; do
  [ -e "$pid_file" ] || continue
  pid="$(cat "$pid_file")"
  name="$(basename "$pid_file" .pid)"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    echo "Stopped $name"
  fi
  rm -f "$pid_file"
done
make --no-print-directory cluster-down
