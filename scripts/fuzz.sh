#!/usr/bin/env bash
# Runs the property tests (tests/it/props/) for a bounded time, with many more cases than the
# few hundred per property that `cargo test` runs: batch after batch of CASES cases per property,
# each batch with fresh random seeds, until SECONDS_LIMIT seconds have passed (the build comes
# first and does not count). The first failure stops the run: proptest prints the shrunk input
# and saves its seed under tests/proptest-regressions/ (commit it, and add a named test).
#
#   scripts/fuzz.sh                                  # 2000 cases per property per batch, 300 s
#   CASES=20000 SECONDS_LIMIT=3600 scripts/fuzz.sh
#   PROFILE=release scripts/fuzz.sh                  # optimized (a long first build: LTO)
set -euo pipefail
cd "$(dirname "$0")/.."

cases=${CASES:-2000}
limit=${SECONDS_LIMIT:-300}
profile=${PROFILE:-dev}
# Build first (not timed), then run the test binary itself, so that `timeout` stops the
# properties and not just cargo.
cargo test --profile "$profile" --test it --no-run
bin=$(cargo test --profile "$profile" --test it --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -n 1)

start=$SECONDS
batches=0
while (( SECONDS - start < limit )); do
  left=$(( limit - (SECONDS - start) ))
  status=0
  PROPTEST_CASES=$cases timeout "$left" "$bin" props:: --quiet || status=$?
  case $status in
    0) batches=$(( batches + 1 )) ;;
    124) echo "==> time limit reached during batch $(( batches + 1 ))"; break ;;
    *) echo "==> a property failed in batch $(( batches + 1 )) (its seed is saved under tests/proptest-regressions/)"
       exit "$status" ;;
  esac
done
echo "==> $batches full batches of $cases cases per property in $(( SECONDS - start )) s, no failure"
