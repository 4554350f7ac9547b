#!/usr/bin/env bash
# `make demo`: Kaito end to end on this machine (no GPU, no cloud). Installs what it needs (the
# control plane's binaries, Debian's docker-registry), then runs hack/demo/demo.py, which prints
# each step as it happens and ends by saying what is running and how to stop it (make demo-down).
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)

make --no-print-directory testbin install-registry
echo "Control plane binaries and docker-registry present (make testbin install-registry, $(( $(date +%s) - started ))s)"
exec .venv/bin/python hack/demo/demo.py up
