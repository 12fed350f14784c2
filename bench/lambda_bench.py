#!/usr/bin/env python3
"""Whole-process benchmarks of the bucket-trigger Lambda binary, under a minimal Lambda Runtime
API emulator (the documented HTTP interface, served on 127.0.0.1), with baselines measured in
the same run:

  hello   bench/hello.rs, the smallest lambda_runtime function (init baseline)
  floor   bench/floor.rs, the same POSTs from a bare reqwest client (warm baseline)

Measured (all servers on 127.0.0.1; every loop bounded in count and time):

  cold   init = exec of the process -> its first GET /2018-06-01/runtime/invocation/next,
         for bucket-trigger, hello and floor, alternated, --cold-runs times each; and the first
         invocation of bucket-trigger (1 record): the basic-auth secret fetched from a moto
         Secrets Manager, then the POST to a stand-in Airflow (a ThreadingHTTPServer, 200).
         Diagnostic variants in the same rotation (--no-variants skips them): secrets from a
         file (no AWS SDK), SSL_CERT_FILE set (no CA-directory scan), settings.tls_roots:
         system, and the floor with reqwest's default (system) roots.
  warm   per-invocation duration (the emulator sends the event -> the function's response has
         arrived) for 1 and 10 records (events/s3-put.json, and 10 records generated from it),
         against the stand-in with 0 ms and 50 ms added latency per request; bucket-trigger,
         floor and (--compare-log-level, default warn) a second bucket-trigger with a quieter
         log level invoked in rotation (so load from elsewhere hits all alike), --rounds
         rounds; plus CPU time per invocation (user + sys from /proc/<pid>/stat).
  rss    VmHWM (peak RSS) from /proc/<pid>/status: a fresh bucket-trigger after a cold start and
         --rss-invocations 10-record invocations; also after the warm run, and hello / floor.

Budgets (PASS/MISS in the table): init <= 2x hello; warm overhead above the floor <= 0.5 ms
per 10-record invocation; 10 records at 50 ms upstream <= 60 ms; peak RSS <= 25 MB.

Usage:
  python3 bench/lambda_bench.py --binary target/release/bucket-trigger \\
      --hello target/release/examples/hello --floor target/release/examples/floor \\
      [--moto .venv/bin/moto_server] [--json out.json] [--quick] [--cold-only]
  python3 bench/lambda_bench.py report out.json [extra.json]   # markdown table from results
"""
import argparse
import json
import os
import queue
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET_ID = "bench/airflow"
# Where openssl-probe (used by rustls-native-certs) looks for a CA bundle, in its order.
CA_BUNDLES = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/ssl/cert.pem",
]
DEADLINE = None  # time.monotonic() limit for the whole run


def check_deadline():
    if DEADLINE is not None and time.monotonic() > DEADLINE:
        raise SystemExit("lambda_bench: --max-seconds exceeded; stopping")


class Server(ThreadingHTTPServer):
    """ThreadingHTTPServer on 127.0.0.1 that does not print a traceback when a killed function
    process drops its connection."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, handler):
        super().__init__(("127.0.0.1", 0), handler)

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


# ---------------------------------------------------------------------------------------------
# Stand-in target (Airflow): 200 for every POST, after `latency` seconds, concurrently.


class StandIn:
    def __init__(self):
        self.latency = 0.0
        self.requests = 0
        self.lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real Airflow behind a proxy
            # Headers and body are two writes: without TCP_NODELAY, Nagle + delayed ACK add 40 ms.
            disable_nagle_algorithm = True

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length", 0)))
                if standin.latency:
                    time.sleep(standin.latency)
                with standin.lock:
                    standin.requests += 1
                body = b'{"dag_run_id": "bench", "state": "queued"}'
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = Server(Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server.server_address[1]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------------------------
# Lambda Runtime API emulator: one per function process.


class Runtime:
    def __init__(self):
        self.pending = queue.Queue()
        self.results = {}
        self.cond = threading.Condition()
        self.first_next = None
        self.init_error = None
        self.closed = False
        self.counter = 0
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # see StandIn

            def do_GET(self):
                if not self.path.endswith("/runtime/invocation/next"):
                    self.send_error(404)
                    return
                now = time.perf_counter()
                with runtime.cond:
                    if runtime.first_next is None:
                        runtime.first_next = now
                        runtime.cond.notify_all()
                item = None
                for _ in range(1200):  # bounded: 10 minutes of 0.5 s waits
                    if runtime.closed:
                        break
                    try:
                        item = runtime.pending.get(timeout=0.5)
                        break
                    except queue.Empty:
                        pass
                if item is None:
                    self.close_connection = True  # shut down: the process is being killed
                    return
                request_id, body = item
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.send_header("lambda-runtime-aws-request-id", request_id)
                self.send_header("lambda-runtime-deadline-ms", str(int(time.time() * 1000) + 60_000))
                self.send_header(
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:bench",
                )
                self.send_header("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000")
                # Stored before the write: the answer can arrive before this thread runs again.
                with runtime.cond:
                    runtime.results[request_id]["sent"] = time.perf_counter()
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                data = self.rfile.read(int(self.headers.get("content-length", 0)))
                done = time.perf_counter()
                self.send_response(202)
                self.send_header("content-length", "0")
                self.end_headers()
                parts = self.path.strip("/").split("/")
                with runtime.cond:
                    if self.path.endswith("/init/error"):
                        runtime.init_error = data
                    elif len(parts) >= 5 and parts[-3] == "invocation" and parts[-2] in runtime.results:
                        runtime.results[parts[-2]].update(done=done, kind=parts[-1], data=data)
                    runtime.cond.notify_all()

            def log_message(self, *args):
                pass

        self.server = Server(Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self):
        return "127.0.0.1:%d" % self.server.server_address[1]

    def wait_init(self, proc, timeout=30.0):
        end = time.monotonic() + timeout
        with self.cond:
            while self.first_next is None and self.init_error is None:
                if proc.poll() is not None:
                    raise RuntimeError("process exited with %s before its first /next" % proc.returncode)
                left = end - time.monotonic()
                if left <= 0:
                    raise RuntimeError("no /next within %.0f s" % timeout)
                self.cond.wait(min(left, 0.1))
            if self.init_error is not None:
                raise RuntimeError("init error: %s" % self.init_error[:500])
            return self.first_next

    def invoke(self, body, timeout=30.0):
        """Queues one invocation; returns (duration ms, kind, answer bytes)."""
        check_deadline()
        with self.cond:
            self.counter += 1
            request_id = "bench-%d" % self.counter
            self.results[request_id] = {}
        self.pending.put((request_id, body))
        end = time.monotonic() + timeout
        with self.cond:
            while "done" not in self.results[request_id]:
                left = end - time.monotonic()
                if left <= 0:
                    raise RuntimeError("invocation %s: no answer within %.0f s" % (request_id, timeout))
                self.cond.wait(left)
            result = self.results.pop(request_id)
        return (result["done"] - result["sent"]) * 1000.0, result["kind"], result["data"]

    def close(self):
        self.closed = True
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------------------------------------
# Function processes.


def base_env(extra):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    env.update(extra)
    return env


class Function:
    """One function process under its own Runtime API emulator."""

    def __init__(self, name, binary, env, log_dir):
        self.name = name
        self.runtime = Runtime()
        self.log_path = os.path.join(log_dir, "%s-%d.log" % (name, id(self)))
        self.log = open(self.log_path, "wb")
        env = dict(env, AWS_LAMBDA_RUNTIME_API=self.runtime.address)
        self.before_spawn = time.perf_counter()
        self.proc = subprocess.Popen([binary], env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        # Popen returns once the child has exec'd (its error pipe closed on exec): the clock
        # starts here, so Python's fork/exec cost is not counted as the function's init.
        self.spawned = time.perf_counter()
        self.init_ms = None

    def wait_init(self):
        first = self.runtime.wait_init(self.proc)
        self.init_ms = (first - self.spawned) * 1000.0
        self.spawn_ms = (self.spawned - self.before_spawn) * 1000.0
        return self.init_ms

    def invoke(self, body):
        duration, kind, data = self.runtime.invoke(body)
        if kind != "response":
            raise RuntimeError("%s: invocation failed (%s): %s\nlog: %s" % (self.name, kind, data[:800], self.tail()))
        return duration, json.loads(data)

    def status(self):
        fields = {}
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS", "Threads"):
                    fields[key] = value.strip()
        return fields

    def cpu_ms(self):
        """User + system CPU time of the process so far (clock ticks, usually 10 ms)."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self):
        kb = int(self.status()["VmHWM"].split()[0])
        return kb / 1024.0

    def tail(self):
        self.log.flush()
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-2000:].decode(errors="replace")
        except OSError:
            return ""

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self.runtime.close()
        self.log.close()


# ---------------------------------------------------------------------------------------------
# moto (Secrets Manager emulator).


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moto:
    def __init__(self, moto_server, log_dir):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log = open(os.path.join(log_dir, "moto.log"), "wb")
        self.proc = subprocess.Popen(
            [moto_server, "-H", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
        )
        for _ in range(300):  # bounded: 30 s
            if self.proc.poll() is not None:
                raise SystemExit("moto_server exited: see %s" % self.log.name)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit("moto_server did not listen within 30 s")
        self.python = os.path.join(os.path.dirname(moto_server), "python")

    def create_secret(self, secret_id, value):
        """Creates the secret with boto3 (moto's venv) and times GetSecretValue from Python."""
        script = r"""
import json, sys, time, statistics, boto3
url, sid, value = sys.argv[1], sys.argv[2], sys.argv[3]
c = boto3.client("secretsmanager", endpoint_url=url, region_name="us-east-1",
                 aws_access_key_id="bench", aws_secret_access_key="bench")
c.create_secret(Name=sid, SecretString=value)
times = []
for _ in range(20):
    t = time.perf_counter(); c.get_secret_value(SecretId=sid); times.append((time.perf_counter() - t) * 1000)
print(json.dumps({"get_secret_value_ms": statistics.median(times)}))
"""
        out = subprocess.run(
            [self.python, "-c", script, self.url, secret_id, json.dumps(value)],
            check=True, capture_output=True, text=True, timeout=120,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------------------------------------
# Events and statistics.


def ten_records(one):
    value = json.loads(one)
    record = value["Records"][0]
    records = []
    for i in range(10):
        r = json.loads(json.dumps(record))
        r["s3"]["object"]["key"] = "incoming/sales/part-%04d.csv" % i
        r["s3"]["object"]["sequencer"] = "0062E9A0B3C4D5E6%02X" % i
        records.append(r)
    value["Records"] = records
    return json.dumps(value).encode()


def pct(values, p):
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(values):
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p90": pct(values, 90),
        "min": min(values),
        "max": max(values),
    }


def bucket_trigger_config(target_url, settings=""):
    return (
        "settings: { secrets_ttl_seconds: 3600%s }\n"
        "routes:\n"
        "  - name: sales-csv\n"
        "    match: { bucket: acme-landing, prefix: incoming/, suffix: .csv }\n"
        "    target:\n"
        "      airflow:\n"
        "        base_url: %s\n"
        "        api: v2\n"
        "        dag_id: load_sales\n"
        '        run_id: "s3__{{ key | slug }}__{{ sequencer }}"\n'
        '        conf: { bucket: "{{ bucket }}", key: "{{ key }}", uri: "s3://{{ bucket }}/{{ key }}", size: "{{ size }}" }\n'
        '        note: "Triggered by {{ event_name }} on s3://{{ bucket }}/{{ key }}"\n'
        "        auth: { basic: { secret: %s } }\n" % (settings, target_url, SECRET_ID)
    )


def check_ours(answer, records):
    triggered = answer.get("summary", {}).get("triggered")
    if triggered != records:
        raise RuntimeError("bucket-trigger triggered %s of %d: %s" % (triggered, records, json.dumps(answer)[:800]))


def check_floor(answer, records):
    if answer.get("sent") != records or any(s != 200 for s in answer.get("statuses", [])):
        raise RuntimeError("floor: unexpected answer %s" % answer)


# ---------------------------------------------------------------------------------------------
# The run.


def run(args):
    global DEADLINE
    DEADLINE = time.monotonic() + args.max_seconds
    if args.work_dir:
        os.makedirs(args.work_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="lambda-bench-", dir=args.work_dir or None)
    home = os.path.join(work, "home")
    os.makedirs(home)
    with open(args.event, "rb") as f:
        one = f.read()
    ten = ten_records(one)
    results = {"settings": vars(args).copy(), "logs": work}
    standin = StandIn()
    moto = Moto(args.moto, work)
    cleanup = [standin.close, moto.close]
    try:
        moto_info = moto.create_secret(SECRET_ID, {"username": "trigger-bot", "password": "bench-password"})
        results["moto_get_secret_value_ms_boto3"] = moto_info["get_secret_value_ms"]
        ours_env = base_env({
            "HOME": home,
            "AWS_ENDPOINT_URL": moto.url,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_EC2_METADATA_DISABLED": "true",
            "BUCKET_TRIGGER_CONFIG": bucket_trigger_config(standin.url),
        })
        if args.log_level:
            ours_env["AWS_LAMBDA_LOG_LEVEL"] = args.log_level
        floor_env = base_env({"HOME": home, "FLOOR_TARGET_URL": standin.url + "/api/v2/dags/load_sales/dagRuns"})
        hello_env = base_env({"HOME": home})

        # --- cold: alternate ours / hello / floor, fresh processes.
        print("cold: %d runs each of bucket-trigger, hello, floor (alternated)" % args.cold_runs, flush=True)
        # Diagnostic variants, to see where init and the first invocation go:
        #   ours_secretsfile   secrets from a file: no AWS SDK at all
        #   ours_certfile      SSL_CERT_FILE = the CA bundle: rustls-native-certs (the AWS SDK's
        #                      trust store) reads that file only, no scan of the cert directory
        #   ours_systemroots   settings.tls_roots: system (the OS store for the HTTP client)
        #   floor_systemroots  the floor with reqwest's default roots (the OS store)
        bundle = next((p for p in CA_BUNDLES if os.path.exists(p)), None)
        secrets_file = os.path.join(work, "secrets.json")
        with open(secrets_file, "w") as f:
            json.dump({SECRET_ID: {"username": "trigger-bot", "password": "bench-password"}}, f)
        variants = [("ours", args.binary, ours_env), ("hello", args.hello, hello_env), ("floor", args.floor, floor_env)]
        if not args.no_variants:
            variants.append(("ours_secretsfile", args.binary, dict(ours_env, BUCKET_TRIGGER_SECRETS_FILE=secrets_file)))
            if bundle:
                variants.append(("ours_certfile", args.binary, dict(ours_env, SSL_CERT_FILE=bundle)))
            system = bucket_trigger_config(standin.url, ", tls_roots: system")
            if subprocess.run([args.binary, "validate"], env=dict(ours_env, BUCKET_TRIGGER_CONFIG=system),
                              capture_output=True, timeout=30).returncode == 0:
                variants.append(("ours_systemroots", args.binary, dict(ours_env, BUCKET_TRIGGER_CONFIG=system)))
            variants.append(("floor_systemroots", args.floor, dict(floor_env, FLOOR_TLS_ROOTS="system")))
        results["ca_bundle"] = bundle
        cold = {"spawn": []}
        for i in range(args.cold_runs):
            order = variants if i % 2 == 0 else variants[::-1]
            for name, binary, env in order:
                fn = Function(name, binary, env, work)
                try:
                    cold.setdefault(name + "_init", []).append(fn.wait_init())
                    cold["spawn"].append(fn.spawn_ms)
                    if name.startswith("ours"):
                        d, answer = fn.invoke(one)
                        check_ours(answer, 1)
                        cold.setdefault(name + "_first", []).append(d)
                    elif name == "hello":
                        d, _ = fn.invoke(one)
                        cold.setdefault("hello_first", []).append(d)
                finally:
                    fn.close()
        results["cold"] = {k: summary(v) for k, v in cold.items() if v}
        results["cold_raw"] = cold

        # --- rss: a fresh bucket-trigger, first invocation = 10 records (incl. secret fetch).
        fn = Function("ours-rss", args.binary, ours_env, work)
        try:
            fn.wait_init()
            rss_after_init = fn.peak_rss_mb()
            for _ in range(args.rss_invocations):
                _, answer = fn.invoke(ten)
                check_ours(answer, 10)
            results["rss"] = {"ours_after_init_mb": rss_after_init, "ours_10rec_mb": fn.peak_rss_mb(),
                              "invocations": args.rss_invocations, "status": fn.status()}
        finally:
            fn.close()
        fn = Function("hello-rss", args.hello, hello_env, work)
        try:
            fn.wait_init()
            fn.invoke(one)
            results["rss"]["hello_mb"] = fn.peak_rss_mb()
        finally:
            fn.close()

        # --- warm: one process each, alternate invocations.
        if args.cold_only:
            return results
        ours = Function("ours-warm", args.binary, ours_env, work)
        cleanup.insert(0, ours.close)
        floor = Function("floor-warm", args.floor, floor_env, work)
        cleanup.insert(0, floor.close)
        # Optionally a second bucket-trigger with another log level (e.g. warn), to price the
        # per-delivery log lines; invoked in the same rotation.
        quiet = None
        if args.compare_log_level:
            quiet = Function("ours-warm-" + args.compare_log_level, args.binary,
                             dict(ours_env, AWS_LAMBDA_LOG_LEVEL=args.compare_log_level), work)
            cleanup.insert(0, quiet.close)
        fns = [("ours", ours, check_ours), ("floor", floor, check_floor)]
        if quiet:
            fns.append(("ours_quiet", quiet, check_ours))
        for _, fn, check in fns:
            fn.wait_init()
            _, answer = fn.invoke(one)  # the cold invocation: secret fetch, first connection
            check(answer, 1)
        settings = [(1, 0, args.n0), (10, 0, args.n0), (1, 50, args.n50), (10, 50, args.n50)]
        warm = {}
        for rnd in range(args.rounds):
            for records, latency_ms, n in settings:
                key = "%drec_%dms" % (records, latency_ms)
                print("warm round %d: %s x %d (%s in rotation)" % (rnd + 1, key, n, ", ".join(f[0] for f in fns)), flush=True)
                standin.latency = latency_ms / 1000.0
                body = one if records == 1 else ten
                for _ in range(args.warmup):
                    for _, fn, _ in fns:
                        fn.invoke(body)
                w = warm.setdefault(key, {"round_medians": []})
                samples = {name: [] for name, _, _ in fns}
                cpu_before = {name: fn.cpu_ms() for name, fn, _ in fns}
                for i in range(n):
                    k = i % len(fns)
                    for name, fn, check in fns[k:] + fns[:k]:  # rotate who goes first
                        d, answer = fn.invoke(body)
                        check(answer, records)
                        samples[name].append(d)
                for name, fn, _ in fns:
                    cpu = w.setdefault("cpu_" + name, [0.0, 0])
                    cpu[0] += fn.cpu_ms() - cpu_before[name]
                    cpu[1] += n
                for name, values in samples.items():
                    w.setdefault(name, []).extend(values)
                w.setdefault("diff", []).extend(a - b for a, b in zip(samples["ours"], samples["floor"]))
                w["round_medians"].append([statistics.median(samples["ours"]), statistics.median(samples["floor"])])
        results["warm"] = {}
        for key, w in warm.items():
            entry = {
                "ours": summary(w["ours"]),
                "floor": summary(w["floor"]),
                "paired_diff": summary(w["diff"]),
                "round_medians": w["round_medians"],
            }
            # CPU (user + system, all threads) per invocation, from /proc/<pid>/stat.
            entry["cpu_ms_per_invocation"] = {
                name[4:]: value[0] / value[1] for name, value in w.items() if name.startswith("cpu_")
            }
            if "ours_quiet" in w:
                entry["ours_quiet"] = summary(w["ours_quiet"])
                entry["quiet_log_level"] = args.compare_log_level
            results["warm"][key] = entry
        results["rss"]["ours_after_warm_mb"] = ours.peak_rss_mb()
        results["rss"]["floor_after_warm_mb"] = floor.peak_rss_mb()
        results["standin_requests"] = standin.requests
    finally:
        for close in cleanup:
            try:
                close()
            except Exception as error:  # keep cleaning up
                print("cleanup: %s" % error, file=sys.stderr)
    return results


# ---------------------------------------------------------------------------------------------
# Report.


BUDGETS = {
    "init_ratio": 2.0,  # init <= 2x hello
    "overhead_10rec_ms": 0.5,  # ours - floor, 10 records, per invocation
    "10rec_50ms_ms": 60.0,  # 10 records at 50 ms upstream
    "rss_mb": 25.0,
}


def verdict(ok):
    return "PASS" if ok else "MISS"


def report(results, extra=None):
    extra = extra or {}
    cold, warm, rss = results["cold"], results.get("warm", {}), results["rss"]
    nan = float("nan")
    lines = []
    add = lines.append
    add("| Measure | bucket-trigger | Baseline | Budget | Verdict |")
    add("|---|---|---|---|---|")
    oi, hi, fi = cold["ours_init"], cold["hello_init"], cold["floor_init"]
    ratio = oi["median"] / hi["median"]
    add("| Init: exec → first `/next` (median, p90; %d cold starts) | %.2f ms (p90 %.2f) | hello %.2f ms (p90 %.2f); floor %.2f ms | ≤ 2× hello | %s: %.1f× hello (+%.2f ms) |" % (
        oi["n"], oi["median"], oi["p90"], hi["median"], hi["p90"], fi["median"], verdict(ratio <= BUDGETS["init_ratio"]), ratio, oi["median"] - hi["median"]))
    labels = [
        ("ours_secretsfile", "secrets from a file (no AWS SDK)"),
        ("ours_certfile", "SSL_CERT_FILE=%s (SDK reads the bundle only)" % results.get("ca_bundle")),
        ("ours_systemroots", "settings.tls_roots: system"),
        ("floor_systemroots", "floor with reqwest's default (system) roots"),
    ]
    parts = []
    for key, label in labels:
        if key + "_init" in cold:
            first = cold.get(key + "_first")
            parts.append("%s: init %.2f%s" % (label, cold[key + "_init"]["median"],
                                              ", first %.2f" % first["median"] if first else ""))
    if parts:
        add("| Diagnostics (medians, ms; same cold starts) | %s | — | — | — |" % "; ".join(parts))
    of, hf = cold["ours_first"], cold.get("hello_first")
    add("| First invocation, 1 record: secret from moto Secrets Manager + POST (median, p90) | %.2f ms (p90 %.2f) | hello echo %.2f ms; moto GetSecretValue via boto3 %.2f ms | — | — |" % (
        of["median"], of["p90"], hf["median"] if hf else float("nan"), results.get("moto_get_secret_value_ms_boto3", float("nan"))))
    add("| Cold total (init + first invocation), median | %.2f ms | hello %.2f ms | — | — |" % (
        oi["median"] + of["median"], hi["median"] + (hf["median"] if hf else 0)))
    for key, label in [("1rec_0ms", "1 record, 0 ms upstream"), ("10rec_0ms", "10 records, 0 ms upstream"),
                       ("1rec_50ms", "1 record, 50 ms upstream"), ("10rec_50ms", "10 records, 50 ms upstream")]:
        if key not in warm:
            continue
        w = warm[key]
        o, f, d = w["ours"], w["floor"], w["paired_diff"]
        over = o["median"] - f["median"]
        budget, ok = "—", None
        if key == "10rec_0ms":
            budget, ok = "overhead ≤ 0.5 ms", over <= BUDGETS["overhead_10rec_ms"]
        elif key == "10rec_50ms":
            budget, ok = "≤ 60 ms; overhead ≤ 0.5 ms", o["median"] <= BUDGETS["10rec_50ms_ms"] and over <= BUDGETS["overhead_10rec_ms"]
        rounds = ", ".join("%.2f" % r[0] for r in w["round_medians"])
        frounds = ", ".join("%.2f" % r[1] for r in w["round_medians"])
        quiet = ""
        if "ours_quiet" in w:
            q = w["ours_quiet"]
            quiet = "; with log level %s: %.2f ms, overhead %+.2f ms" % (w["quiet_log_level"], q["median"], q["median"] - f["median"])
        cpu = w.get("cpu_ms_per_invocation")
        if cpu:
            quiet += "; CPU/invocation %.2f ms vs floor %.2f ms (%+.2f)" % (cpu["ours"], cpu["floor"], cpu["ours"] - cpu["floor"])
        add("| Warm, %s (n=%d; round medians %s / floor %s) | %.2f ms (p90 %.2f) | floor %.2f ms (p90 %.2f) | %s | %s overhead %+.2f ms (×%.2f; paired median %+.2f%s) |" % (
            label, o["n"], rounds, frounds, o["median"], o["p90"], f["median"], f["p90"], budget,
            (verdict(ok) + ":") if ok is not None else "", over, o["median"] / f["median"], d["median"], quiet))
    after_warm = rss.get("ours_after_warm_mb", nan)
    add("| Peak RSS (VmHWM), fresh process, cold start + %d × 10-record invocations | %.1f MB (%.1f MB after init; %.1f MB after the whole warm run) | hello %.1f MB; floor %.1f MB (after the warm run) | ≤ 25 MB | %s |" % (
        rss["invocations"], rss["ours_10rec_mb"], rss["ours_after_init_mb"], after_warm, rss["hello_mb"],
        rss.get("floor_after_warm_mb", nan), verdict(max(rss["ours_10rec_mb"], after_warm if after_warm == after_warm else 0) <= BUDGETS["rss_mb"])))
    if "binary_bytes" in extra:
        add("| Binary (stripped) `target/release/bucket-trigger` | %.2f MB (%d bytes) | hello %.2f MB; floor %.2f MB | — | — |" % (
            extra["binary_bytes"] / 1e6, extra["binary_bytes"], extra["hello_bytes"] / 1e6, extra["floor_bytes"] / 1e6))
        add("| Deployment zip (`bootstrap`) | %.2f MB (%d bytes) | hello %.2f MB | — | — |" % (
            extra["zip_bytes"] / 1e6, extra["zip_bytes"], extra["hello_zip_bytes"] / 1e6))
    if "duplicates" in extra:
        add("| Duplicate crates (`cargo tree -d -e normal`, linux-gnu) | %d: %s | — | — | — |" % (
            len(extra["duplicates"]), ", ".join(extra["duplicates"]) or "none"))
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["report"]:
        with open(argv[1]) as f:
            results = json.load(f)
        extra = {}
        if len(argv) > 2:
            with open(argv[2]) as f:
                extra = json.load(f)
        print(report(results, extra))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/bucket-trigger"))
    parser.add_argument("--hello", default=os.path.join(ROOT, "target/release/examples/hello"))
    parser.add_argument("--floor", default=os.path.join(ROOT, "target/release/examples/floor"))
    parser.add_argument("--moto", default=os.path.join(ROOT, ".venv/bin/moto_server"))
    parser.add_argument("--event", default=os.path.join(ROOT, "events/s3-put.json"))
    parser.add_argument("--cold-runs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="warm rounds (noise check)")
    parser.add_argument("--n0", type=int, default=200, help="invocations per round at 0 ms upstream")
    parser.add_argument("--n50", type=int, default=50, help="invocations per round at 50 ms upstream")
    parser.add_argument("--warmup", type=int, default=5, help="unrecorded invocations per setting")
    parser.add_argument("--rss-invocations", type=int, default=20)
    parser.add_argument("--compare-log-level", default="warn",
                        help="also run a bucket-trigger with this AWS_LAMBDA_LOG_LEVEL in the warm rotation ('' = off)")
    parser.add_argument("--log-level", default="", help="AWS_LAMBDA_LOG_LEVEL for bucket-trigger (default: unset = info)")
    parser.add_argument("--max-seconds", type=float, default=1200)
    parser.add_argument("--no-variants", action="store_true", help="skip the diagnostic init variants")
    parser.add_argument("--cold-only", action="store_true", help="cold starts and RSS only, no warm runs")
    parser.add_argument("--quick", action="store_true", help="few runs, to check the harness")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--work-dir", help="where the per-process logs go (default: a new directory in $TMPDIR)")
    args = parser.parse_args(argv)
    if args.quick:
        args.cold_runs, args.rounds, args.n0, args.n50, args.warmup, args.rss_invocations = 3, 1, 20, 5, 2, 3
    for path in (args.binary, args.hello, args.floor, args.moto):
        if not os.access(path, os.X_OK):
            raise SystemExit("not executable: %s" % path)
    results = run(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    print()
    print(report(results))


if __name__ == "__main__":
    main()
