#!/usr/bin/env bash
# Runs the whole test suite, as the README says: installs moto (the AWS Secrets Manager
# emulator the integration tests start on 127.0.0.1) into .venv once, then `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/moto_server ]; then
  echo "==> installing moto[server] into .venv (once)"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check 'moto[server]'
fi

# No real AWS: a fixed region, and no instance-metadata probing (which waits seconds).
export AWS_EC2_METADATA_DISABLED=true
export AWS_REGION="${AWS_REGION:-us-east-1}"
export MOTO_SERVER="$PWD/.venv/bin/moto_server"

cargo test "$@"
