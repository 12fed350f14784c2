#!/usr/bin/env bash
# The benchmark suite in one command (issue 5): builds the release binary and the two baseline
# examples (hello: init floor; floor: the same POSTs from bare reqwest), runs
# bench/lambda_bench.py (cold start, first invocation with a moto Secrets Manager fetch, warm
# 1/10 records at 0/50 ms upstream against a stand-in Airflow, peak RSS; everything on
# 127.0.0.1), measures the binary and its `bootstrap` zip, counts duplicate crates, and prints
# a markdown table with PASS/MISS against the budgets.
#
#   bench/run.sh                    # everything but criterion (~5-10 min of builds on a fresh clone, ~3 min of runs)
#   bench/run.sh --with-criterion   # also `cargo bench --bench per_event` (per-event CPU costs; ~6 min build, 90 s run)
#   bench/run.sh --quick            # few iterations: checks the harness, numbers are rough
#   bench/run.sh --no-build         # reuse target/release binaries as they are (careful: a build of the
#                                   # binary together with examples/tests unifies the dev-dependencies'
#                                   # features into it: 13.49 MB instead of 12.94 MB was seen)
#   Extra arguments after `--` go to bench/lambda_bench.py (e.g. -- --cold-runs 40, -- --no-variants).
#
# Cold start as in Lambda (issue 14): these pass through to bench/lambda_bench.py.
#   bench/run.sh --cpu-share 7.2    # the function processes (bucket-trigger, hello, floor) under a CPU
#                                   # quota of 7.2 % of one CPU (cgroup v1 cpu, as root; a group per
#                                   # process, removed at the end); moto, the stand-in and the Runtime API
#                                   # emulator run free. 5 cold starts per variant by default (3 with --quick)
#   bench/run.sh --cpu-period-ms 20 # the quota's period (default 20 ms): quota = share x period
#   bench/run.sh --route alteryx    # bucket-trigger's route is an Alteryx Gallery v1 workflow (OAuth 1.0a,
#                                   # key/secret from moto) instead of Airflow (basic auth from moto)
#   bench/run.sh --tls              # the stand-in and moto over HTTPS (a throwaway CA made at run time,
#                                   # trusted through settings.ca_bundle, SSL_CERT_FILE and FLOOR_CA_FILE)
#   e.g. bench/run.sh --quick --cpu-share 7.2 --cpu-period-ms 20 --route alteryx --tls
#
# Output: target/bench/ (results.json, extra.json, table.md, criterion.txt, logs). table.md ends with
# a per-process table (init, first invocation, cold total, warm 10 records, peak RSS) whose
# heading names the share, period, http/https and route.
set -euo pipefail
cd "$(dirname "$0")/.."

with_criterion=0
quick=0
build=1
passthrough=()
bench_args=()  # issue 14 options, for bench/lambda_bench.py
cpu_share=
tls=0
while [ $# -gt 0 ]; do
  case "$1" in
    --with-criterion) with_criterion=1 ;;
    --quick) quick=1 ;;
    --no-build) build=0 ;;
    --cpu-share|--cpu-period-ms|--route)
      [ $# -ge 2 ] || { echo "$1 needs a value" >&2; exit 2; }
      [ "$1" = --cpu-share ] && cpu_share=$2
      bench_args+=("$1" "$2"); shift ;;
    --tls) tls=1; bench_args+=(--tls) ;;
    --) shift; passthrough=("$@"); break ;;
    -h|--help) awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# Check the cgroup before minutes of building (bench/lambda_bench.py checks again, and says why).
if [ -n "$cpu_share" ]; then
  probe=/sys/fs/cgroup/cpu/lambda-bench-probe-$$
  if ! mkdir "$probe" 2>/dev/null; then
    echo "--cpu-share needs a writable cgroup v1 cpu controller at /sys/fs/cgroup/cpu (run as root;" >&2
    echo "cgroup v2-only hosts are not supported): mkdir $probe failed" >&2
    exit 1
  fi
  rmdir "$probe"
fi

out=target/bench
mkdir -p "$out"
bin=target/release/bucket-trigger
hello=target/release/examples/hello
floor=target/release/examples/floor

if [ "$build" = 1 ]; then
  # The deployable binary alone first: building it together with the examples would unify the
  # dev-dependencies' features (tokio "full") into it.
  echo "==> cargo build --release"
  cargo build --release --bin bucket-trigger
  echo "==> cargo build --release --example hello --example floor"
  cargo build --release --example hello --example floor
fi
for f in "$bin" "$hello" "$floor"; do
  [ -x "$f" ] || { echo "missing $f (run without --no-build)" >&2; exit 1; }
done
# Measure copies, so a rebuild in the same target/ during the run cannot swap the binaries.
mkdir -p "$out/bin"
cp "$bin" "$out/bin/bucket-trigger"
cp "$hello" "$out/bin/hello"
cp "$floor" "$out/bin/floor"
bin=$out/bin/bucket-trigger
hello=$out/bin/hello
floor=$out/bin/floor

# moto (Secrets Manager emulator), as scripts/test.sh installs it.
if [ ! -x .venv/bin/moto_server ]; then
  echo "==> installing moto[server] into .venv"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check 'moto[server]'
fi
# --tls makes its test CA with `cryptography` (a moto dependency, so normally there already).
if [ "$tls" = 1 ] && ! .venv/bin/python -c 'import cryptography' 2>/dev/null; then
  echo "==> installing cryptography into .venv"
  .venv/bin/pip install --quiet --disable-pip-version-check cryptography
fi

echo "==> sizes and duplicate crates"
python3 - "$bin" "$hello" "$floor" "$out/extra.json" <<'PY'
import json, os, subprocess, sys, tempfile, zipfile
bin_, hello, floor, out = sys.argv[1:5]

def zipped(path):
    """Size of a Lambda deployment zip holding `path` as `bootstrap` (deflate, level 9)."""
    with tempfile.TemporaryDirectory() as tmp:
        z = os.path.join(tmp, "bootstrap.zip")
        with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            info = zipfile.ZipInfo("bootstrap")
            info.external_attr = 0o100755 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as f:
                zf.writestr(info, f.read(), compresslevel=9)
        return os.path.getsize(z)

tree = subprocess.run(
    ["cargo", "tree", "-d", "-e", "normal", "--target", "x86_64-unknown-linux-gnu",
     "--depth", "0", "--prefix", "none"],
    check=True, capture_output=True, text=True).stdout
versions = {}
for line in tree.splitlines():
    parts = line.split()
    if len(parts) >= 2 and parts[1].startswith("v"):
        versions.setdefault(parts[0], set()).add(parts[1])
dups = sorted(n for n, v in versions.items() if len(v) > 1)
extra = {
    "binary_bytes": os.path.getsize(bin_),
    "hello_bytes": os.path.getsize(hello),
    "floor_bytes": os.path.getsize(floor),
    "zip_bytes": zipped(bin_),
    "hello_zip_bytes": zipped(hello),
    "duplicates": ["%s (%s)" % (n, ", ".join(sorted(versions[n]))) for n in dups],
}
with open(out, "w") as f:
    json.dump(extra, f, indent=1)
print("binary %d bytes, zip %d bytes; %d duplicated crates: %s" % (
    extra["binary_bytes"], extra["zip_bytes"], len(dups), ", ".join(extra["duplicates"])))
PY

echo "==> machine"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "kernel: $(uname -sr)"
  echo "rustc: $(rustc --version)"
  echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "bench options: ${bench_args[*]:-none} ${passthrough[*]:-}"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (+ uncommitted changes)')"
} | tee "$out/machine.txt"

echo "==> bench/lambda_bench.py"
rm -rf "$out/logs"
args=(--binary "$bin" --hello "$hello" --floor "$floor" --moto .venv/bin/moto_server --json "$out/results.json" --work-dir "$out/logs")
[ "$quick" = 1 ] && args+=(--quick)
python3 bench/lambda_bench.py "${args[@]}" "${bench_args[@]}" "${passthrough[@]}"
echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/machine.txt"

if [ "$with_criterion" = 1 ]; then
  echo "==> cargo bench --bench per_event"
  cargo bench --bench per_event 2>&1 | tee "$out/criterion.txt"
fi

echo
echo "## Results"
echo
sed 's/^/    /' "$out/machine.txt"
echo
python3 bench/lambda_bench.py report "$out/results.json" "$out/extra.json" | tee "$out/table.md"
if [ "$with_criterion" = 1 ]; then
  echo
  echo "Per-event CPU (criterion, median of the estimate):"
  echo
  python3 - "$out/criterion.txt" <<'PY' | tee -a "$out/table.md"
import re, sys
name = None
print("| Benchmark | Time (median estimate) |")
print("|---|---|")
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    m = re.match(r"^(\S+)\s*(time:\s*\[(.*)\])?", line)
    if m and not line.startswith(("Benchmarking", "Found", "Warning", "Gnuplot", "  ", "\t")) and "/" in m.group(1):
        name = m.group(1)
    t = re.search(r"time:\s*\[\S+ \S+ (\S+ \S+) \S+ \S+\]", line)
    if t and name:
        print("| `%s` | %s |" % (name, t.group(1)))
        name = None
PY
fi
