#!/usr/bin/env bash
# Local Lambda smoke test, exactly as the README's "local development" section: runs the
# function under `cargo lambda watch` (the Lambda Runtime API emulator, on 127.0.0.1 only)
# and invokes it with sample events through `cargo lambda invoke`. The function runs in
# dry-run mode with the example config and secrets file, so nothing leaves the machine.
#
# Needs cargo-lambda on PATH (`pip install cargo-lambda`). Prints `smoke-cargo-lambda: N passed, M failed`.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-lambda >/dev/null || { echo "cargo-lambda not found: pip install cargo-lambda" >&2; exit 2; }

PORT=${SMOKE_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
LOG=$(mktemp)
WATCH_PID=
cleanup() {
  if [[ -n $WATCH_PID ]]; then
    kill -TERM -- "-$WATCH_PID" 2>/dev/null || kill -TERM "$WATCH_PID" 2>/dev/null || true
    wait "$WATCH_PID" 2>/dev/null || true
  fi
  rm -f "$LOG"
}
trap cleanup EXIT

export BUCKET_TRIGGER_CONFIG_FILE=examples/bucket-trigger.yaml
export BUCKET_TRIGGER_SECRETS_FILE=examples/secrets.json
export BUCKET_TRIGGER_DRY_RUN=1
setsid cargo lambda watch --invoke-address 127.0.0.1 --invoke-port "$PORT" --ignore-changes >"$LOG" 2>&1 < /dev/null &
WATCH_PID=$!

# The emulator answers once it listens; the function is compiled on the first invoke.
for _ in $(seq 1 120); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  kill -0 "$WATCH_PID" 2>/dev/null || { cat "$LOG" >&2; echo "cargo lambda watch exited" >&2; exit 1; }
  sleep 0.5
done

passed=0 failed=0
check() {   # check EVENT_FILE PYTHON_ASSERTION
  local out
  if ! out=$(timeout 600 cargo lambda invoke --invoke-address 127.0.0.1 --invoke-port "$PORT" \
      --data-file "$1" bucket-trigger 2>&1); then
    echo "FAIL: $1: invoke failed: $out" >&2; failed=$((failed + 1)); return
  fi
  if python3 -c "import json,sys; r=json.loads(sys.argv[1]); assert $2, r" "$out" 2>/dev/null; then
    echo "PASS: $1"; passed=$((passed + 1))
  else
    echo "FAIL: $1: $out" >&2; failed=$((failed + 1))
  fi
}
check events/s3-put.json 'r["summary"]["dry_run"] == 2 and "Bearer ****" in json.dumps(r) and "not-real" not in json.dumps(r)'
check events/eventbridge-object-created.json 'r["outcomes"][0]["request"]["body"]["conf"]["key"] == "incoming/eventbridge/Q4 report+final (v2).csv"'
check events/sqs-batch.json 'r == {"batchItemFailures": []}'
check events/s3-test-event.json 'r["skipped"][0]["reason"].startswith("s3:TestEvent")'
# A function URL request, to a config without settings.push: answered 404 in HTTP form, nothing run.
check events/function-url-gcs-push.json 'r["statusCode"] == 404 and "settings.push" in r["body"]'

if ((failed)); then tail -n 40 "$LOG" >&2; fi
echo "smoke-cargo-lambda: $passed passed, $failed failed"
((failed == 0))
