#!/usr/bin/env python3
"""Side by side, as BENCH.md asks: each server pinned to CPU 0, `sockit bench`
pinned to CPU 1, servers alternating A B A B ... for several rounds, and for
each the client-seen msgs/s, the server's own CPU time per reply
(utime + stime of the server process from /proc/PID/stat, before and after the
load, divided by the replies the client counted), p99, and each as a ratio to
the hand-written tokio baseline measured in the same run (median of the
per-round ratios).

Usage (from the repository root, after `cargo build --release --workspace`):
    python3 bench/compare.py [--rounds 2] [--duration 5s] [--conns 50] [--pipeline 1]

Only loopback is used. This is the first part of issue 4's harness: the TCP
echo load; the other loads and peers come next.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import time

TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # Fields 14-17 of stat (utime, stime, cutime, cstime), counted after the name.
    return sum(int(f) for f in fields[11:15]) / TICKS


def wait_listening(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def measure(name, command, args):
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    server = subprocess.Popen(["taskset", "-c", "0", *command],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        load = ["taskset", "-c", "1", "target/release/sockit", "bench", f"tcp://127.0.0.1:{port}",
                "--service", "echo", "-c", str(args.conns), "-d", args.duration, "--warmup", "1s",
                "-p", str(args.pipeline), "--json"]
        if args.pipeline > 1:
            load += ["--framing", "line"]
        before = cpu_seconds(server.pid)
        result = subprocess.run(load, capture_output=True, text=True, check=True)
        after = cpu_seconds(server.pid)
        report = json.loads(result.stdout)
        replies = report["replies"] + 0
        # The warmup's replies cost CPU too: count them at the measured rate.
        warm_replies = report["msgs_per_s"] * report["warmup_s"]
        cpu_us = (after - before) * 1e6 / (replies + warm_replies)
        return {
            "name": name,
            "msgs_per_s": report["msgs_per_s"],
            "cpu_us": cpu_us,
            "p99_us": report["latency_us"]["p99"],
            "errors": report["errors"]["total"],
        }
    finally:
        server.terminate()
        server.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", default="5s")
    parser.add_argument("--conns", type=int, default=50)
    parser.add_argument("--pipeline", type=int, default=1)
    args = parser.parse_args()
    framing = ["--framing", "line"] if args.pipeline > 1 else []
    servers = [
        ("tokio echo (baseline, multi-thread)", ["target/release/tokio_echo", "127.0.0.1:{port}"]),
        ("tokio echo (current-thread)", ["target/release/tokio_echo", "127.0.0.1:{port}", "--current-thread"]),
        ("sockit serve --service echo", ["target/release/sockit", "serve", "tcp://127.0.0.1:{port}",
                                         "--service", "echo", "-q", *framing]),
    ]
    rounds = []
    for _ in range(args.rounds):
        rounds.append([measure(name, command, args) for name, command in servers])
    base = 0
    print(f"TCP echo, {args.conns} connections x {args.pipeline} in flight, 64 B, "
          f"{args.duration} per run, {args.rounds} rounds; server on CPU 0, sockit bench on CPU 1")
    print(f"{'server':40} {'msgs/s':>10} {'x base':>7} {'CPU-us/reply':>13} {'x base':>7} "
          f"{'p99 us':>8} {'errors':>6}")
    for i, (name, _) in enumerate(servers):
        runs = [r[i] for r in rounds]
        med = lambda key: statistics.median(run[key] for run in runs)
        ratio = lambda key: statistics.median(r[i][key] / r[base][key] for r in rounds)
        print(f"{name:40} {med('msgs_per_s'):10.0f} {ratio('msgs_per_s'):7.2f} {med('cpu_us'):13.2f} "
              f"{ratio('cpu_us'):7.2f} {med('p99_us'):8.0f} {sum(r['errors'] for r in runs):6}")


if __name__ == "__main__":
    main()
