#!/usr/bin/env python3
"""Cold-start measurement only (kept for its old command line). The full suite, with the
hello and floor baselines, warm runs and peak RSS, is bench/lambda_bench.py (run by
bench/run.sh). Usage:

  python3 bench/coldstart.py [target/release/bucket-trigger] [--runs 20] [--event events/s3-put.json]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lambda_bench  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary", nargs="?", default=os.path.join(lambda_bench.ROOT, "target/release/bucket-trigger"))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--event", default=os.path.join(lambda_bench.ROOT, "events", "s3-put.json"))
    args = parser.parse_args()
    lambda_bench.main(["--cold-only", "--binary", args.binary, "--cold-runs", str(args.runs), "--event", args.event])
