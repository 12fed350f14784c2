#!/usr/bin/env bash
# The Airflow conformance matrix: scripts/e2e-airflow.sh against each version, one after the
# other (never two Airflows at once), then a markdown table of the results it wrote.
#
#   scripts/conformance.sh                    # 2.10.5 2.11.2 3.1.8 3.2.2 3.3.2
#   scripts/conformance.sh 2.11.2 3.3.2       # the versions given
#   scripts/conformance.sh --report [V...]    # only print the table of the last run's results
#
# Each version runs with E2E_RESULTS=.e2e/conformance/<version>.tsv (one `CHECK<TAB>pass|fail<TAB>
# message` line per check, see the e2e script's header) and its output in
# .e2e/conformance/<version>.log. The table has one row per check and one column per version:
# ✓ when every assertion of that check passed (their number in parentheses), ✗ when one failed,
# "not run" when the e2e wrote none (e.g. it stopped before). The rows above the checks are the
# installed Airflow version and the metadata DB; below them, the HTTP status Airflow answered a
# wrong password with (read from the failure message the binary reported), the e2e's totals,
# exit status and time. The table is also written to .e2e/conformance/table.md.
# Exits 1 if any version failed. Venvs are installed by the e2e script when missing.
#
# Environment: BUCKET_TRIGGER_BIN (default: cargo build once, target/debug/bucket-trigger), and
# everything scripts/e2e-airflow.sh reads (E2E_DB, E2E_*_TIMEOUT, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/.e2e/conformance
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}

REPORT_ONLY=0
if [[ ${1:-} == --report ]]; then REPORT_ONLY=1; shift; fi
VERSIONS=("$@")
((${#VERSIONS[@]})) || VERSIONS=(2.10.5 2.11.2 3.1.8 3.2.2 3.3.2)
mkdir -p "$OUT"

if ((!REPORT_ONLY)); then
  if [[ -z ${BUCKET_TRIGGER_BIN:-} ]]; then
    echo "[conformance] building bucket-trigger (cargo build)" >&2
    cargo build --quiet
    BUCKET_TRIGGER_BIN=$ROOT/target/debug/bucket-trigger
  fi
  export BUCKET_TRIGGER_BIN
  for version in "${VERSIONS[@]}"; do
    rm -f "$OUT/$version.tsv" "$OUT/$version.seconds"
    echo "[conformance] Airflow $version: scripts/e2e-airflow.sh (log: $OUT/$version.log)" >&2
    start=$SECONDS rc=0
    AIRFLOW_VERSION=$version E2E_RESULTS=$OUT/$version.tsv scripts/e2e-airflow.sh > "$OUT/$version.log" 2>&1 || rc=$?
    echo "$((SECONDS - start))" > "$OUT/$version.seconds"
    echo "[conformance] Airflow $version: exit $rc after $((SECONDS - start))s; $(tail -n 1 "$OUT/$version.log")" >&2
  done
fi

"$PYTHON" - "$OUT" "${VERSIONS[@]}" <<'EOF' | tee "$OUT/table.md"
import os, re, sys

out, versions = sys.argv[1], sys.argv[2:]
CHECKS = [
    ("listen", "every Airflow socket on 127.0.0.1"),
    ("dry-run", "dry run: exit 0, no DAG run"),
    ("conf", "run with conf (event key; 300-character unicode key exact)"),
    ("duplicate", "duplicate → one run (409 checked by GET)"),
    ("success", "runs reach success (300-character key included)"),
    ("collision", "logical-date collision → no object lost"),
    ("paused", "paused DAG → triggered with a warning"),
    ("unknown-dag", "unknown DAG → permanent error naming the DAG"),
    ("wrong-password", "wrong password → permanent error naming the secret"),
    ("asset", "asset event → the asset-scheduled DAG runs"),
    ("mwaa", "MWAA InvokeRestApi (SigV4) → run, duplicate, denied; 3.x: a v1 body → \"set api: v2\""),
    ("gcs-push", "GCS Pub/Sub push to serve (OIDC verified) → run, duplicate, unsigned 401"),
]
results, meta = {}, {}
for v in versions:
    lines, info = [], {}
    path = os.path.join(out, f"{v}.tsv")
    if os.path.exists(path):
        for line in open(path, encoding="utf-8"):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2:
                continue
            if parts[0].startswith("@"):
                info[parts[0][1:]] = parts[1]
            else:
                lines.append((parts[0], parts[1], parts[2] if len(parts) > 2 else ""))
    seconds = os.path.join(out, f"{v}.seconds")
    if os.path.exists(seconds):
        info["seconds"] = open(seconds).read().strip()
    results[v], meta[v] = lines, info

def cell(v, check):
    got = [r for c, r, _ in results[v] if c == check]
    if not got:
        return "not run"
    failed = got.count("fail")
    return f"✓ ({len(got)})" if not failed else f"✗ ({failed} of {len(got)} failed)"

def wrong_password_status(v):
    for c, r, message in results[v]:
        if c == "wrong-password" and r == "pass":
            m = re.search(r"\((\d{3})\)|HTTP (\d{3})", message)
            status = (m.group(1) or m.group(2)) if m else "?"
            return f"{status} to POST /auth/token" if "/auth/token" in message else f"{status} to the trigger"
    return "—"

def row(cells):
    print("| " + " | ".join(cells) + " |")

row(["check"] + versions)
row(["---"] * (len(versions) + 1))
row(["Airflow (installed)"] + [meta[v].get("version", "?") for v in versions])
row(["metadata DB"] + [meta[v].get("db", "?") for v in versions])
row(["REST API, auth"] + ["v1, basic auth" if v.startswith("2.") else "v2, token exchange" for v in versions])
for check, label in CHECKS:
    row([label] + [cell(v, check) for v in versions])
row(["wrong password: Airflow's answer"] + [wrong_password_status(v) for v in versions])
def totals(v):
    got = [r for _, r, _ in results[v]]
    return f"{got.count('pass')} passed, {got.count('fail')} failed"
row(["e2e assertions"] + [totals(v) for v in versions])
row(["e2e exit status"] + [meta[v].get("exit", "?") for v in versions])
row(["e2e time (s)"] + [meta[v].get("seconds", "?") for v in versions])
ok = all(meta[v].get("exit") == "0" and results[v] and all(r == "pass" for _, r, _ in results[v]) for v in versions)
sys.exit(0 if ok else 1)
EOF
