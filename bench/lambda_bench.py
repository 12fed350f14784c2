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
         file (no AWS SDK), settings.prewarm, SSL_CERT_FILE set (no CA-directory scan), settings.tls_roots:
         system, and the floor with reqwest's default (system) roots.
  warm   per-invocation duration (the emulator sends the event -> the function's response has
         arrived) for 1 and 10 records (events/s3-put.json, and 10 records generated from it),
         against the stand-in with 0 ms and 50 ms added latency per request; bucket-trigger,
         floor, hello (an echo: the runtime alone) and (--compare-log-level, default warn) a
         second bucket-trigger with a quieter log level invoked in rotation (so load from
         elsewhere hits all alike), --rounds rounds; plus CPU time per invocation (user + sys
         from /proc/<pid>/stat).
  rss    VmHWM (peak RSS) from /proc/<pid>/status: a fresh bucket-trigger after a cold start and
         --rss-invocations 10-record invocations; also after the warm run, and hello / floor.

Budgets (PASS/MISS in the table): init <= 2x hello; warm overhead above the floor <= 0.5 ms
per 10-record invocation; 10 records at 50 ms upstream <= 60 ms; peak RSS <= 25 MB.

Conditions closer to Lambda's (issue 14):

  --cpu-share P     every function process runs in its own cgroup v1 `cpu` group with
                    cfs_quota = P % x --cpu-period-ms (default 20 ms), joined before exec (a
                    128 MB function gets about 7.2 % of a vCPU); moto, the stand-in, the TLS
                    proxy and the Runtime API emulator run free. Default 5 cold starts.
  --route alteryx   bucket-trigger's route is an Alteryx Gallery v1 workflow: the first
                    invocation fetches the OAuth 1.0a consumer key/secret from moto and sends
                    one signed POST .../api/v1/workflows/{appId}/jobs/ (the stand-in checks the
                    signature and answers {"id": "job-1", "status": "Queued"}).
  --tls             the stand-in and moto (through a TLS-terminating proxy) over HTTPS, with a
                    throwaway CA made at run time (settings.ca_bundle + SSL_CERT_FILE for
                    bucket-trigger, FLOOR_CA_FILE for the floor).

  Every cold start now also invokes hello and floor once, and reads VmHWM of each process just
  before it is stopped; the report ends with a per-process table (bucket-trigger, hello,
  floor): init, first invocation, cold total, warm 10 records, peak RSS.

Usage:
  python3 bench/lambda_bench.py --binary target/release/bucket-trigger \\
      --hello target/release/examples/hello --floor target/release/examples/floor \\
      [--moto .venv/bin/moto_server] [--json out.json] [--quick] [--cold-only] \\
      [--cpu-share 7.2 [--cpu-period-ms 20]] [--route alteryx] [--tls]
  python3 bench/lambda_bench.py report out.json [extra.json]   # markdown table from results
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import queue
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET_ID = "bench/airflow"
# --route alteryx: a Gallery API v1 workflow (OAuth 1.0a, consumer key and secret in moto).
ALTERYX_SECRET_ID = "bench/alteryx"
ALTERYX_KEY, ALTERYX_SECRET = "bench-consumer-key", "bench-consumer-secret"
ALTERYX_APP_ID = "5f1c0a8e2b3d4c5e6f708192"
# The paths the stand-in answers: Airflow's dagRuns (default route) and the Gallery v1 job creation.
AIRFLOW_PATH = "/api/v2/dags/load_sales/dagRuns"
GALLERY_JOBS_PATH = "/gallery/api/v1/workflows/%s/jobs/" % ALTERYX_APP_ID
# --cpu-share: cgroup v1 cpu controller (root can write it on this machine).
CGROUP_CPU = "/sys/fs/cgroup/cpu"
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
# Stand-in target: 200 for every POST, after `latency` seconds, concurrently. Airflow's
# dagRuns answer by default; on the Gallery v1 job-creation path a job, after checking the
# OAuth 1.0a signature when the request carries one (the floor's POSTs are unsigned: signing
# is bucket-trigger's work, not the floor's). With `tls` (an ssl.SSLContext) it serves HTTPS.


def percent_encode(value):
    """RFC 5849 section 3.6: RFC 3986 unreserved characters stay, all else is %XX (UTF-8)."""
    return urllib.parse.quote(value, safe="-._~")


def oauth1_valid(method, url, query, consumer_secret):
    """Checks an HMAC-SHA1, consumer-only OAuth 1.0a signature carried in the query string
    (Gallery's default placement). `url` is scheme://host:port/path, as the client saw it."""
    params = urllib.parse.parse_qsl(query, keep_blank_values=True)
    signature = [v for k, v in params if k == "oauth_signature"]
    if len(signature) != 1 or ("oauth_signature_method", "HMAC-SHA1") not in params:
        return False
    normalized = "&".join("%s=%s" % kv for kv in sorted(
        (percent_encode(k), percent_encode(v)) for k, v in params if k != "oauth_signature"))
    base = "&".join([method.upper(), percent_encode(url), percent_encode(normalized)])
    key = percent_encode(consumer_secret) + "&"  # no token secret
    digest = hmac.new(key.encode(), base.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(base64.b64encode(digest).decode(), signature[0])


class StandIn:
    def __init__(self, tls=None):
        self.latency = 0.0
        self.requests = 0
        self.connections = 0  # TCP (with tls: TLS) connections accepted: keep-alive check
        self.signed = 0  # Gallery POSTs with a valid OAuth 1.0a signature
        self.unsigned = 0  # Gallery POSTs without one (the floor)
        self.tls = tls is not None
        self.lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real Airflow behind a proxy
            # Headers and body are two writes: without TCP_NODELAY, Nagle + delayed ACK add 40 ms.
            disable_nagle_algorithm = True

            def setup(self):
                super().setup()
                with standin.lock:
                    standin.connections += 1

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length", 0)))
                if standin.latency:
                    time.sleep(standin.latency)
                path, _, query = self.path.partition("?")
                status, body = 200, b'{"dag_run_id": "bench", "state": "queued"}'
                if path == GALLERY_JOBS_PATH:
                    body = b'{"id": "job-1", "status": "Queued"}'
                    if "oauth_signature=" not in query:
                        kind = "unsigned"
                    elif oauth1_valid("POST", standin.url + path, query, ALTERYX_SECRET):
                        kind = "signed"
                    else:
                        kind = None
                        status, body = 401, b'{"message": "bench stand-in: bad OAuth 1.0a signature"}'
                    if kind:
                        with standin.lock:
                            setattr(standin, kind, getattr(standin, kind) + 1)
                elif path != AIRFLOW_PATH:
                    status, body = 404, b'{"detail": "bench stand-in: no such path"}'
                with standin.lock:
                    standin.requests += 1
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = Server(Handler)
        if tls is not None:
            # The handshake happens in the handler's thread on its first read, not in accept()
            # (which runs in the serving thread and would serialize handshakes).
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True,
                                                 do_handshake_on_connect=False)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.server.server_address[1])

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


class CpuQuota:
    """--cpu-share: a CPU quota for the function processes, with the cgroup v1 `cpu` controller.

    One parent group, lambda-bench-<pid>, holds a child group per function process (so a warm
    process idling in the rotation does not eat the share of the one being invoked, as each
    Lambda sandbox has its own share); each child gets cpu.cfs_period_us = the period and
    cpu.cfs_quota_us = share x period. The process joins its group between fork and exec, so
    its whole life, the dynamic loader included, runs under the quota. Only function processes
    are limited: moto, the stand-in, the TLS proxy and the Runtime API emulator run free, as
    remote services would."""

    def __init__(self, share_percent, period_ms):
        self.share = share_percent
        self.period_us = int(round(period_ms * 1000))
        self.quota_us = int(round(share_percent / 100.0 * self.period_us))
        if not 1000 <= self.period_us <= 1_000_000:
            raise SystemExit("--cpu-period-ms must be between 1 and 1000 (the kernel's limits)")
        if self.quota_us < 1000:
            raise SystemExit("--cpu-share %g%% of %g ms is a quota of %d us; the kernel's minimum is 1000 us: "
                             "use a longer --cpu-period-ms" % (share_percent, period_ms, self.quota_us))
        self.root = os.path.join(CGROUP_CPU, "lambda-bench-%d" % os.getpid())
        self.count = 0
        try:
            os.mkdir(self.root)
        except OSError as error:
            raise SystemExit(
                "--cpu-share needs a writable cgroup v1 cpu controller at %s (as root): mkdir %s failed: %s"
                % (CGROUP_CPU, self.root, error))

    def new_group(self, name):
        """A fresh child group with the quota; returns its directory."""
        self.count += 1
        path = os.path.join(self.root, "%s-%d" % (name, self.count))
        os.mkdir(path)
        # The period first: the quota is checked against it.
        for knob, value in (("cpu.cfs_period_us", self.period_us), ("cpu.cfs_quota_us", self.quota_us)):
            with open(os.path.join(path, knob), "w") as f:
                f.write(str(value))
        return path

    @staticmethod
    def stat(path):
        """The group's cpu.stat: nr_periods, nr_throttled, throttled_time (ns)."""
        with open(os.path.join(path, "cpu.stat")) as f:
            return {k: int(v) for k, v in (line.split() for line in f if line.strip())}

    @staticmethod
    def remove(path):
        """rmdir the group once its process has been reaped (bounded: 5 s)."""
        for _ in range(50):
            try:
                os.rmdir(path)
                return
            except FileNotFoundError:
                return
            except OSError:  # EBUSY while the exiting task is still listed
                time.sleep(0.1)
        print("cpu quota: could not remove %s" % path, file=sys.stderr)

    def close(self):
        if os.path.isdir(self.root):
            for child in os.listdir(self.root):
                if os.path.isdir(os.path.join(self.root, child)):
                    self.remove(os.path.join(self.root, child))
            self.remove(self.root)

    def describe(self):
        return "%g %% of %g ms (cfs quota %d us per period)" % (self.share, self.period_us / 1000.0, self.quota_us)


QUOTA = None  # the CpuQuota of --cpu-share, or None


class Function:
    """One function process under its own Runtime API emulator (and, with --cpu-share, in its
    own quota-limited cgroup)."""

    def __init__(self, name, binary, env, log_dir):
        self.name = name
        self.runtime = Runtime()
        self.log_path = os.path.join(log_dir, "%s-%d.log" % (name, id(self)))
        self.log = open(self.log_path, "wb")
        env = dict(env, AWS_LAMBDA_RUNTIME_API=self.runtime.address)
        self.cgroup = QUOTA.new_group(name) if QUOTA else None
        self.final_rss_mb = None  # VmHWM read just before the process is stopped
        self.cpu_stat = None  # the cgroup's cpu.stat, read at the same moment
        preexec = None
        if self.cgroup:
            procs = os.path.join(self.cgroup, "cgroup.procs").encode()

            def preexec():
                # Runs in the child between fork and exec: join the group, so everything the
                # binary does is under the quota. Only system calls here (the parent has threads).
                fd = os.open(procs, os.O_WRONLY)
                try:
                    os.write(fd, str(os.getpid()).encode())
                finally:
                    os.close(fd)
        self.before_spawn = time.perf_counter()
        self.proc = subprocess.Popen([binary], env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                     preexec_fn=preexec)
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
            # Peak RSS of the function process itself (getrusage of children would count the
            # harness's pre-exec fork too), read just before it is stopped.
            try:
                self.final_rss_mb = self.peak_rss_mb()
            except (OSError, KeyError, ValueError):
                pass
            self.proc.kill()
        if self.cgroup:
            try:
                self.cpu_stat = CpuQuota.stat(self.cgroup)
            except OSError:
                pass
        self.proc.wait(timeout=10)
        if self.cgroup:
            CpuQuota.remove(self.cgroup)
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

    def create_secrets(self, secrets):
        """Creates the secrets ({id: value}) with boto3 (moto's venv, plain HTTP) and times
        GetSecretValue of the first from Python."""
        script = r"""
import json, sys, time, statistics, boto3
url, secrets = sys.argv[1], json.loads(sys.argv[2])
c = boto3.client("secretsmanager", endpoint_url=url, region_name="us-east-1",
                 aws_access_key_id="bench", aws_secret_access_key="bench")
for sid, value in secrets.items():
    c.create_secret(Name=sid, SecretString=json.dumps(value))
sid = next(iter(secrets))
times = []
for _ in range(20):
    t = time.perf_counter(); c.get_secret_value(SecretId=sid); times.append((time.perf_counter() - t) * 1000)
print(json.dumps({"get_secret_value_ms": statistics.median(times)}))
"""
        out = subprocess.run(
            [self.python, "-c", script, self.url, json.dumps(secrets)],
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
# --tls: a throwaway CA, and HTTPS in front of the stand-in and moto.


def make_tls_files(python, work):
    """A fresh test CA and a server certificate for localhost / 127.0.0.1 signed by it, made
    with the `cryptography` package by tests/fixtures/tls_server.py's make_certificates (run
    with `python`, the .venv interpreter that has it). Returns (ca.pem, server.pem, server.key)."""
    paths = [os.path.join(work, name) for name in ("ca.pem", "server.pem", "server.key")]
    script = r"""
import sys
sys.path.insert(0, sys.argv[1])
from tls_server import make_certificates
for path, pem in zip(sys.argv[2:], make_certificates(["localhost", "127.0.0.1"])):
    with open(path, "wb") as f:
        f.write(pem)
"""
    subprocess.run([python, "-c", script, os.path.join(ROOT, "tests", "fixtures")] + paths,
                   check=True, timeout=60)
    return paths


def server_context(cert, key):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


class TlsProxy:
    """A TLS-terminating proxy on 127.0.0.1 (asyncio, its own thread) in front of a plain-HTTP
    server (moto): each client connection gets one upstream TCP connection and bytes are copied
    both ways, so keep-alive is as the client and moto make it. Counts connections (handshakes)."""

    def __init__(self, upstream_port, context):
        self.upstream_port = upstream_port
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve():
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(
                asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=context))
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        if not ready.wait(10):
            raise SystemExit("TLS proxy did not start")
        self.port = self.server.sockets[0].getsockname()[1]
        self.url = "https://127.0.0.1:%d" % self.port

    async def handle(self, reader, writer):
        self.connections += 1  # only the loop's thread writes it
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return

        async def pipe(source, sink):
            try:
                while True:
                    data = await source.read(65536)
                    if not data:
                        break
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, asyncio.CancelledError):
                pass  # the peer went away, or close() ends the connection
            finally:
                sink.close()  # buffered data is flushed first

        try:
            await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))
        except asyncio.CancelledError:
            pass  # close(): end quietly (a cancelled handler task is logged as an error)

    def close(self):
        async def shutdown():
            # Stop listening, end the connections still open (their pipes close both sides).
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


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


def bucket_trigger_config(target_url, settings="", route="airflow"):
    """The measured configuration: one route, Airflow (basic auth from moto) by default, or an
    Alteryx Gallery v1 workflow (OAuth 1.0a, consumer key and secret from moto)."""
    if route == "alteryx":
        return (
            "settings: { secrets_ttl_seconds: 3600%s }\n"
            "routes:\n"
            "  - name: sales-csv-alteryx\n"
            "    match: { bucket: acme-landing, prefix: incoming/, suffix: .csv }\n"
            "    target:\n"
            "      alteryx:\n"
            "        api: v1\n"
            "        base_url: %s/gallery/\n"
            "        workflow_id: %s\n"
            "        questions:\n"
            '          - { name: FilePath, value: "s3://{{ bucket }}/{{ key }}" }\n'
            '          - { name: FileName, value: "{{ key | basename }}" }\n'
            "        auth: { oauth1: { secret: %s } }\n" % (settings, target_url, ALTERYX_APP_ID, ALTERYX_SECRET_ID)
        )
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


def check_hello(answer, records):
    if len(answer.get("Records", [])) != records:
        raise RuntimeError("hello: unexpected answer %s" % json.dumps(answer)[:300])


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
    global QUOTA
    cleanup = []  # run in order at the end, whatever happens
    standin = proxy = None
    try:
        if args.cpu_share is not None:
            QUOTA = CpuQuota(args.cpu_share, args.cpu_period_ms)
            cleanup.append(QUOTA.close)
            results["cpu_quota"] = {"share_percent": args.cpu_share, "period_us": QUOTA.period_us,
                                    "quota_us": QUOTA.quota_us}
            print("cpu quota for the function processes: %s" % QUOTA.describe(), flush=True)
        moto = Moto(args.moto, work)
        cleanup.insert(0, moto.close)
        tls = ca_file = None
        if args.tls:
            # A throwaway CA; the stand-in serves HTTPS itself, moto is reached through a TLS proxy.
            ca_file, cert, key = make_tls_files(moto.python, work)
            tls = server_context(cert, key)
        standin = StandIn(tls)
        cleanup.insert(0, standin.close)
        moto_url = moto.url
        if tls:
            proxy = TlsProxy(moto.port, tls)
            cleanup.insert(0, proxy.close)
            moto_url = proxy.url
        results["tls"] = {"ca_file": ca_file, "moto_url": moto_url, "standin_url": standin.url} if tls else None
        secrets = {
            SECRET_ID: {"username": "trigger-bot", "password": "bench-password"},
            ALTERYX_SECRET_ID: {"ALTERYX_KEY": ALTERYX_KEY, "ALTERYX_SECRET": ALTERYX_SECRET},
        }
        moto_info = moto.create_secrets(secrets)  # over plain HTTP: setup, not measured
        results["moto_get_secret_value_ms_boto3"] = moto_info["get_secret_value_ms"]
        # settings.ca_bundle: bucket-trigger's HTTP client trusts the test CA (on top of its
        # bundled roots); SSL_CERT_FILE: the AWS SDK's client (rustls-native-certs) reads it.
        ca_setting = ", ca_bundle: %s" % json.dumps(ca_file) if tls else ""
        ours_env = base_env({
            "HOME": home,
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_EC2_METADATA_DISABLED": "true",
            "BUCKET_TRIGGER_CONFIG": bucket_trigger_config(standin.url, ca_setting, args.route),
        })
        if tls:
            ours_env["SSL_CERT_FILE"] = ca_file
        if args.log_level:
            ours_env["AWS_LAMBDA_LOG_LEVEL"] = args.log_level
        # The floor POSTs (unsigned) to the path bucket-trigger's route POSTs to.
        target_path = GALLERY_JOBS_PATH if args.route == "alteryx" else AIRFLOW_PATH
        floor_env = base_env({"HOME": home, "FLOOR_TARGET_URL": standin.url + target_path})
        if tls:
            floor_env.update(FLOOR_CA_FILE=ca_file, SSL_CERT_FILE=ca_file)
        hello_env = base_env({"HOME": home})

        # --- cold: alternate ours / hello / floor, fresh processes.
        print("cold: %d runs each of bucket-trigger, hello, floor (alternated)" % args.cold_runs, flush=True)
        # Diagnostic variants, to see where init and the first invocation go:
        #   ours_secretsfile   secrets from a file: no AWS SDK at all
        #   ours_prewarm       BUCKET_TRIGGER_PREWARM=1 (settings.prewarm)
        #   ours_certfile      SSL_CERT_FILE = the CA bundle: rustls-native-certs (the AWS SDK's
        #                      trust store) reads that file only, no scan of the cert directory
        #   ours_systemroots   settings.tls_roots: system (the OS store for the HTTP client)
        #   floor_systemroots  the floor with reqwest's default roots (the OS store)
        # With --tls, SSL_CERT_FILE is the test CA already (ours_certfile is then skipped: the
        # system bundle would not let the SDK reach moto).
        bundle = next((p for p in CA_BUNDLES if os.path.exists(p)), None)
        secrets_file = os.path.join(work, "secrets.json")
        with open(secrets_file, "w") as f:
            json.dump(secrets, f)
        variants = [("ours", args.binary, ours_env), ("hello", args.hello, hello_env), ("floor", args.floor, floor_env)]
        if not args.no_variants:
            variants.append(("ours_secretsfile", args.binary, dict(ours_env, BUCKET_TRIGGER_SECRETS_FILE=secrets_file)))
            # settings.prewarm: the secret, the credentials and the target connection made ready
            # during init (the work moves from the first invocation into init).
            variants.append(("ours_prewarm", args.binary, dict(ours_env, BUCKET_TRIGGER_PREWARM="1")))
            if bundle and not tls:
                variants.append(("ours_certfile", args.binary, dict(ours_env, SSL_CERT_FILE=bundle)))
            system = bucket_trigger_config(standin.url, ", tls_roots: system" + ca_setting, args.route)
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
                    # The first invocation, 1 record: for bucket-trigger the secret fetch and
                    # one POST; for the floor one POST (new connection); hello echoes.
                    check = check_ours if name.startswith("ours") else check_floor if name.startswith("floor") else check_hello
                    d, answer = fn.invoke(one)
                    check(answer, 1)
                    cold.setdefault(name + "_first", []).append(d)
                    cold.setdefault(name + "_total", []).append(fn.init_ms + d)
                finally:
                    fn.close()
                if fn.final_rss_mb is not None:
                    cold.setdefault(name + "_rss", []).append(fn.final_rss_mb)
                if fn.cpu_stat:
                    cold.setdefault(name + "_throttled", []).append(fn.cpu_stat.get("nr_throttled", 0))
                    cold.setdefault(name + "_throttled_ms", []).append(fn.cpu_stat.get("throttled_time", 0) / 1e6)
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
        # hello too, for its warm 10-record figure (an echo: the runtime's own cost).
        hello = Function("hello-warm", args.hello, hello_env, work)
        cleanup.insert(0, hello.close)
        fns = [("ours", ours, check_ours), ("floor", floor, check_floor)]
        if quiet:
            fns.append(("ours_quiet", quiet, check_ours))
        fns.append(("hello", hello, check_hello))
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
            entry["hello"] = summary(w["hello"])
            results["warm"][key] = entry
        results["rss"]["ours_after_warm_mb"] = ours.peak_rss_mb()
        results["rss"]["floor_after_warm_mb"] = floor.peak_rss_mb()
        results["standin_requests"] = standin.requests
    finally:
        # Connections per request: with keep-alive, one handshake per process (and per
        # concurrent request of the first 10-record invocation), not one per request.
        if standin:
            results["standin_requests"] = standin.requests
            results["standin_connections"] = standin.connections
            results["standin_oauth1"] = {"signed": standin.signed, "unsigned": standin.unsigned}
        if proxy:
            results["moto_tls_connections"] = proxy.connections
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


def settings_heading(results):
    """The measured conditions, for the heading of the per-process table."""
    settings = results.get("settings", {})
    quota = results.get("cpu_quota")
    if quota:
        share = "CPU share %g %% (cfs quota %d µs per %g ms period)" % (
            quota["share_percent"], quota["quota_us"], quota["period_us"] / 1000.0)
    else:
        share = "no CPU limit"
    scheme = "https" if results.get("tls") else "http"
    return "%s, %s, route %s" % (share, scheme, settings.get("route", "airflow"))


def report_kinds(results):
    """Per process kind: init, first invocation, cold total (per-run sums), warm 10 records,
    peak RSS at the end of the cold run; medians over the cold runs."""
    cold_raw, warm = results.get("cold_raw", {}), results.get("warm", {}).get("10rec_0ms", {})
    median = lambda values: statistics.median(values) if values else float("nan")
    lines = []
    add = lines.append
    n = len(cold_raw.get("ours_init", []))
    add("### Per process: %s" % settings_heading(results))
    add("")
    add("Medians over %d cold starts per process%s." % (
        n, "; warm: median of %d invocations at 0 ms upstream" % warm["ours"]["n"] if "ours" in warm else ""))
    add("")
    throttled = any(k.endswith("_throttled") for k in cold_raw)
    add("| Process | Init (ms) | First invocation (ms) | Cold total (ms) | Warm, 10 records (ms) | Peak RSS (MB) |%s" % (
        " Throttled periods, cold |" if throttled else ""))
    add("|---|---|---|---|---|---|%s" % ("---|" if throttled else ""))
    kinds = [("ours", "bucket-trigger"), ("ours_prewarm", "bucket-trigger, prewarm"), ("hello", "hello"), ("floor", "floor")]
    for key, label in kinds:
        if key + "_init" not in cold_raw:
            continue
        row = [median(cold_raw.get(key + suffix, [])) for suffix in ("_init", "_first", "_total")]
        row.append(warm[key]["median"] if key in warm else float("nan"))
        row.append(median(cold_raw.get(key + "_rss", [])))
        cells = ["%.2f" % v if v == v else "—" for v in row[:4]] + ["%.1f" % row[4] if row[4] == row[4] else "—"]
        if throttled:
            cells.append("%g (%.0f ms)" % (median(cold_raw.get(key + "_throttled", [])),
                                           median(cold_raw.get(key + "_throttled_ms", []))))
        add("| %s | %s |" % (label, " | ".join(cells)))
    return "\n".join(lines)


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
        ("ours_prewarm", "settings.prewarm: secret, credentials, connection during init"),
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
    if "cold_raw" in results and "ours_total" in results["cold_raw"]:
        add("")
        add(report_kinds(results))
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
    parser.add_argument("--cold-runs", type=int, help="cold starts per variant (default 20; 5 with --cpu-share; 3 with --quick)")
    parser.add_argument("--cpu-share", type=float, metavar="PERCENT",
                        help="run the function processes under a CPU quota of PERCENT %% of one CPU (cgroup v1 cpu, root)")
    parser.add_argument("--cpu-period-ms", type=float, default=20.0, help="the quota's period (default 20 ms)")
    parser.add_argument("--route", choices=["airflow", "alteryx"], default="airflow",
                        help="bucket-trigger's measured route: Airflow (basic auth) or Alteryx Gallery v1 (OAuth 1.0a)")
    parser.add_argument("--tls", action="store_true",
                        help="the stand-in and moto over HTTPS (a throwaway test CA, trusted through settings.ca_bundle)")
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
        cold_runs = 3
        args.rounds, args.n0, args.n50, args.warmup, args.rss_invocations = 1, 20, 5, 2, 3
    else:
        cold_runs = 5 if args.cpu_share is not None else 20
    if args.cold_runs is None:
        args.cold_runs = cold_runs
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
