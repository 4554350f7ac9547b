#!/usr/bin/env bash
# Start the gpu-provisioner with the kwok cloud in the background against the local cluster
# (.dev/kubeconfig), so that NodeClaims become kwok Nodes. Idempotent: a running one is kept.
# Logs: .dev/gpu-provisioner.log; pid: .dev/gpu-provisioner.pid. Stop: stop-gpu-provisioner.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."

DEV_DIR=${DEV_DIR:-.dev}
KUBECONFIG_FILE=${KUBECONFIG_FILE:-$DEV_DIR/kubeconfig}
PID_FILE=$DEV_DIR/gpu-provisioner.pid
LOG_FILE=$DEV_DIR/gpu-provisioner.log
PORT=${GPU_PROVISIONER_METRICS_PORT:-8083}
PYTHON=${PYTHON:-.venv/bin/python}

if [[ ! -f $KUBECONFIG_FILE ]]; then
  echo "gpu-provisioner: $KUBECONFIG_FILE not found; start the cluster first (make cluster-up)" >&2
  exit 1
fi
if [[ -f $PID_FILE ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
  echo "gpu-provisioner: already running (pid $(cat "$PID_FILE"))"
  exit 0
fi

# The NodeClaim CRD must exist; apply it when missing (harmless when someone else did).
KUBECTL="$(bash hack/testbin/build.sh --print-dir)/kubectl"
if ! "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get crd nodeclaims.karpenter.sh >/dev/null 2>&1; then
  "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" apply --server-side \
    -f crds/karpenter.sh_nodeclaims.yaml >/dev/null ||
    echo "gpu-provisioner: could not apply the NodeClaim CRD; it will wait for it" >&2
fi

mkdir -p "$DEV_DIR"
GPU_PROVISIONER_CLOUD=kwok \
GPU_PROVISIONER_KUBECONFIG=$KUBECONFIG_FILE \
GPU_PROVISIONER_METRICS_PORT=$PORT \
  setsid nohup "$PYTHON" -m gpu_provisioner >>"$LOG_FILE" 2>&1 </dev/null &
echo $! >"$PID_FILE"

# Ready once the caches are synced (/readyz), or report the log if it died.
for _ in $(seq 1 100); do
  if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    echo "gpu-provisioner: exited at start; last log lines:" >&2
    tail -n 20 "$LOG_FILE" >&2
    rm -f "$PID_FILE"
    exit 1
  fi
  if curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then
    echo "gpu-provisioner: running (pid $(cat "$PID_FILE"), metrics http://127.0.0.1:$PORT/metrics, log $LOG_FILE)"
    exit 0
  fi
  sleep 0.2
done
echo "gpu-provisioner: started (pid $(cat "$PID_FILE")) but not ready yet; see $LOG_FILE"
