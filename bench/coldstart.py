#!/usr/bin/env python3
"""Cold-start measurement: runs the bucket-trigger binary under a minimal Lambda Runtime API
(the documented HTTP interface, served here on 127.0.0.1) and times, per fresh process,

  init   process start -> first GET /2018-06-01/runtime/invocation/next
  first  that GET -> the POST of the first invocation's response (parse, route, sign, send)

The function sends to a stand-in Airflow on 127.0.0.1 (answers 200 at once), with secrets from
a local file, so the numbers are the function's own. Usage:

  python3 bench/coldstart.py target/release/bucket-trigger [--runs 20] [--event events/s3-put.json]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Airflow(BaseHTTPRequestHandler):
    """Stand-in Airflow: 200 for every dag run."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = b'{"state": "queued"}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Runtime:
    """One invocation's worth of the Lambda Runtime API."""

    def __init__(self, event):
        self.event = event
        self.first_next = None
        self.response_at = None
        self.response = None
        self.done = threading.Event()
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if not self.path.endswith("/runtime/invocation/next"):
                    self.send_error(404)
                    return
                if runtime.first_next is not None:
                    runtime.done.wait(30)  # the process is killed after the first invocation
                    self.send_error(410)
                    return
                runtime.first_next = time.perf_counter()
                body = runtime.event
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.send_header("lambda-runtime-aws-request-id", "bench-1")
                self.send_header("lambda-runtime-deadline-ms", str(int(time.time() * 1000) + 60_000))
                self.send_header("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:bench")
                self.send_header("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000")
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                data = self.rfile.read(int(self.headers.get("content-length", 0)))
                runtime.response_at = time.perf_counter()
                runtime.response = (self.path, data)
                self.send_response(202)
                self.send_header("content-length", "0")
                self.end_headers()
                runtime.done.set()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self):
        return "127.0.0.1:%d" % self.server.server_address[1]


def run_once(binary, event, env):
    runtime = Runtime(event)
    env = dict(env, AWS_LAMBDA_RUNTIME_API=runtime.address)
    started = time.perf_counter()
    proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if not runtime.done.wait(30):
            raise SystemExit("no response within 30 s: " + proc.stderr.read1(4096).decode(errors="replace"))
    finally:
        proc.kill()
        proc.wait()
        runtime.server.shutdown()
    path, data = runtime.response
    if not path.endswith("/response"):
        raise SystemExit("invocation failed: %s %s" % (path, data[:500]))
    answer = json.loads(data)
    return (runtime.first_next - started) * 1000, (runtime.response_at - runtime.first_next) * 1000, answer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--event", default=os.path.join(ROOT, "events", "s3-put.json"))
    args = parser.parse_args()

    airflow = ThreadingHTTPServer(("127.0.0.1", 0), Airflow)
    airflow.daemon_threads = True
    threading.Thread(target=airflow.serve_forever, daemon=True).start()
    work = tempfile.mkdtemp(prefix="coldstart-")
    secrets = os.path.join(work, "secrets.json")
    with open(secrets, "w") as f:
        json.dump({"airflow": {"username": "admin", "password": "bench"}}, f)
    config = (
        "routes:\n  - name: bench\n    target: { airflow: { base_url: 'http://127.0.0.1:%d', "
        "dag_id: bench, auth: { basic: { secret: airflow } } } }\n" % airflow.server_address[1]
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench",
        "AWS_REGION": "us-east-1",
        "RUST_LOG": "warn",
        "BUCKET_TRIGGER_CONFIG": config,
        "BUCKET_TRIGGER_SECRETS_FILE": secrets,
    }
    with open(args.event, "rb") as f:
        event = f.read()

    inits, firsts = [], []
    for _ in range(args.runs):
        init, first, answer = run_once(args.binary, event, env)
        if answer.get("summary", {}).get("triggered", 1) < 1:
            raise SystemExit("nothing triggered: %s" % answer)
        inits.append(init)
        firsts.append(first)
    def fmt(values):
        return "median %.2f ms, min %.2f, max %.2f" % (statistics.median(values), min(values), max(values))
    print("binary: %s (%d bytes)" % (args.binary, os.path.getsize(args.binary)))
    print("init  (start -> first next): %s over %d runs" % (fmt(inits), args.runs))
    print("first invocation (next -> response, incl. target POST): %s" % fmt(firsts))


if __name__ == "__main__":
    main()
