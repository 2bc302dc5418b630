#!/usr/bin/env python3
"""Profile keyferry's Encrypt path under load: perf record -g on the server while wrk replays a
signed Encrypt (64 connections, 2 threads). Prints `perf report` top entries (self and children).

    python3 bench/profile.py --keyferry target/release/keyferry [--op Encrypt] [--seconds 8]

Needs `perf` (Debian linux-perf) and permission to profile (root or perf_event_paranoid <= 1).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keyferry", required=True)
    ap.add_argument("--op", default="Encrypt")
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--top", type=int, default=40)
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="keyferry-profile-")
    port = driver.free_port()
    kf = driver.start_keyferry(argparse.Namespace(keyferry=args.keyferry), os.path.join(base, "d"), port)
    try:
        kf.wait_line()
        keys = driver.setup_keys(port, with_import=False)
        driver.wait_idle(kf.pid, timeout=120)
        body = driver.op_bodies(keys)[args.op]
        data = os.path.join(base, "perf.data")
        perf = subprocess.Popen(["perf", "record", "-F", "999", "-g", "--call-graph", "dwarf,16384",
                                 "-p", str(kf.pid), "-o", data, "--", "sleep", str(args.seconds)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        wrk_args = argparse.Namespace(connections=64, threads=2, duration=args.seconds)
        driver.run_wrk(wrk_args, base, "keyferry", port, args.op, body)
        perf.wait(timeout=args.seconds + 120)
    finally:
        kf.stop()
    for mode in (["--no-children"], ["--children"]):
        print(f"==== perf report {' '.join(mode)} ====", flush=True)
        r = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-call-graph"] + mode +
                           ["--percent-limit", "0.7", "--sort", "symbol"],
                           capture_output=True, text=True, timeout=600)
        lines = [l for l in r.stdout.splitlines() if l and not l.startswith("#")]
        print("\n".join(lines[: args.top]))
    print(f"perf data: {data}")


if __name__ == "__main__":
    main()
