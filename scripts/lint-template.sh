#!/usr/bin/env bash
# Lint the SAM template with cfn-lint and `sam validate --lint`, then check the config and
# policy it gives the function for every allowed parameter combination
# (scripts/check-template-configs.py, with the debug binary's `validate`; built if missing,
# or BUCKET_TRIGGER_BIN). Works offline; expects `cfn-lint` and `sam` on PATH (e.g. a venv
# with `pip install aws-sam-cli cfn-lint`, whose python3 has PyYAML). Any error or warning
# fails the script.
set -euo pipefail

cd "$(dirname "$0")/.."

TEMPLATE="${TEMPLATE:-template.yaml}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export SAM_CLI_TELEMETRY=0

for tool in cfn-lint sam; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: '$tool' not found on PATH (pip install aws-sam-cli cfn-lint)" >&2
        exit 127
    fi
done

echo "==> cfn-lint $(cfn-lint --version 2>&1 | awk '{print $NF}'): $TEMPLATE (region $AWS_DEFAULT_REGION)"
# cfn-lint exits non-zero on errors (2), warnings (4) and informational findings (8).
cfn-lint --format parseable -- "$TEMPLATE"
echo "    ok: no errors or warnings"

echo "==> sam validate --lint $(sam --version | awk '{print $NF}'): $TEMPLATE"
sam validate --lint --template "$TEMPLATE"
echo "    ok"

BIN="${BUCKET_TRIGGER_BIN:-target/debug/bucket-trigger}"
if [[ ! -x $BIN ]]; then
    echo "==> cargo build (for $BIN validate)"
    cargo build --quiet --bin bucket-trigger
fi
echo "==> configs and policies of $TEMPLATE, every allowed parameter combination"
python3 scripts/check-template-configs.py --bin "$BIN" --template "$TEMPLATE"

echo "template lint passed"
