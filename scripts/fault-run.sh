#!/usr/bin/env bash
# Fault-injection run (issue 10): starts moto (DynamoDB for the idempotency store, SQS for the
# failure queue) on 127.0.0.1, then runs bench/faults.rs: EVENTS object events (default 1000)
# of every shape through the real handler, against loopback stand-ins that fail on purpose,
# redelivered as Lambda and SQS would, store on and store off, then the store-on run's replay.
# Prints the table; exits non-zero when the store-on run loses or duplicates a run, breaks
# "one run xor one failure record", or its replay does not bring every object to one run.
#
#   scripts/fault-run.sh                      # 1000 events, seed 1
#   scripts/fault-run.sh --events 120 --seed 7
#   EVENTS=120 SEED=7 scripts/fault-run.sh    # the small version CI runs
#
# Other flags go to the harness (--store on|off|both, --limit-seconds N).
set -euo pipefail
cd "$(dirname "$0")/.."

events="${EVENTS:-1000}"
seed="${SEED:-1}"
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --events) events="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    *) extra+=("$1"); shift ;;
  esac
done

moto_server="${MOTO_SERVER:-}"
if [ -z "$moto_server" ]; then
  if [ -x .venv/bin/moto_server ]; then
    moto_server=.venv/bin/moto_server
  elif command -v moto_server >/dev/null; then
    moto_server=moto_server
  else
    echo "fault-run: moto_server not found: run scripts/test.sh once (it installs moto into .venv) or set MOTO_SERVER" >&2
    exit 2
  fi
fi

# Build first, so that compiling does not count against the run's time limit.
cargo build --quiet --example faults

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$moto_server" -H 127.0.0.1 -p "$port" >"${TMPDIR:-/tmp}/fault-run-moto-$port.log" 2>&1 &
moto=$!
trap 'kill "$moto" 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do
  if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
    break
  fi
  sleep 0.2
done

# The run is bounded: the harness gives up (and fails) after --limit-seconds (default 900).
# shellcheck disable=SC2068
target/debug/examples/faults --moto "http://127.0.0.1:$port" --events "$events" --seed "$seed" ${extra[@]+"${extra[@]}"}
