#!/usr/bin/env bash
# Runs the whole test suite, as the README says: installs the Python test dependencies into
# .venv once (moto, the AWS Secrets Manager emulator the tests start on 127.0.0.1; oauthlib,
# the independent OAuth 1.0a verifier), runs the verifier's self-test, then `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Python test dependencies: moto (Secrets Manager emulator), oauthlib (the independent OAuth
# 1.0a verifier in tests/fixtures/gallery_server.py), and google-auth, PyJWT, cryptography and
# botocore (the JWT and SigV4 verifiers in tests/fixtures/google_server.py), PyYAML
# (scripts/check-template-configs.py reads template.yaml).
requirements="moto[server] oauthlib google-auth PyJWT cryptography botocore PyYAML"
if [ "$(cat .venv/.test-requirements 2>/dev/null)" != "$requirements" ]; then
  echo "==> installing $requirements into .venv"
  python3 -m venv .venv
  # shellcheck disable=SC2086
  .venv/bin/pip install --quiet --disable-pip-version-check $requirements
  echo "$requirements" > .venv/.test-requirements
fi

# No real AWS: a fixed region, and no instance-metadata probing (which waits seconds).
export AWS_EC2_METADATA_DISABLED=true
export AWS_REGION="${AWS_REGION:-us-east-1}"
export MOTO_SERVER="$PWD/.venv/bin/moto_server"

export TEST_PYTHON="$PWD/.venv/bin/python"

# The verifiers must reject bad signatures and tokens before their verdicts count.
.venv/bin/python tests/fixtures/check_gallery_server.py | tail -n 1
.venv/bin/python tests/fixtures/check_google_server.py | tail -n 1

cargo test "$@"
