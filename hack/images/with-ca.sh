#!/bin/sh
# with-ca CMD...: runs CMD trusting the optional `ca` build secret besides the system CAs.
# Used inside Dockerfile RUN steps that reach a package registry: behind a TLS-intercepting proxy
# the proxy's CA is passed as `--secret id=ca,src=FILE` and never lands in an image layer (the
# combined bundle lives in a temporary folder removed before the step ends).
set -eu
secret=/run/secrets/ca
if [ ! -s "$secret" ]; then
  exec "$@"
fi
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
  cat /etc/ssl/certs/ca-certificates.crt "$secret" >"$dir/ca.pem"
else
  cat "$secret" >"$dir/ca.pem"
fi
export SSL_CERT_FILE="$dir/ca.pem" PIP_CERT="$dir/ca.pem" REQUESTS_CA_BUNDLE="$dir/ca.pem"
"$@"
