#!/usr/bin/env python3
"""Bulk transfer through netcat-like tools, as issue 14 asks: a receiver
listening on loopback writes what arrives to a file (`nc -l ... > out`), a
sender sends a file (`nc HOST PORT < file`), and the whole run is timed.

For each tool and round: wall time from the sender's start until both have
exited, throughput (the file's size over that time), and the CPU time of both
processes together (user + system, from wait4), as CPU seconds per GiB. The
file that arrives is compared with the one sent (size, then SHA-256), and a
run that does not deliver it whole is a failure, not a figure. Tools alternate
A B C A B C ... for --rounds rounds; the table shows each tool's median, and
its ratios to ncat's in the same round.

Usage (from the repository root):
    cargo build --release --bin sockit && python3 bench/bulk.py
    python3 bench/bulk.py --size 256M --rounds 3 --tools sockit,ncat

The file and what arrives live in --dir (default: a temporary directory on
the disk, not /dev/shm), removed afterwards. Tools that are not installed are
listed as not measured. Only loopback is used.
"""

import argparse
import hashlib
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOCKIT = os.path.join(ROOT, "target", "release", "sockit")

# Each tool: what it needs installed, then its receiver and sender command
# lines; {port} is filled in. The receiver's stdout is the file written, its
# stdin /dev/null; the sender's stdin is the file sent. Each is the tool's
# plain, documented way to do it.
TOOLS = {
    "sockit": (
        SOCKIT,
        [SOCKIT, "nc", "-l", "127.0.0.1", "{port}"],
        [SOCKIT, "nc", "127.0.0.1", "{port}"],
    ),
    "ncat": (
        "ncat",
        ["ncat", "--recv-only", "-l", "127.0.0.1", "{port}"],
        ["ncat", "--send-only", "127.0.0.1", "{port}"],
    ),
    "socat": (
        "socat",
        ["socat", "-u", "TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr", "STDOUT"],
        ["socat", "-u", "STDIN", "TCP:127.0.0.1:{port}"],
    ),
    "nc-openbsd": (
        "nc.openbsd",
        ["nc.openbsd", "-l", "127.0.0.1", "{port}"],
        ["nc.openbsd", "-N", "127.0.0.1", "{port}"],
    ),
}

GIB = 1 << 30


def size_bytes(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text[-1].upper() in units:
        return int(float(text[:-1]) * units[text[-1].upper()])
    return int(text)


def installed(program):
    return os.path.isfile(program) if os.sep in program else shutil.which(program) is not None


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port, deadline):
    """Waits until something listens on `port`, without connecting to it (a
    probe connection would be the receiver's one conversation)."""
    hex_port = f":{port:04X}"
    while time.monotonic() < deadline:
        with open("/proc/net/tcp") as table:
            for line in table:
                fields = line.split()
                if len(fields) > 3 and fields[1].endswith(hex_port) and fields[3] == "0A":
                    return True
        time.sleep(0.005)
    return False


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def one_run(tool, source, source_hash, received, timeout):
    _, receiver_line, sender_line = TOOLS[tool]
    port = free_port()
    fill = lambda line: [part.format(port=port) for part in line]
    with open(received, "wb") as out, open(os.devnull, "rb") as null:
        receiver = subprocess.Popen(fill(receiver_line), stdin=null, stdout=out, stderr=subprocess.PIPE)
    if not listening(port, time.monotonic() + 5):
        receiver.kill()
        raise RuntimeError(f"{tool}: the receiver did not listen on {port}")
    with open(source, "rb") as file:
        began = time.monotonic()
        sender = subprocess.Popen(fill(sender_line), stdin=file, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for process in (sender, receiver):
        left = timeout - (time.monotonic() - began)
        try:
            process.wait(timeout=max(left, 0.1))
        except subprocess.TimeoutExpired:
            sender.kill()
            receiver.kill()
            raise RuntimeError(f"{tool}: not done within {timeout} s")
    wall = time.monotonic() - began
    for name, process in (("sender", sender), ("receiver", receiver)):
        if process.returncode != 0:
            raise RuntimeError(f"{tool}: the {name} exited {process.returncode}: {process.stderr.read().decode(errors='replace')}")
    got = os.path.getsize(received)
    expected = os.path.getsize(source)
    if got != expected:
        raise RuntimeError(f"{tool}: {got} bytes of {expected} arrived")
    if sha256(received) != source_hash:
        raise RuntimeError(f"{tool}: what arrived differs from what was sent (SHA-256)")
    return wall


def children_cpu():
    """CPU time of every child reaped so far: a run's is the difference."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1G", help="the file's size: 1G, 256M ... (default 1G)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3); the table shows medians")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"which tools (default {','.join(TOOLS)})")
    parser.add_argument("--dir", default=None, help="where the files go (default: a temporary directory under /var/tmp)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds one run may take (default 300)")
    args = parser.parse_args()

    size = size_bytes(args.size)
    tools = [tool.strip() for tool in args.tools.split(",") if tool.strip()]
    unknown = [tool for tool in tools if tool not in TOOLS]
    if unknown:
        parser.error(f"unknown tools: {', '.join(unknown)} (known: {', '.join(TOOLS)})")
    missing = [tool for tool in tools if not installed(TOOLS[tool][0])]
    tools = [tool for tool in tools if tool not in missing]

    work = tempfile.mkdtemp(prefix="sockit-bulk-", dir=args.dir or "/var/tmp")
    try:
        source = os.path.join(work, "sent")
        received = os.path.join(work, "received")
        print(f"writing {size} bytes of random data to {source}", file=sys.stderr)
        with open(source, "wb") as file:
            left = size
            while left:
                chunk = os.urandom(min(left, 1 << 20))
                file.write(chunk)
                left -= len(chunk)
        source_hash = sha256(source)
        os.sync()
        runs = {tool: [] for tool in tools}
        for round_number in range(1, args.rounds + 1):
            for tool in tools:
                before = children_cpu()
                wall = one_run(tool, source, source_hash, received, args.timeout)
                cpu = children_cpu() - before
                runs[tool].append((wall, cpu))
                print(
                    f"round {round_number}: {tool}: {size / wall / 1e9:.2f} GB/s, {cpu / (size / GIB):.3f} CPU-s/GiB",
                    file=sys.stderr,
                )
                os.remove(received)
                # What was written goes to the disk now, not during the next run.
                os.sync()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"Bulk transfer over loopback: {size} bytes, file to file, {args.rounds} rounds, medians")
    print()
    print("| tool | GB/s | CPU-s/GiB (both ends) | GB/s ÷ ncat's | CPU ÷ ncat's |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for tool in tools:
        rates = [size / wall / 1e9 for wall, _ in runs[tool]]
        cpus = [cpu / (size / GIB) for _, cpu in runs[tool]]
        if "ncat" in runs and tool != "ncat":
            rate_ratio = statistics.median(
                (size / wall) / (size / base_wall) for (wall, _), (base_wall, _) in zip(runs[tool], runs["ncat"])
            )
            cpu_ratio = statistics.median(cpu / base_cpu for (_, cpu), (_, base_cpu) in zip(runs[tool], runs["ncat"]))
            ratios = f"{rate_ratio:.2f}x | {cpu_ratio:.2f}x"
        else:
            ratios = "1.00x | 1.00x" if tool == "ncat" else "- | -"
        print(f"| {tool} | {statistics.median(rates):.2f} | {statistics.median(cpus):.3f} | {ratios} |")
    for tool in missing:
        print(f"\nnot measured: {tool} ({TOOLS[tool][0]} is not installed)")


if __name__ == "__main__":
    main()
