#!/usr/bin/env bash
# Started by hack/dev/up.sh: the workspace controller (and its webhook) as a host process.
# The webhook is registered by URL on 127.0.0.1, which the local API server can reach.
set -euo pipefail
cd "$(dirname "$0")/../.."

DEV=.dev
NAME=workspace-controller
PID_FILE="$DEV/$NAME.pid"
LOG="$DEV/$NAME.log"
WEBHOOK_PORT="${WC_WEBHOOK_PORT:-9443}"
METRICS_PORT="${WC_METRICS_PORT:-8080}"

if [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
  echo "$NAME already running (pid $(cat "$PID_FILE"))"
  exit 0
fi

mkdir -p "$DEV"
nohup setsid .venv/bin/python -m workspace_controller \
  --kubeconfig "$DEV/kubeconfig" \
  --webhook-host 127.0.0.1 --webhook-port "$WEBHOOK_PORT" \
  --webhook-url "https://127.0.0.1:$WEBHOOK_PORT/validate/workspace.kaito.sh" \
  --metrics-port "$METRICS_PORT" \
  --release-namespace "${KAITO_RELEASE_NAMESPACE:-kaito-workspace}" \
  --enable-test-presets --allow-loopback-urls \
  >>"$LOG" 2>&1 &
echo $! >"$PID_FILE"

for _ in $(seq 1 150); do
  if curl -fsS "http://127.0.0.1:$METRICS_PORT/readyz" >/dev/null 2>&1; then
    echo "$NAME ready (pid $(cat "$PID_FILE"), logs $LOG)"
    exit 0
  fi
  if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    echo "$NAME exited; last log lines:" >&2
    tail -n 30 "$LOG" >&2
    rm -f "$PID_FILE"
    exit 1
  fi
  sleep 0.2
done
echo "$NAME did not become ready; see $LOG" >&2
exit 1
