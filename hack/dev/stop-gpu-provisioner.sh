#!/usr/bin/env bash
# Stop the gpu-provisioner started by start-gpu-provisioner.sh (SIGTERM, then SIGKILL).
set -euo pipefail
cd "$(dirname "$0")/../.."

PID_FILE=${DEV_DIR:-.dev}/gpu-provisioner.pid
if [[ ! -f $PID_FILE ]]; then
  echo "gpu-provisioner: not running"
  exit 0
fi
PID=$(cat "$PID_FILE")
if kill -0 "$PID" 2>/dev/null; then
  kill -TERM "$PID"
  for _ in $(seq 1 50); do
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$PID" 2>/dev/null; then
    kill -KILL "$PID"
  fi
fi
rm -f "$PID_FILE"
echo "gpu-provisioner: stopped"
