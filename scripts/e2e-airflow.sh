#!/usr/bin/env bash
# End-to-end test of `bucket-trigger invoke` against a REAL Apache Airflow.
#
#   scripts/e2e-airflow.sh                          # Airflow 3.1.x (REST API v2, JWT token auth)
#   AIRFLOW_VERSION=2.10.5 scripts/e2e-airflow.sh   # Airflow 2      (REST API v1, basic auth)
#
# What it does:
#   1. builds the binary (`cargo build`) unless BUCKET_TRIGGER_BIN points at one;
#   2. installs apache-airflow==$AIRFLOW_VERSION from PyPI into .e2e/venv-<version>
#      (reused on later runs; delete the directory to force a reinstall);
#   3. creates a fresh AIRFLOW_HOME (.e2e/home-<version>) with a trigger-only
#      DAG `bucket_trigger_e2e`, and starts the Airflow components bound to 127.0.0.1
#      only (Airflow 3: api-server + scheduler + dag-processor; Airflow 2: webserver +
#      scheduler). Nothing that would listen on 0.0.0.0 is started (no `standalone`,
#      no triggerer, no log server: `--skip-serve-logs`). The metadata DB is SQLite before
#      Airflow 3.2 and PostgreSQL from 3.2 on (3.3 on SQLite answers 500s and loses its
#      scheduler under load, "database is locked"): a throwaway cluster made with `initdb` in
#      AIRFLOW_HOME/pg, listening on a Unix socket in that directory only
#      (listen_addresses=''), run as the `postgres` user when we are root, stopped on exit;
#   4. runs `bucket-trigger invoke events/s3-put.json` (dry run, real run, repeated run)
#      and checks the outcome through Airflow's own REST API:
#        - the dry run creates no DAG run,
#        - one invoke creates exactly one DAG run whose conf.bucket/conf.key match the event,
#        - a second invoke of the same event exits 0 and still leaves exactly one DAG run
#          (deterministic dag_run_id; Airflow answers 409, which the binary checks with a GET
#          of its run id: the run is there, so it counts as "already triggered"),
#        - the DAG run reaches state `success` (i.e. it is a real, runnable run);
#   5. sends three generated S3 notifications (written to the work dir, not committed):
#        - long key: one record whose key is 300 characters (URL-encoded as S3 does); the
#          DAG run gets a run id of at most 248 characters (longer ones cannot write their
#          task log folder `run_id=<id>`: "File name too long"), conf.key is the decoded
#          key, and the run reaches state `success`;
#        - logical-date collision: one notification of ten records (ten keys, one eventTime)
#          on a route with `logical_date: "{{ event_time }}"`. Airflow answers 409 for nine
#          of them (a run with that logical date exists) and the binary's GET of each run id
#          finds nothing: the report counts 1 triggered, 0 already triggered and 9 failed,
#          each failure naming its own run id and the shared logical_date, `invoke` exits 1,
#          and Airflow holds exactly one run for that batch and logical date. Re-sending the
#          record that got the run reports it already triggered (exit 0); re-sending one of
#          the others fails again the same way (exit 1); no run is added;
#        - paused DAG: with the DAG paused (PATCH is_paused), a new object is triggered
#          (exit 0) and its outcome carries the warning that the DAG is paused;
#        - unknown DAG: a route whose dag_id Airflow does not have fails for good (exit 1,
#          not retryable), the message naming the DAG;
#        - wrong password: a route whose secret holds a wrong password fails for good
#          (exit 1), the message naming the secret (Airflow 2: basic auth, 401 or 403;
#          Airflow 3: the token exchange is refused);
#   6. asset events (target `airflow_asset`): a second DAG, `bucket_trigger_e2e_asset`, is
#      scheduled on the asset (Airflow 2: dataset) s3://e2e-bucket/assets/landing. One S3
#      notification on the asset route posts one asset event (v2: the asset's id, looked up by
#      URI; v1: the dataset URI) whose extra carries the object; Airflow then holds exactly that
#      event (its id is the report's remote_id), and the asset-scheduled DAG gets a run that
#      consumed it and reaches success; an asset no DAG declares is a permanent failure naming
#      it (exit 1); re-sending the same notification makes a second event (asset events have
#      no client id: the target is not idempotent).
#   7. Amazon MWAA by IAM: a stand-in for the MWAA API (tests/fixtures/mwaa_server.py, with
#      botocore from the test venv .venv) recomputes each request's SigV4 signature and
#      forwards the call to this Airflow as MWAA forwards it: Airflow 2 environments to the
#      stable API v1 (basic auth), Airflow 3 environments to the REST API v2 (with a token
#      the stand-in gets from /auth/token); the `mwaa` target says `api: v1` or `v2`. An `mwaa` target creates one run
#      whose conf carries the object; re-sending it is already triggered (the 409 checked
#      through InvokeRestApi); a request signed with another secret key is refused, naming
#      airflow:InvokeRestApi.
#   8. Google Cloud Storage pushes through `bucket-trigger serve` on 127.0.0.1: a Pub/Sub push
#      signed as Google signs push tokens (the test key; its JWKS served by a local stand-in for
#      Google's certs endpoint) is verified, and creates one run whose conf carries the object
#      (source gcs, the generation as version_id) and reaches success; the same push again is
#      already triggered; a push without a token is answered 401 and runs nothing; the token is
#      never in serve's log.
#   Prints `e2e-airflow <version>: N passed, M failed` and exits 1 if anything failed.
#   With E2E_RESULTS=FILE, also writes one line per check to FILE (scripts/conformance.sh
#   reads it): `CHECK<TAB>pass|fail<TAB>message`, CHECK one of listen dry-run conf duplicate
#   success collision paused unknown-dag wrong-password asset mwaa; and `@version`, `@db`
#   and `@exit` lines (the exit status, written on exit).
#   All started processes are stopped on exit; on failure the Airflow logs' tails are shown.
#
# Environment (all optional):
#   AIRFLOW_VERSION      pip version spec of apache-airflow          (default: 3.1.*)
#   AIRFLOW_PORT         port of the API server / webserver           (default: a free port)
#   BUCKET_TRIGGER_BIN   binary under test                            (default: cargo build; target/debug/bucket-trigger)
#   PYTHON               interpreter for the venv                     (default: python3.11, else python3)
#   E2E_API_TIMEOUT      seconds to wait for the API to come up       (default: 120)
#   E2E_DAG_TIMEOUT      seconds to wait for the DAG to be parsed     (default: 120)
#   E2E_RUN_TIMEOUT      seconds to wait for the DAG run to succeed   (default: 120)
#   E2E_EVENT_FILE       S3 notification to send                      (default: events/s3-put.json)
#   E2E_INSTALL_ONLY=1   only install the venv (CI does this in the background while it builds)
#   E2E_KEEP_HOME=1      keep AIRFLOW_HOME after a successful run (it is always kept after a failure)
#   E2E_DB               sqlite | postgres: Airflow's metadata DB (default: postgres from 3.2 on)
#   E2E_RESULTS          file for the per-check results (see above; default: none)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

AIRFLOW_VERSION=${AIRFLOW_VERSION:-3.1.*}
API_TIMEOUT=${E2E_API_TIMEOUT:-120}
DAG_TIMEOUT=${E2E_DAG_TIMEOUT:-120}
RUN_TIMEOUT=${E2E_RUN_TIMEOUT:-120}
EVENT_FILE=${E2E_EVENT_FILE:-events/s3-put.json}
DAG_ID=bucket_trigger_e2e
ASSET_DAG_ID=bucket_trigger_e2e_asset
ASSET_URI=s3://e2e-bucket/assets/landing

case "$AIRFLOW_VERSION" in
  3.*) MAJOR=3 API=v2 ;;
  2.*) MAJOR=2 API=v1 ;;
  *) echo "AIRFLOW_VERSION must be 2.x or 3.x, got '$AIRFLOW_VERSION'" >&2; exit 2 ;;
esac

# The metadata DB: PostgreSQL from Airflow 3.2 on (a "3.*" spec installs the newest).
MINOR=$(cut -d. -f2 <<< "$AIRFLOW_VERSION")
if [[ -n ${E2E_DB:-} ]]; then
  DB=$E2E_DB
elif ((MAJOR == 3)) && { [[ ! $MINOR =~ ^[0-9]+$ ]] || ((MINOR >= 2)); }; then
  DB=postgres
else
  DB=sqlite
fi
[[ $DB == sqlite || $DB == postgres ]] || { echo "E2E_DB must be sqlite or postgres, got '$DB'" >&2; exit 2; }

# Directory names: "3.1.*" -> "3.1.x".
SLUG=${AIRFLOW_VERSION//\*/x}
E2E_DIR=$ROOT/.e2e
VENV=$E2E_DIR/venv-$SLUG
export AIRFLOW_HOME=$E2E_DIR/home-$SLUG
LOG_DIR=$AIRFLOW_HOME/e2e-logs
WORK=$AIRFLOW_HOME/e2e-work            # config/secrets/outputs for the binary

log() { printf '[e2e-airflow %s] %s\n' "$AIRFLOW_VERSION" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}

# --------------------------------------------------------------------------------------
# Process management: every Airflow component runs in its own session/process group
# (setsid), so that cleanup also stops its children (uvicorn/gunicorn workers, executor
# and task processes).
# --------------------------------------------------------------------------------------
PIDS=()
RESULTS=${E2E_RESULTS:-}
result() { [[ -z $RESULTS ]] || printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$RESULTS"; }
PG_DIR=           # our PostgreSQL cluster's directory (socket, log, data/)
PG_DATA=          # set while that cluster may be running
PG_AS=()          # runuser -u postgres -- when we are root (PostgreSQL refuses to run as root)
HOME_READY=0          # set once this run has created AIRFLOW_HOME (whose logs are then worth showing)

start_bg() {          # start_bg NAME CMD... ; output goes to $LOG_DIR/NAME.log
  local name=$1; shift
  if command -v setsid >/dev/null; then
    setsid "$@" >"$LOG_DIR/$name.log" 2>&1 < /dev/null &
  else
    "$@" >"$LOG_DIR/$name.log" 2>&1 < /dev/null &
  fi
  PIDS+=("$!")
  log "started $name (pid $!): $*"
}

stop_all() {
  local pid
  ((${#PIDS[@]})) || return 0
  for pid in "${PIDS[@]}"; do
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for _ in $(seq 1 30); do      # up to 15 s for a graceful shutdown
    local alive=0
    for pid in "${PIDS[@]}"; do
      if kill -0 -- "-$pid" 2>/dev/null || kill -0 "$pid" 2>/dev/null; then alive=1; fi
    done
    ((alive)) || break
    sleep 0.5
  done
  for pid in "${PIDS[@]}"; do
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  PIDS=()
}

show_logs() {
  local f
  for f in "$LOG_DIR"/*.log; do
    [[ -f $f ]] || continue
    echo "----- tail -n 40 $f -----" >&2
    tail -n 40 "$f" >&2 || true
  done
  if [[ -n $PG_DIR && -f $PG_DIR/postgres.log ]]; then
    echo "----- tail -n 20 $PG_DIR/postgres.log -----" >&2
    tail -n 20 "$PG_DIR/postgres.log" >&2 || true
  fi
  # Task logs (the DAG run's task output), if any.
  if [[ -d $AIRFLOW_HOME/logs ]]; then
    find "$AIRFLOW_HOME/logs" -path '*dag_id=*' -type f 2>/dev/null | head -n 3 | while read -r f; do
      echo "----- tail -n 30 $f -----" >&2
      tail -n 30 "$f" >&2 || true
    done
  fi
}

stop_postgres() {
  [[ -n $PG_DATA && -f $PG_DATA/postmaster.pid ]] || return 0
  "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 30 stop > /dev/null 2>&1 \
    || log "pg_ctl stop failed (cluster in $PG_DATA)"
  PG_DATA=
}

on_exit() {
  local rc=$?
  if ((rc != 0 && HOME_READY)); then
    log "FAILED (exit $rc); Airflow logs follow, AIRFLOW_HOME kept at $AIRFLOW_HOME"
    show_logs
  fi
  stop_all
  stop_postgres
  # A socket dir made in /tmp (AIRFLOW_HOME's path was too long for a socket) goes either way.
  if [[ $PG_DIR == /tmp/e2e-pg.* ]]; then rm -rf "$PG_DIR"; fi
  [[ ${INSTALL_ONLY:-0} == 1 ]] || result @exit "$rc" ""
  if ((rc == 0 && HOME_READY)) && [[ ${E2E_KEEP_HOME:-0} != 1 ]]; then rm -rf "$AIRFLOW_HOME"; fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# --------------------------------------------------------------------------------------
# 1. The binary under test
# --------------------------------------------------------------------------------------
INSTALL_ONLY=${E2E_INSTALL_ONLY:-0}
if [[ $INSTALL_ONLY != 1 && -z ${BUCKET_TRIGGER_BIN:-} ]]; then
  log "building bucket-trigger (cargo build)"
  cargo build --quiet
  BUCKET_TRIGGER_BIN=$ROOT/target/debug/bucket-trigger
fi
[[ $INSTALL_ONLY == 1 || -x $BUCKET_TRIGGER_BIN ]] || die "binary not found or not executable: $BUCKET_TRIGGER_BIN"
[[ -f $EVENT_FILE ]] || die "event file not found: $EVENT_FILE"

# The event's bucket and (URL-decoded) key: what the DAG run's conf must contain.
read -r EVENT_BUCKET EVENT_KEY_JSON < <("$PYTHON" - "$EVENT_FILE" <<'EOF'
import json, sys, urllib.parse
rec = json.load(open(sys.argv[1]))["Records"][0]["s3"]
# The key stays JSON-encoded here so that it survives `read` even with spaces in it.
print(rec["bucket"]["name"], json.dumps(urllib.parse.unquote_plus(rec["object"]["key"])))
EOF
) || die "cannot read the bucket and key from $EVENT_FILE"
log "event: bucket=$EVENT_BUCKET key=$EVENT_KEY_JSON"

# --------------------------------------------------------------------------------------
# 2. Airflow venv (reused when it already holds the requested version)
# --------------------------------------------------------------------------------------
# Pins pip would otherwise get wrong: Airflow 3.2.x asks for fastapi>=0.129 with no upper bound,
# and fastapi 0.137+ (0.165 in November 2026) breaks its execution API at start-up
# ("PydanticUserError: Model 'TITerminalStatePayload' needs a discriminator field"); Airflow 3.3
# caps it at <0.137 itself. (Airflow's constraint files would pin everything, but they live on
# GitHub, which an install from PyPI alone cannot count on.)
PINS=()
case $AIRFLOW_VERSION in 3.2.*) PINS=("fastapi<0.137") ;; esac
if [[ -x $VENV/bin/airflow && $(cat "$VENV/.e2e-installed" 2>/dev/null) == "$AIRFLOW_VERSION" ]]; then
  log "reusing $VENV"
else
  log "installing apache-airflow==$AIRFLOW_VERSION into $VENV (takes about a minute)"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
  # psycopg2-binary and asyncpg: the PostgreSQL drivers of E2E_DB=postgres (the default from
  # 3.2 on; Airflow 3 opens an async engine too).
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "apache-airflow==$AIRFLOW_VERSION" "${PINS[@]}" psycopg2-binary asyncpg
  echo "$AIRFLOW_VERSION" > "$VENV/.e2e-installed"
fi
# PostgreSQL: Debian's server (apt-get when missing and we may), and the driver in the venv.
PG_BIN=
if [[ $DB == postgres ]]; then
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [[ ! -x $PG_BIN/initdb ]] && ((EUID == 0)) && command -v apt-get >/dev/null; then
    log "installing Debian's postgresql (apt-get)"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } > /dev/null 2>&1 \
      || die "apt-get install postgresql failed"
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  fi
  [[ -x $PG_BIN/initdb ]] || die "E2E_DB=postgres needs PostgreSQL's initdb (apt-get install postgresql)"
  if ! "$VENV/bin/python" -c 'import psycopg2, asyncpg' 2>/dev/null; then
    log "installing psycopg2-binary and asyncpg into $VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check psycopg2-binary asyncpg
  fi
fi
# Tasks are run by `airflow ...` subprocesses: the venv's bin must be on PATH.
export PATH=$VENV/bin:$PATH
if [[ $INSTALL_ONLY == 1 ]]; then
  log "installed; E2E_INSTALL_ONLY=1, not starting Airflow"
  exit 0
fi
INSTALLED_VERSION=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("apache-airflow"))')
log "apache-airflow $INSTALLED_VERSION"
if [[ -n $RESULTS ]]; then
  mkdir -p "$(dirname "$RESULTS")" && : > "$RESULTS"
  result @version "$INSTALLED_VERSION" ""
fi

# --------------------------------------------------------------------------------------
# 3. Fresh AIRFLOW_HOME, configuration (all via environment), the DAG
# --------------------------------------------------------------------------------------
rm -rf "$AIRFLOW_HOME"
mkdir -p "$AIRFLOW_HOME/dags" "$LOG_DIR" "$WORK"
HOME_READY=1

if [[ -n ${AIRFLOW_PORT:-} ]]; then
  PORT=$AIRFLOW_PORT
else
  PORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
BASE_URL=http://127.0.0.1:$PORT
ADMIN_USER="admin"
# Hex, so it never starts with '-' (argparse would read that as an option).
ADMIN_PASSWORD=$("$PYTHON" -c 'import secrets; print(secrets.token_hex(16))')
SECRET=$("$PYTHON" -c 'import secrets; print(secrets.token_hex(32))')

unset AIRFLOW_CONFIG    # everything below comes from the environment and $AIRFLOW_HOME/airflow.cfg
export AIRFLOW__CORE__DAGS_FOLDER=$AIRFLOW_HOME/dags
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
if [[ $DB == postgres ]]; then
  # A throwaway cluster in AIRFLOW_HOME/pg: no TCP at all (listen_addresses=''), its socket in
  # that directory, trust auth for local connections (nobody else can reach the socket dir).
  PG_DIR=$AIRFLOW_HOME/pg
  if (( ${#PG_DIR} > 90 )); then PG_DIR=$(mktemp -d /tmp/e2e-pg.XXXXXX); fi   # socket paths stop at 107 bytes
  mkdir -p "$PG_DIR"
  if ((EUID == 0)); then chown postgres: "$PG_DIR"; PG_AS=(runuser -u postgres --); fi
  PG_DATA=$PG_DIR/data
  "${PG_AS[@]}" "$PG_BIN/initdb" -D "$PG_DATA" -U airflow -A trust -E UTF8 --locale=C > "$LOG_DIR/initdb.log" 2>&1 \
    || { cat "$LOG_DIR/initdb.log" >&2; die "initdb failed"; }
  cat >> "$PG_DATA/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$PG_DIR'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DIR/postgres.log" -w -t 60 start > "$LOG_DIR/pg_ctl.log" 2>&1 \
    || { cat "$LOG_DIR/pg_ctl.log" "$PG_DIR/postgres.log" >&2; die "PostgreSQL did not start"; }
  "${PG_AS[@]}" "$PG_BIN/createdb" -h "$PG_DIR" -U airflow airflow || die "createdb failed"
  PG_VERSION=$("${PG_AS[@]}" "$PG_BIN/psql" -h "$PG_DIR" -U airflow -d airflow -Atc 'SHOW server_version' | cut -d' ' -f1)
  log "PostgreSQL $PG_VERSION on the Unix socket $PG_DIR (no TCP)"
  export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://airflow@/airflow?host=$PG_DIR"
  result @db "PostgreSQL $PG_VERSION" ""
else
  export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=sqlite:///$AIRFLOW_HOME/airflow.db
  result @db "SQLite $("$PYTHON" -c 'import sqlite3; print(sqlite3.sqlite_version)')" ""
fi
export AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL=5      # Airflow 2: rescan the dags folder quickly
export AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL=5
if ((MAJOR == 3)); then
  # The simple auth manager (Airflow 3's default) with a pinned password: it reads
  # {"user": "password"} from the passwords file and only generates passwords for
  # users missing from it.
  export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=$ADMIN_USER:admin
  export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated
  printf '{"%s": "%s"}\n' "$ADMIN_USER" "$ADMIN_PASSWORD" > "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
  # One JWT secret shared by api-server and scheduler (task workers authenticate to the
  # execution API with it), and the execution API on our 127.0.0.1 port, not localhost:8080.
  export AIRFLOW__API_AUTH__JWT_SECRET=$SECRET
  export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=$BASE_URL/execution/
  export AIRFLOW__API__BASE_URL=$BASE_URL
  export AIRFLOW__CORE__EXECUTOR=LocalExecutor
  export AIRFLOW__CORE__PARALLELISM=2
  export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=5
else
  export AIRFLOW__API__AUTH_BACKENDS=airflow.api.auth.backend.basic_auth
  export AIRFLOW__WEBSERVER__SECRET_KEY=$SECRET
  export AIRFLOW__WEBSERVER__WORKERS=1
fi

# A trigger-only DAG with one trivial task that prints the run's conf.
cat > "$AIRFLOW_HOME/dags/$DAG_ID.py" <<'EOF'
from __future__ import annotations

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task

with DAG(
    dag_id="bucket_trigger_e2e",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["e2e"],
):

    @task
    def show_conf(**context):
        print("dag_run.conf =", context["dag_run"].conf)

    show_conf()
EOF

# A DAG scheduled on an asset (Airflow 2: a dataset): asset events start its runs.
cat > "$AIRFLOW_HOME/dags/$ASSET_DAG_ID.py" <<EOF
from __future__ import annotations

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, Asset, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.datasets import Dataset as Asset
    from airflow.decorators import task

with DAG(
    dag_id="$ASSET_DAG_ID",
    schedule=[Asset("$ASSET_URI")],
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    tags=["e2e"],
):

    @task
    def show_events(**context):
        events = context.get("triggering_asset_events") or context.get("triggering_dataset_events")
        print("triggering events =", events)

    show_events()
EOF

log "airflow db migrate"
airflow db migrate > "$LOG_DIR/db-migrate.log" 2>&1 || die "airflow db migrate failed (see $LOG_DIR/db-migrate.log)"

T_START=$(date +%s)
if ((MAJOR == 3)); then
  start_bg api-server    airflow api-server --host 127.0.0.1 --port "$PORT" --workers 1
  start_bg scheduler     airflow scheduler --skip-serve-logs
  start_bg dag-processor airflow dag-processor
else
  airflow users create --username "$ADMIN_USER" --password="$ADMIN_PASSWORD" --role Admin \
    --firstname E2E --lastname Admin --email admin@example.invalid > "$LOG_DIR/users-create.log" 2>&1 \
    || die "airflow users create failed (see $LOG_DIR/users-create.log)"
  start_bg webserver     airflow webserver --hostname 127.0.0.1 --port "$PORT" --workers 1
  start_bg scheduler     airflow scheduler --skip-serve-logs
fi

# --------------------------------------------------------------------------------------
# REST API helpers (curl). api METHOD PATH [JSON_BODY] -> body in $WORK/resp.json,
# HTTP status on stdout ("000" if the connection failed).
# --------------------------------------------------------------------------------------
TOKEN=
api() {
  local method=$1 path=$2 body=${3:-}
  local args=(-sS -o "$WORK/resp.json" -w '%{http_code}' --max-time 20 -X "$method"
              -H 'Accept: application/json')
  if ((MAJOR == 3)); then
    [[ -n $TOKEN ]] && args+=(-H "Authorization: Bearer $TOKEN")
  else
    args+=(-u "$ADMIN_USER:$ADMIN_PASSWORD")
  fi
  [[ -n $body ]] && args+=(-H 'Content-Type: application/json' --data "$body")
  curl "${args[@]}" "$BASE_URL$path" 2>>"$LOG_DIR/curl.log" || true
}
json() {   # json 'python expression over d' < file : evaluate on the parsed JSON
  "$PYTHON" -c "import json,sys; d=json.load(sys.stdin); print($1)"
}
alive_or_die() {  # a component that died will not come back: fail fast
  local pid
  for pid in "${PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null || die "an Airflow component (pid $pid) exited; see the logs below"
  done
}

# --------------------------------------------------------------------------------------
# 4. Wait for the API, log in, wait for the DAG to be parsed
# --------------------------------------------------------------------------------------
log "waiting up to ${API_TIMEOUT}s for the API on $BASE_URL"
deadline=$((SECONDS + API_TIMEOUT))
if ((MAJOR == 3)); then
  # Token exchange: POST /auth/token {"username","password"} -> 201 {"access_token": ...}
  login_body=$(printf '{"username": "%s", "password": "%s"}' "$ADMIN_USER" "$ADMIN_PASSWORD")
  until
    code=$(curl -sS -o "$WORK/token.json" -w '%{http_code}' --max-time 10 -X POST \
             -H 'Content-Type: application/json' --data "$login_body" "$BASE_URL/auth/token" 2>/dev/null || true)
    [[ $code == 2?? ]]
  do
    alive_or_die
    ((SECONDS < deadline)) || die "API not up after ${API_TIMEOUT}s (last POST /auth/token status: $code)"
    sleep 2
  done
  TOKEN=$(json 'd["access_token"]' < "$WORK/token.json")
else
  until code=$(api GET /api/v1/health); [[ $code == 200 ]]; do
    alive_or_die
    ((SECONDS < deadline)) || die "API not up after ${API_TIMEOUT}s (last GET /api/v1/health status: $code)"
    sleep 2
  done
fi
log "API up after $(($(date +%s) - T_START))s (HTTP $code)"

log "waiting up to ${DAG_TIMEOUT}s for $DAG_ID to be parsed"
deadline=$((SECONDS + DAG_TIMEOUT))
until code=$(api GET "/api/$API/dags/$DAG_ID"); [[ $code == 200 ]]; do
  [[ $code == 401 || $code == 403 ]] && die "API rejects our credentials (HTTP $code): $(cat "$WORK/resp.json")"
  alive_or_die
  ((SECONDS < deadline)) || die "DAG $DAG_ID not visible after ${DAG_TIMEOUT}s (last status: $code)"
  sleep 2
done
if [[ $(json 'd["is_paused"]' < "$WORK/resp.json") == True ]]; then
  log "unpausing $DAG_ID"
  code=$(api PATCH "/api/$API/dags/$DAG_ID" '{"is_paused": false}')
  [[ $code == 200 ]] || die "could not unpause $DAG_ID (HTTP $code): $(cat "$WORK/resp.json")"
fi
until code=$(api GET "/api/$API/dags/$ASSET_DAG_ID"); [[ $code == 200 ]]; do
  alive_or_die
  ((SECONDS < deadline)) || die "DAG $ASSET_DAG_ID not visible after ${DAG_TIMEOUT}s (last status: $code)"
  sleep 2
done
if [[ $(json 'd["is_paused"]' < "$WORK/resp.json") == True ]]; then
  code=$(api PATCH "/api/$API/dags/$ASSET_DAG_ID" '{"is_paused": false}')
  [[ $code == 200 ]] || die "could not unpause $ASSET_DAG_ID (HTTP $code): $(cat "$WORK/resp.json")"
fi
log "DAG parsed after $(($(date +%s) - T_START))s"

# --------------------------------------------------------------------------------------
# 5. The checks
# --------------------------------------------------------------------------------------
PASSED=0 FAILED=0
pass() { local check=$1; shift; PASSED=$((PASSED + 1)); log "PASS [$check]: $*"; result "$check" pass "$*"; }
fail() { local check=$1; shift; FAILED=$((FAILED + 1)); log "FAIL [$check]: $*"; result "$check" fail "$*"; }

# 5a. Every TCP socket listened on by any process of our Airflow sessions (each component
# and all its children) is bound to 127.0.0.1.
if command -v ss >/dev/null; then
  our_pids=$(for sid in "${PIDS[@]}"; do ps -o pid= -s "$sid" 2>/dev/null || true; done | tr -d ' ' | paste -sd'|' -)
  ss -ltnp 2>/dev/null | tail -n +2 | grep -E "pid=($our_pids)," > "$WORK/listen.txt" || true
  log "TCP sockets listened on by Airflow processes (ss -ltnp):"
  cat "$WORK/listen.txt" >&2
  if [[ ! -s $WORK/listen.txt ]]; then
    fail listen "ss shows no listening socket of the Airflow processes (expected the API on 127.0.0.1:$PORT)"
  elif awk '{print $4}' "$WORK/listen.txt" | grep -vqE '^127\.0\.0\.1:'; then
    fail listen "an Airflow process listens on a non-loopback address"
  else
    pass listen "all Airflow listening sockets are on 127.0.0.1"
  fi
else
  log "ss not available: skipping the listening-socket check"
fi

# Config and secrets for the binary.
if ((MAJOR == 3)); then AUTH='{ airflow_token: { secret: airflow } }'; else AUTH='{ basic: { secret: airflow } }'; fi
# Buckets of the generated events (5e, 5g): each has its own route.
LONG_BUCKET=bucket-trigger-e2e-long
COLLISION_BUCKET=bucket-trigger-e2e-collision
COLLISION_TIME=2026-11-25T09:00:00.000Z       # the eventTime all ten records share
ASSET_BUCKET=bucket-trigger-e2e-asset
MISSING_BUCKET=bucket-trigger-e2e-no-asset
UNKNOWN_DAG_BUCKET=bucket-trigger-e2e-unknown-dag
UNKNOWN_DAG_ID=bucket_trigger_e2e_no_such_dag
WRONG_PASSWORD_BUCKET=bucket-trigger-e2e-wrong-password
WRONG_SECRET=e2e/airflow-wrong-password
[[ $EVENT_BUCKET != "$LONG_BUCKET" && $EVENT_BUCKET != "$COLLISION_BUCKET" ]] \
  || die "$EVENT_FILE uses a bucket reserved for the generated events: $EVENT_BUCKET"
cat > "$WORK/config.yaml" <<EOF
routes:
  - name: e2e
    match: { bucket: "$EVENT_BUCKET" }
    target:
      airflow:
        base_url: "$BASE_URL"
        api: $API
        dag_id: $DAG_ID
        auth: $AUTH
  - name: long
    match: { bucket: "$LONG_BUCKET" }
    target:
      airflow:
        base_url: "$BASE_URL"
        api: $API
        dag_id: $DAG_ID
        auth: $AUTH
  - name: collision
    match: { bucket: "$COLLISION_BUCKET" }
    target:
      airflow:
        base_url: "$BASE_URL"
        api: $API
        dag_id: $DAG_ID
        logical_date: "{{ event_time }}"
        auth: $AUTH
  - name: unknown-dag
    match: { bucket: "$UNKNOWN_DAG_BUCKET" }
    target:
      airflow:
        base_url: "$BASE_URL"
        api: $API
        dag_id: $UNKNOWN_DAG_ID
        auth: $AUTH
  - name: wrong-password
    match: { bucket: "$WRONG_PASSWORD_BUCKET" }
    target:
      airflow:
        base_url: "$BASE_URL"
        api: $API
        dag_id: $DAG_ID
        auth: ${AUTH/secret: airflow/secret: $WRONG_SECRET}
  - name: asset
    match: { bucket: "$ASSET_BUCKET" }
    target:
      airflow_asset:
        base_url: "$BASE_URL"
        api: $API
        asset: { uri: "$ASSET_URI" }
        extra: { bucket: "{{ bucket }}", key: "{{ key }}", size: "{{ size }}", from: bucket-trigger }
        auth: $AUTH
  - name: no-asset
    match: { bucket: "$MISSING_BUCKET" }
    target:
      airflow_asset:
        base_url: "$BASE_URL"
        api: $API
        asset: { uri: "$ASSET_URI/undeclared" }
        auth: $AUTH
EOF
printf '{"airflow": {"username": "%s", "password": "%s"}, "%s": {"username": "%s", "password": "not-%s"}}\n' \
  "$ADMIN_USER" "$ADMIN_PASSWORD" "$WRONG_SECRET" "$ADMIN_USER" "$ADMIN_PASSWORD" > "$WORK/secrets.json"

invoke() {   # invoke NAME [extra args]: runs the binary on $EVENT_FILE, returns its exit code
  local name=$1; shift
  invoke_file "$name" "$EVENT_FILE" "$@"
}
invoke_file() {   # invoke_file NAME EVENT_FILE [extra args]: the same for another event file
  local name=$1 file=$2; shift 2
  local rc=0
  AWS_EC2_METADATA_DISABLED=true "$BUCKET_TRIGGER_BIN" invoke "$file" \
    --config "$WORK/config.yaml" --secrets-file "$WORK/secrets.json" "$@" \
    > "$WORK/$name.out" 2> "$WORK/$name.err" || rc=$?
  log "bucket-trigger invoke ($name) -> exit $rc; stdout:"
  cat "$WORK/$name.out" >&2
  if ((rc != 0)) || [[ -s $WORK/$name.err ]]; then
    log "stderr:"; tail -n 30 "$WORK/$name.err" >&2
  fi
  return "$rc"
}
count_runs() {   # number of DAG runs of $DAG_ID according to Airflow ("?" on error)
  local code
  code=$(api GET "/api/$API/dags/$DAG_ID/dagRuns?limit=100")
  if [[ $code == 200 ]]; then json 'd["total_entries"]' < "$WORK/resp.json"; else echo "?"; fi
}

# 5b. Dry run: must succeed and must not create a DAG run.
if invoke dry-run --dry-run; then pass dry-run "dry run exits 0"; else fail dry-run "dry run exits non-zero"; fi
n=$(count_runs)
if [[ $n == 0 ]]; then pass dry-run "dry run created no DAG run"; else fail dry-run "dry run: expected 0 DAG runs, Airflow has $n"; fi

# 5c. First invoke: exactly one DAG run, with the event's bucket and decoded key in its conf.
if invoke first; then pass conf "first invoke exits 0"; else fail conf "first invoke exits non-zero"; fi
n=$(count_runs)
if [[ $n == 1 ]]; then pass conf "exactly one DAG run after the first invoke"; else fail conf "expected 1 DAG run after the first invoke, Airflow has $n"; fi
RUN_ID=
if [[ $n != "?" && $n -ge 1 ]]; then
  RUN_ID=$(json 'd["dag_runs"][0]["dag_run_id"]' < "$WORK/resp.json")
  json 'json.dumps(d["dag_runs"][0]["conf"])' < "$WORK/resp.json" > "$WORK/conf.json"
  log "DAG run $RUN_ID, conf: $(cat "$WORK/conf.json")"
  if "$PYTHON" - "$WORK/conf.json" "$EVENT_BUCKET" "$EVENT_KEY_JSON" <<'EOF'
import json, sys
conf = json.load(open(sys.argv[1]))
want = {"bucket": sys.argv[2], "key": json.loads(sys.argv[3])}
got = {k: conf.get(k) for k in want}
if got != want:
    sys.exit(f"conf mismatch: want {want}, got {got}")
EOF
  then pass conf "conf.bucket and conf.key match the event"; else fail conf "conf.bucket/conf.key do not match the event"; fi
fi

# 5d. Same event again: already triggered (409 in Airflow) -> exit 0, still one run.
if invoke second; then pass duplicate "second invoke (same event) exits 0"; else fail duplicate "second invoke (same event) exits non-zero"; fi
n=$(count_runs)
if [[ $n == 1 ]]; then pass duplicate "still exactly one DAG run after the second invoke"; else fail duplicate "expected 1 DAG run after the second invoke, Airflow has $n"; fi

# Helpers for the generated events.
runs_json() {   # runs_json FILE: Airflow's list of the DAG's runs into FILE; fails on an API error
  local code
  code=$(api GET "/api/$API/dags/$DAG_ID/dagRuns?limit=100")
  [[ $code == 200 ]] || { log "GET dagRuns -> HTTP $code: $(cat "$WORK/resp.json")"; return 1; }
  cp "$WORK/resp.json" "$1"
}
wait_run() {   # wait_run RUN_ID: polls (bounded) until the run ends; prints its last state
  local run_path code deadline state=unknown
  run_path="/api/$API/dags/$DAG_ID/dagRuns/$("$PYTHON" -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1")"
  log "waiting up to ${RUN_TIMEOUT}s for DAG run $1 to finish"
  deadline=$((SECONDS + RUN_TIMEOUT))
  while ((SECONDS < deadline)); do
    code=$(api GET "$run_path")
    [[ $code == 200 ]] && state=$(json 'd["state"]' < "$WORK/resp.json")
    [[ $state == success || $state == failed ]] && break
    sleep 3
  done
  log "DAG run state: $state"
  echo "$state"
}
s3_event() {   # s3_event FILE BUCKET EVENT_TIME KEY... : an S3 notification, one record per key, keys URL-encoded as S3 does
  "$PYTHON" - "$@" <<'EOF'
import json, sys, urllib.parse
path, bucket, time, *keys = sys.argv[1:]
records = [{
    "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "eu-west-1",
    "eventTime": time, "eventName": "ObjectCreated:Put",
    "s3": {"s3SchemaVersion": "1.0", "configurationId": "bucket-trigger",
           "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
           "object": {"key": urllib.parse.quote_plus(key, safe="/"), "size": 1024 + i,
                      "eTag": f"{i:032x}", "sequencer": f"0062E9A0B3C4D5E8{i:02X}"}},
} for i, key in enumerate(keys)]
json.dump({"Records": records}, open(path, "w"), indent=2)
EOF
}
T_NEW=$SECONDS   # for the log: time spent from here on (the generated events, and the wait for the runs)

# 5e. Long key: 300 characters, some of them not ASCII (conf.key must be exactly that key).
# The default run id (route, bucket, key, sequencer) is cut to 248 characters; 249 or 250 would be accepted by the API but the task could not create its
# log folder `run_id=<id>` (255 bytes at most), so the run would fail: we wait for success
# in 5f.
LONG_KEY=$("$PYTHON" -c '
head, tail = "incoming/long keys/données été – 報告 (", ").csv"
print((head + "0123456789" * 30)[: 300 - len(tail)] + tail)')
s3_event "$WORK/long.json" "$LONG_BUCKET" 2026-11-25T08:30:00.000Z "$LONG_KEY"
if invoke_file long "$WORK/long.json"; then pass conf "long key: invoke exits 0"; else fail conf "long key: invoke exits non-zero"; fi
LONG_RUN_ID=
if runs_json "$WORK/runs-long.json" && LONG_RUN_ID=$("$PYTHON" - "$WORK/runs-long.json" "$WORK/long.out" "$LONG_BUCKET" "$LONG_KEY" <<'EOF'
import json, sys
runs_file, report_file, bucket, key = sys.argv[1:]
assert len(key) == 300, len(key)
runs = [r for r in json.load(open(runs_file))["dag_runs"] if (r.get("conf") or {}).get("bucket") == bucket]
if len(runs) != 1:
    sys.exit(f"expected 1 DAG run for {bucket}, Airflow has {len(runs)}")
run = runs[0]
run_id = run["dag_run_id"]
print(run_id)
print(f"long key: Airflow's run id has {len(run_id)} characters: {run_id}", file=sys.stderr)
problems = []
if len(run_id) > 248:
    problems.append(f"run id of {len(run_id)} characters (> 248: its task cannot write run_id=<id>)")
if run["conf"].get("key") != key:
    problems.append(f"conf.key is not the decoded 300-character key: {run['conf'].get('key')!r}")
report = json.load(open(report_file))
ids = [o.get("run_id") for o in report["outcomes"] if o["status"] == "triggered"]
if ids != [run_id]:
    problems.append(f"the report's triggered run ids {ids} are not Airflow's [{run_id}]")
sys.exit("; ".join(problems) or None)
EOF
); then
  pass conf "long key: one DAG run, run id of ${#LONG_RUN_ID} characters (<= 248), conf.key is the decoded key"
else
  fail conf "long key: run id, conf or report wrong (see above)"
fi

# 5f. The runs are real: wait (bounded) for the first run and the long key's run to finish.
# (Before 5g: on Airflow 2's SequentialExecutor the collision batch's run would queue ahead
# of the long key's, and this wait would include its task too.)
if [[ -n $RUN_ID ]]; then
  state=$(wait_run "$RUN_ID")
  if [[ $state == success ]]; then pass success "DAG run reached success"; else fail success "DAG run did not reach success (state: $state)"; fi
else
  fail success "no DAG run to wait for"
fi
if [[ -n $LONG_RUN_ID ]]; then
  state=$(wait_run "$LONG_RUN_ID")
  if [[ $state == success ]]; then
    pass success "long key: DAG run with a ${#LONG_RUN_ID}-character run id reached success"
  else
    fail success "long key: DAG run with a ${#LONG_RUN_ID}-character run id did not reach success (state: $state)"
  fi
else
  fail success "long key: no DAG run to wait for"
fi

# 5g. Logical-date collision: ten keys, one eventTime, logical_date "{{ event_time }}".
# Airflow answers 409 to nine of the ten POSTs; the binary GETs each run id, finds none,
# and reports a failure naming the conflict, not "already triggered".
collision_keys=()
for i in $(seq -f '%02g' 0 9); do collision_keys+=("incoming/batch/part-$i.csv"); done
s3_event "$WORK/collision.json" "$COLLISION_BUCKET" "$COLLISION_TIME" "${collision_keys[@]}"
rc=0; invoke_file collision "$WORK/collision.json" || rc=$?
if ((rc == 1)); then pass collision "collision: invoke exits 1 (some deliveries failed)"; else fail collision "collision: invoke exits $rc, expected 1"; fi

# What each collision check asserts of a report: check_report FILE TRIGGERED ALREADY FAILED;
# every failure must be the checked 409 of its own run id, naming the logical date.
check_report() {
  "$PYTHON" - "$@" <<'EOF'
import json, sys
path, *want = sys.argv[1:]
report = json.load(open(path))
summary = report["summary"]
want = dict(zip(["triggered", "already_triggered", "failed"], map(int, want)))
got = {k: summary.get(k) for k in want}
problems = [] if got == want else [f"summary {got}, expected {want}"]
for o in report["outcomes"]:
    if o["status"] != "failed":
        continue
    detail, run_id = o.get("detail", ""), o.get("run_id", "")
    if not ("Airflow answered 409" in detail and f"there is no run {run_id}:" in detail
            and "logical_date" in detail and o.get("http_status") == 409 and o.get("retryable") is False):
        problems.append(f"{o['key']}: not the checked 409 of its own run id naming logical_date: {o}")
sys.exit("; ".join(problems) or None)
EOF
}
if check_report "$WORK/collision.out" 1 0 9; then
  pass collision "collision: report counts 1 triggered, 0 already triggered, 9 failed, each failure a 409 naming its run id and logical_date"
else
  fail collision "collision: report counts or failure messages wrong (see above)"
fi
# Which record got the run (any of them may: the ten POSTs go out concurrently), and one
# that did not, as indexes into collision_keys; from the report, checked against Airflow below.
WINNER=- LOSER=-
read -r WINNER LOSER < <("$PYTHON" - "$WORK/collision.out" "${collision_keys[@]}" <<'EOF' || true
import json, sys
outcomes = json.load(open(sys.argv[1]))["outcomes"]
keys = sys.argv[2:]
winners = [keys.index(o["key"]) for o in outcomes if o["status"] == "triggered"]
losers = [keys.index(o["key"]) for o in outcomes if o["status"] == "failed"]
print(winners[0] if len(winners) == 1 else "-", losers[0] if losers else "-")
EOF
) || true
WINNER=${WINNER:--} LOSER=${LOSER:--}
collision_runs() {   # collision_runs WHEN: exactly one run for the batch and its logical date, the one reported triggered
  runs_json "$WORK/runs-collision.json" && "$PYTHON" - "$WORK/runs-collision.json" "$WORK/collision.out" \
    "$COLLISION_BUCKET" "$COLLISION_TIME" "$1" <<'EOF'
import json, sys
from datetime import datetime
runs_file, report_file, bucket, time, when = sys.argv[1:]
def instant(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
runs = json.load(open(runs_file))["dag_runs"]
batch = [r for r in runs if (r.get("conf") or {}).get("bucket") == bucket]
same_date = [r for r in runs if instant(r.get("logical_date")) == instant(time)]
print(f"collision ({when}): Airflow's runs for the batch: "
      f"{[(r['dag_run_id'], r.get('logical_date'), r['conf'].get('key')) for r in batch]}", file=sys.stderr)
problems = []
if len(batch) != 1:
    problems.append(f"{len(batch)} DAG runs for the batch, expected 1")
if len(same_date) != 1:
    problems.append(f"{len(same_date)} DAG runs with logical date {time}, expected 1")
triggered = [o for o in json.load(open(report_file))["outcomes"] if o["status"] == "triggered"]
if len(triggered) == 1 and len(batch) == 1:
    outcome, run = triggered[0], batch[0]
    if (run["dag_run_id"], run["conf"].get("key")) != (outcome.get("run_id"), outcome["key"]):
        problems.append(f"the run {run['dag_run_id']} ({run['conf'].get('key')}) is not the one the report "
                        f"says was triggered: {outcome.get('run_id')} ({outcome['key']})")
    if instant(run.get("logical_date")) != instant(time):
        problems.append(f"the run's logical date is {run.get('logical_date')}, expected {time}")
sys.exit("; ".join(problems) or None)
EOF
}
if collision_runs "after the batch"; then
  pass collision "collision: Airflow holds exactly one DAG run for the batch and its logical date, the one reported triggered"
else
  fail collision "collision: Airflow's DAG runs for the batch are wrong (see above)"
fi

# The record that got the run, alone: its run id exists -> already triggered, exit 0.
# One that did not, alone: still a conflict -> failed, exit 1. Neither adds a run.
# (The very records of the batch: same key, sequencer and eventTime, so the same run ids.)
resend() {   # resend NAME INDEX: collision.json's record INDEX alone, as $WORK/NAME.json
  "$PYTHON" - "$WORK/collision.json" "$2" "$WORK/$1.json" <<'EOF'
import json, sys
records = json.load(open(sys.argv[1]))["Records"]
json.dump({"Records": [records[int(sys.argv[2])]]}, open(sys.argv[3], "w"), indent=2)
EOF
  invoke_file "$1" "$WORK/$1.json"
}
if [[ $WINNER == - ]]; then
  fail collision "collision: the report has no single triggered record to re-send"
else
  rc=0; resend collision-winner "$WINNER" || rc=$?
  if ((rc == 0)) && check_report "$WORK/collision-winner.out" 0 1 0; then
    pass collision "collision: re-sending the triggered record (${collision_keys[$WINNER]}) alone reports it already triggered, exit 0"
  else
    fail collision "collision: re-sending the triggered record alone: exit $rc (expected 0), or not reported already triggered"
  fi
fi
if [[ $LOSER == - ]]; then
  fail collision "collision: the report has no failed record to re-send"
else
  rc=0; resend collision-loser "$LOSER" || rc=$?
  if ((rc == 1)) && check_report "$WORK/collision-loser.out" 0 0 1; then
    pass collision "collision: re-sending a refused record (${collision_keys[$LOSER]}) alone fails again with the conflict, exit 1"
  else
    fail collision "collision: re-sending a refused record alone: exit $rc (expected 1), or not the conflict failure"
  fi
fi
if collision_runs "after re-sending"; then
  pass collision "collision: still exactly one DAG run for the batch after re-sending"
else
  fail collision "collision: Airflow's DAG runs for the batch changed after re-sending (see above)"
fi

# 5h. A paused DAG: the run is created but waits, and the outcome says so (a warning read
# with GET /dags/{dag_id} after the trigger); unpaused again afterwards.
code=$(api PATCH "/api/$API/dags/$DAG_ID" '{"is_paused": true}')
if [[ $code != 200 ]]; then
  fail paused "paused DAG: could not pause $DAG_ID (HTTP $code): $(cat "$WORK/resp.json")"
else
  s3_event "$WORK/paused.json" "$LONG_BUCKET" 2026-11-25T10:00:00.000Z "paused/while-paused.csv"
  rc=0; invoke_file paused "$WORK/paused.json" || rc=$?
  warning=$(json 'd["outcomes"][0].get("warning", "")' < "$WORK/paused.out" 2>/dev/null || true)
  if ((rc == 0)) && [[ $warning == "DAG $DAG_ID is paused: "* ]]; then
    pass paused "paused DAG: triggered (exit 0) with the warning \"$warning\""
  else
    fail paused "paused DAG: exit $rc, warning \"$warning\" (expected one saying DAG $DAG_ID is paused)"
  fi
  code=$(api PATCH "/api/$API/dags/$DAG_ID" '{"is_paused": false}')
  [[ $code == 200 ]] || fail paused "paused DAG: could not unpause $DAG_ID (HTTP $code)"
fi

# 5i. A DAG Airflow does not have: a permanent failure (Airflow's 404) naming the DAG.
s3_event "$WORK/unknown-dag.json" "$UNKNOWN_DAG_BUCKET" 2026-11-25T10:30:00.000Z "incoming/unknown.csv"
rc=0; invoke_file unknown-dag "$WORK/unknown-dag.json" || rc=$?
detail=$(json 'd["outcomes"][0]["detail"] + " | retryable=" + str(d["outcomes"][0]["retryable"])' < "$WORK/unknown-dag.out" 2>/dev/null || true)
if ((rc == 1)) && [[ $detail == *"$UNKNOWN_DAG_ID"* && $detail == *"retryable=False" ]]; then
  pass unknown-dag "unknown DAG: fails for good (exit 1), naming the DAG: $detail"
else
  fail unknown-dag "unknown DAG: exit $rc (expected 1), detail \"$detail\" (expected it to name $UNKNOWN_DAG_ID, not retryable)"
fi

# 5j. A wrong password: a permanent failure naming the secret the credentials came from
# (Airflow 2: basic auth, answered 401 or 403; Airflow 3: the token exchange is refused).
s3_event "$WORK/wrong-password.json" "$WRONG_PASSWORD_BUCKET" 2026-11-25T10:40:00.000Z "incoming/wrong-password.csv"
rc=0; invoke_file wrong-password "$WORK/wrong-password.json" || rc=$?
detail=$(json 'd["outcomes"][0]["detail"] + " | retryable=" + str(d["outcomes"][0]["retryable"])' < "$WORK/wrong-password.out" 2>/dev/null || true)
if ((rc == 1)) && [[ $detail == *"\"$WRONG_SECRET\""* && $detail == *"retryable=False" ]]; then
  pass wrong-password "wrong password: fails for good (exit 1), naming the secret: $detail"
else
  fail wrong-password "wrong password: exit $rc (expected 1), detail \"$detail\" (expected it to name secret \"$WRONG_SECRET\", not retryable)"
fi
n=$(count_runs)
if [[ $n == "?" ]] || ! runs_json "$WORK/runs-after-errors.json" || [[ $(json "len([r for r in d['dag_runs'] if (r.get('conf') or {}).get('bucket') in ('$UNKNOWN_DAG_BUCKET', '$WRONG_PASSWORD_BUCKET')])" < "$WORK/runs-after-errors.json") != 0 ]]; then
  fail wrong-password "the refused deliveries (unknown DAG, wrong password) left DAG runs behind, or the runs could not be listed"
fi

log "5e-5j (the generated events, and waiting for the first and the long-key runs) took $((SECONDS - T_NEW))s"

# 6. Asset events: the asset-scheduled DAG runs on our event and consumes it.
T_ASSET=$SECONDS
if ((MAJOR == 3)); then
  EVENTS_PATH=/api/v2/assets/events EVENTS_FIELD=asset_events URI_FIELD=uri UPSTREAM=upstreamAssetEvents
else
  EVENTS_PATH=/api/v1/datasets/events EVENTS_FIELD=dataset_events URI_FIELD=dataset_uri UPSTREAM=upstreamDatasetEvents
fi
asset_events() {   # asset_events FILE: Airflow's events of $ASSET_URI into FILE (a JSON list)
  local code
  code=$(api GET "$EVENTS_PATH?limit=100")
  [[ $code == 200 ]] || { log "GET $EVENTS_PATH -> HTTP $code: $(cat "$WORK/resp.json")"; return 1; }
  json "json.dumps([e for e in d['$EVENTS_FIELD'] if e.get('$URI_FIELD') == '$ASSET_URI'])" < "$WORK/resp.json" > "$1"
}
ASSET_KEY="landing/2026-11-25/orders (1).csv"
s3_event "$WORK/asset.json" "$ASSET_BUCKET" 2026-11-25T11:00:00.000Z "$ASSET_KEY"
rc=0; invoke_file asset "$WORK/asset.json" || rc=$?
EVENT_ID=
if ((rc == 0)) && asset_events "$WORK/asset-events.json" && EVENT_ID=$("$PYTHON" - "$WORK/asset-events.json" "$WORK/asset.out" "$ASSET_BUCKET" "$ASSET_KEY" <<'EOF'
import json, sys
events_file, report_file, bucket, key = sys.argv[1:]
events = json.load(open(events_file))
outcome = json.load(open(report_file))["outcomes"][0]
problems = []
if len(events) != 1:
    problems.append(f"expected 1 event of the asset, Airflow has {len(events)}: {events}")
else:
    event = events[0]
    want = {"bucket": bucket, "key": key, "size": 1024, "from": "bucket-trigger"}
    got = {k: (event.get("extra") or {}).get(k) for k in want}
    if got != want:
        problems.append(f"the event's extra {event.get('extra')} does not carry {want}")
    if (outcome["status"], outcome.get("remote_id")) != ("triggered", str(event["id"])):
        problems.append(f"the report says {outcome['status']} with remote_id {outcome.get('remote_id')}, "
                        f"Airflow's event id is {event['id']}")
    print(event["id"])
    print(f"asset event {event['id']}: extra {event.get('extra')}", file=sys.stderr)
sys.exit("; ".join(problems) or None)
EOF
); then
  pass asset "asset: invoke exits 0; Airflow holds one event of $ASSET_URI whose extra carries bucket, key and size, and whose id is the report's remote_id"
else
  fail asset "asset: invoke exit $rc, or Airflow's asset events / the report are wrong (see above)"
fi

# The asset-scheduled DAG gets a run that consumed our event, and it reaches success.
ASSET_RUN=
deadline=$((SECONDS + RUN_TIMEOUT))
while ((SECONDS < deadline)); do
  code=$(api GET "/api/$API/dags/$ASSET_DAG_ID/dagRuns?limit=100")
  if [[ $code == 200 ]]; then
    ASSET_RUN=$(json 'd["dag_runs"][0]["dag_run_id"] if d["dag_runs"] else ""' < "$WORK/resp.json")
    [[ -n $ASSET_RUN ]] && break
  fi
  sleep 2
done
if [[ -z $ASSET_RUN ]]; then
  fail asset "asset: $ASSET_DAG_ID got no run within ${RUN_TIMEOUT}s"
else
  log "asset: $ASSET_DAG_ID run $ASSET_RUN (run_type $(json 'd["dag_runs"][0]["run_type"]' < "$WORK/resp.json")) after $((SECONDS - T_ASSET))s"
  state=$(DAG_ID=$ASSET_DAG_ID wait_run "$ASSET_RUN")
  run_path="/api/$API/dags/$ASSET_DAG_ID/dagRuns/$("$PYTHON" -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$ASSET_RUN")"
  code=$(api GET "$run_path/$UPSTREAM")
  consumed="HTTP $code"
  [[ $code == 200 ]] && consumed=$(json "[e['id'] for e in d['$EVENTS_FIELD']]" < "$WORK/resp.json")
  if [[ $state == success && -n $EVENT_ID && $consumed == "[$EVENT_ID]" ]]; then
    pass asset "asset: $ASSET_DAG_ID ran on the event (run $ASSET_RUN consumed event $EVENT_ID) and reached success"
  else
    fail asset "asset: run $ASSET_RUN state $state, consumed events $consumed (expected success and [$EVENT_ID])"
  fi
fi

# An asset no DAG declares: a permanent failure naming it, exit 1.
s3_event "$WORK/no-asset.json" "$MISSING_BUCKET" 2026-11-25T11:05:00.000Z "landing/x.csv"
rc=0; invoke_file no-asset "$WORK/no-asset.json" || rc=$?
detail=$(json 'd["outcomes"][0]["detail"] + " | retryable=" + str(d["outcomes"][0]["retryable"])' < "$WORK/no-asset.out" 2>/dev/null || true)
if ((rc == 1)) && [[ $detail == *"$ASSET_URI/undeclared"* && $detail == *"retryable=False" ]]; then
  pass asset "asset: an undeclared asset fails for good (exit 1), naming it: $detail"
else
  fail asset "asset: undeclared asset: exit $rc (expected 1), detail \"$detail\""
fi

# The same notification again: a second event (no client id to deduplicate by).
rc=0; invoke_file asset-again "$WORK/asset.json" || rc=$?
n="?"
asset_events "$WORK/asset-events-2.json" && n=$(json 'len(d)' < "$WORK/asset-events-2.json")
if ((rc == 0)) && [[ $n == 2 ]]; then
  pass asset "asset: re-sending the same notification makes a second event (asset events are not idempotent)"
else
  fail asset "asset: re-sending: exit $rc, Airflow has $n events of the asset (expected 2)"
fi
log "6 (asset events) took $((SECONDS - T_ASSET))s"

# 7. Amazon MWAA by IAM, through a stand-in for the MWAA API that checks SigV4 with botocore.
# Airflow 2 environments: MWAA forwards to the stable API v1; Airflow 3 environments: to the
# REST API v2 (the stand-in then signs in to Airflow 3 with a token, as MWAA does).
T_MWAA=$SECONDS
TEST_PY=$ROOT/.venv/bin/python
[[ -x $TEST_PY ]] || die "7 (MWAA) needs the test venv .venv (scripts/test.sh makes it) for botocore"
setsid "$TEST_PY" tests/fixtures/mwaa_server.py --airflow "$BASE_URL" \
  --airflow-api "$API" --airflow-user "$ADMIN_USER" --airflow-password "$ADMIN_PASSWORD" \
  > "$WORK/mwaa.out" 2> "$LOG_DIR/mwaa.log" &
PIDS+=($!)
for _ in $(seq 1 100); do [[ -s $WORK/mwaa.out ]] && break; sleep 0.1; done
MWAA_URL="http://127.0.0.1:$(awk '/^LISTENING/ {print $2}' "$WORK/mwaa.out")"
cat > "$WORK/mwaa.yaml" <<EOF
routes:
  - name: mwaa
    target:
      mwaa:
        environment: e2e-env
        region: us-east-1
        api: $API
        dag_id: $DAG_ID
        run_id: "mwaa-{{ sequencer }}"
EOF
s3_event "$WORK/mwaa-event.json" bucket-trigger-e2e-mwaa 2026-11-25T12:00:00.000Z "mwaa/orders 1.csv"
mwaa_invoke() {   # mwaa_invoke NAME SECRET_KEY: the binary signs as AKIDMWAATEST with SECRET_KEY
  local rc=0
  env -u AWS_ENDPOINT_URL -u AWS_SESSION_TOKEN AWS_ENDPOINT_URL_MWAA="$MWAA_URL" \
    AWS_ACCESS_KEY_ID=AKIDMWAATEST AWS_SECRET_ACCESS_KEY="$2" AWS_REGION=us-east-1 \
    AWS_EC2_METADATA_DISABLED=true "$BUCKET_TRIGGER_BIN" invoke "$WORK/mwaa-event.json" \
    --config "$WORK/mwaa.yaml" > "$WORK/$1.out" 2> "$WORK/$1.err" || rc=$?
  log "bucket-trigger invoke ($1, MWAA) -> exit $rc"; cat "$WORK/$1.out" >&2
  return "$rc"
}
rc=0; mwaa_invoke mwaa-first mwaa-test-secret || rc=$?
status=$(json 'd["outcomes"][0]["status"]' < "$WORK/mwaa-first.out" 2>/dev/null || echo "?")
MWAA_RUN=$(json 'd["outcomes"][0]["run_id"]' < "$WORK/mwaa-first.out" 2>/dev/null || echo "?")
code=$(api GET "/api/$API/dags/$DAG_ID/dagRuns/$MWAA_RUN")
key=$(json 'd["conf"]["key"]' < "$WORK/resp.json" 2>/dev/null || echo "?")
if ((rc == 0)) && [[ $status == triggered && $code == 200 && $key == "mwaa/orders 1.csv" ]]; then
  pass mwaa "mwaa: InvokeRestApi (SigV4 checked by botocore) created run $MWAA_RUN with the object in its conf"
else
  fail mwaa "mwaa: exit $rc, status $status, Airflow GET run $MWAA_RUN -> $code, conf.key \"$key\""
fi
rc=0; mwaa_invoke mwaa-again mwaa-test-secret || rc=$?
status=$(json 'd["outcomes"][0]["status"]' < "$WORK/mwaa-again.out" 2>/dev/null || echo "?")
if ((rc == 0)) && [[ $status == already_triggered ]]; then
  pass mwaa "mwaa: the same event again is already triggered (409 checked through InvokeRestApi)"
else
  fail mwaa "mwaa: re-sent: exit $rc, status $status (expected already_triggered)"
fi
rc=0; mwaa_invoke mwaa-denied not-the-secret || rc=$?
detail=$(json 'd["outcomes"][0]["detail"]' < "$WORK/mwaa-denied.out" 2>/dev/null || echo "?")
if ((rc == 1)) && [[ $detail == *"airflow:InvokeRestApi"* && $detail == *"role/e2e-env/"* ]]; then
  pass mwaa "mwaa: a signature botocore does not reproduce is refused, naming airflow:InvokeRestApi"
else
  fail mwaa "mwaa: wrong key: exit $rc, detail \"$detail\""
fi
if ((MAJOR == 3)); then
  # The default api (v1, Airflow 2's body, without logical_date) against this Airflow 3
  # environment: Airflow's 422 is a permanent failure that says to set `api: v2`.
  sed 's/^        api: v2$/        api: v1/' "$WORK/mwaa.yaml" > "$WORK/mwaa-v1.yaml"
  cp "$WORK/mwaa.yaml" "$WORK/mwaa-v2.yaml" && cp "$WORK/mwaa-v1.yaml" "$WORK/mwaa.yaml"
  s3_event "$WORK/mwaa-event.json" bucket-trigger-e2e-mwaa 2026-11-25T12:10:00.000Z "mwaa/v1 body.csv"
  rc=0; mwaa_invoke mwaa-v1-body mwaa-test-secret || rc=$?
  cp "$WORK/mwaa-v2.yaml" "$WORK/mwaa.yaml"
  detail=$(json 'd["outcomes"][0]["detail"] + " | retryable=" + str(d["outcomes"][0]["retryable"])' < "$WORK/mwaa-v1-body.out" 2>/dev/null || echo "?")
  if ((rc == 1)) && [[ $detail == *'set `api: v2`'* && $detail == *"retryable=False" ]]; then
    pass mwaa "mwaa: an Airflow 2 body (api: v1) sent to this Airflow 3 environment fails for good, saying to set api: v2"
  else
    fail mwaa "mwaa: api v1 against Airflow 3: exit $rc (expected 1), detail \"$detail\""
  fi
fi
log "7 (MWAA) took $((SECONDS - T_MWAA))s"

# 8. Google Cloud Storage pushes through `bucket-trigger serve` (issue 11): a Pub/Sub push of a
# GCS finalize, signed as Google signs push tokens (the test key, its JWKS published by a local
# server standing in for Google's certs endpoint), is verified and starts one run whose conf
# carries the object (the generation as version_id), which reaches success; the same push
# again is already triggered (one run); a push without a token is refused (401), runs nothing.
T_GCS=$SECONDS
GCS_AUDIENCE=https://bucket-trigger-e2e.example/
GCS_PUSHER=gcs-push@e2e-project.iam.gserviceaccount.com
mkdir -p "$WORK/certs"
"$TEST_PY" tests/fixtures/push_tokens.py "$GCS_AUDIENCE" "$GCS_PUSHER" unused > "$WORK/push-tokens.json"
json 'json.dumps(d["jwks"])' < "$WORK/push-tokens.json" > "$WORK/certs/jwks.json"
GCS_TOKEN=$(json '[c["token"] for c in d["cases"] if c["name"] == "valid"][0]' < "$WORK/push-tokens.json")
setsid "$TEST_PY" -u -m http.server 0 --bind 127.0.0.1 --directory "$WORK/certs" \
  > "$WORK/certs.out" 2> "$LOG_DIR/certs.log" &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q 'port' "$WORK/certs.out" 2>/dev/null && break; sleep 0.1; done
CERTS_PORT=$(sed -n 's/.* port \([0-9]*\).*/\1/p' "$WORK/certs.out" | head -n 1)
cat > "$WORK/serve.yaml" <<EOF
settings:
  push:
    - path: /pubsub
      oidc:
        audience: "$GCS_AUDIENCE"
        service_account: "$GCS_PUSHER"
        certs_url: "http://127.0.0.1:$CERTS_PORT/jwks.json"
routes:
  - name: gcs
    match: { bucket: acme-landing-gcs }
    target:
      airflow:
        base_url: "$BASE_URL"
        api: $API
        dag_id: $DAG_ID
        auth: $AUTH
EOF
setsid "$BUCKET_TRIGGER_BIN" serve --port 0 --config "$WORK/serve.yaml" \
  --secrets-file "$WORK/secrets.json" > "$LOG_DIR/serve.log" 2>&1 &
SERVE_PID=$!
PIDS+=("$SERVE_PID")
for _ in $(seq 1 100); do grep -q 'listening on' "$LOG_DIR/serve.log" 2>/dev/null && break; sleep 0.1; done
SERVE_URL=$(sed -n 's/^bucket-trigger serve: listening on //p' "$LOG_DIR/serve.log" | head -n 1)
push() {   # push NAME [curl args]: POSTs events/gcs-pubsub-push.json to serve; prints the status
  local name=$1; shift
  curl -s -o "$WORK/$name.out" -w '%{http_code}' --max-time 60 -X POST "$SERVE_URL/pubsub" \
    -H 'content-type: application/json' "$@" --data-binary @events/gcs-pubsub-push.json || echo 000
}
code=$(push gcs-first -H "authorization: Bearer $GCS_TOKEN")
status=$(json 'd["outcomes"][0]["status"]' < "$WORK/gcs-first.out" 2>/dev/null || echo "?")
GCS_RUN=$(json 'd["outcomes"][0]["run_id"]' < "$WORK/gcs-first.out" 2>/dev/null || echo "?")
run_path="/api/$API/dags/$DAG_ID/dagRuns/$("$PYTHON" -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$GCS_RUN")"
got=$(api GET "$run_path")
conf="?"
[[ $got == 200 ]] && conf=$(json '"|".join(str(d["conf"].get(k)) for k in ("source", "bucket", "key", "version_id"))' < "$WORK/resp.json")
want="gcs|acme-landing-gcs|incoming/sales/Q4 report (2026).csv|1764057600123456"
if [[ $code == 200 && $status == triggered && $conf == "$want" ]]; then
  pass gcs-push "gcs push: serve verified the OIDC token and created run $GCS_RUN, conf $conf"
else
  fail gcs-push "gcs push: HTTP $code, status $status, run $GCS_RUN -> $got, conf $conf (expected 200, triggered, $want)"
fi
state=$(wait_run "$GCS_RUN")
if [[ $state == success ]]; then
  pass gcs-push "gcs push: run $GCS_RUN reached success"
else
  fail gcs-push "gcs push: run $GCS_RUN ended $state (expected success)"
fi
code=$(push gcs-again -H "authorization: Bearer $GCS_TOKEN")
status=$(json 'd["outcomes"][0]["status"]' < "$WORK/gcs-again.out" 2>/dev/null || echo "?")
again_run=$(json 'd["outcomes"][0]["run_id"]' < "$WORK/gcs-again.out" 2>/dev/null || echo "?")
if [[ $code == 200 && $status == already_triggered && $again_run == "$GCS_RUN" ]]; then
  pass gcs-push "gcs push: the same push again is acknowledged as already triggered (run $GCS_RUN)"
else
  fail gcs-push "gcs push: again: HTTP $code, status $status, run $again_run"
fi
before=$(count_runs)
code=$(push gcs-unsigned)
after=$(count_runs)
if [[ $code == 401 && $before == "$after" ]]; then
  pass gcs-push "gcs push: a push without a token is refused (401) and runs nothing ($after runs)"
else
  fail gcs-push "gcs push: unsigned: HTTP $code, runs $before -> $after (expected 401, unchanged)"
fi
if grep -qF "$GCS_TOKEN" "$LOG_DIR/serve.log"; then
  fail gcs-push "gcs push: serve logged the push token"
fi
kill -TERM "$SERVE_PID" 2>/dev/null || true
log "8 (GCS push through serve) took $((SECONDS - T_GCS))s"

echo "e2e-airflow $INSTALLED_VERSION: $PASSED passed, $FAILED failed"
((FAILED == 0))
