#!/usr/bin/env python3
"""What an idle connection costs a server: open N connections, let each take
its greeting (or nothing, for an echo server), and read the server's RSS
before and after. Then every connection sends one message and must get its
reply, so the connections were alive, not just counted.

Usage:
    bench/idle_connections.py N -- SERVER COMMAND... (with {port} for the port)

Example (the figures in docs/BENCHMARKS.md):
    cargo build --release
    python3 bench/idle_connections.py 10000 -- target/release/sockit serve tcp://127.0.0.1:{port} -q

The clients are spread over several processes (each may hold at most its
descriptor limit) and over source addresses 127.0.0.2, 127.0.0.3, ... (10,000
connections each at most), so neither descriptors nor ephemeral ports run out.
Only loopback is used.
"""

import multiprocessing
import os
import socket
import subprocess
import sys
import time

PER_PROCESS = 5000
PER_SOURCE = 10000


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clients(first, count, port, greeting, opened, go, answered):
    """Opens `count` connections, reports, waits for `go`, then checks one reply each."""
    conns = []
    for i in range(first, first + count):
        s = socket.socket()
        # IP_BIND_ADDRESS_NO_PORT (24): pick the port at connect time, per
        # destination, so the ephemeral ports are not shared by all sources.
        s.setsockopt(socket.IPPROTO_IP, 24, 1)
        s.bind((f"127.0.0.{2 + i // PER_SOURCE}", 0))
        s.connect(("127.0.0.1", port))
        conns.append(s)
    for s in conns:
        if greeting:
            got = b""
            while len(got) < len(greeting):
                got += s.recv(len(greeting) - len(got))
            assert got == greeting, got
    opened.put(count)
    go.wait()
    ok = 0
    for i, s in zip(range(first, first + count), conns):
        s.sendall(b"m%d" % i)
    for i, s in zip(range(first, first + count), conns):
        want = (b"Hello, m%d!" % i) if greeting else (b"m%d" % i)
        got = b""
        while len(got) < len(want):
            chunk = s.recv(64)
            if not chunk:
                break
            got += chunk
        ok += got == want
    answered.put(ok)
    go.wait()


def main():
    n = int(sys.argv[1])
    command = sys.argv[sys.argv.index("--") + 1:]
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    greeting = b"" if any("echo" in part for part in command) else b"Hello, I am server"
    server = subprocess.Popen(command, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(0.5)
        before = rss_kib(server.pid)
        opened, answered = multiprocessing.Queue(), multiprocessing.Queue()
        workers = (n + PER_PROCESS - 1) // PER_PROCESS
        go = multiprocessing.Barrier(workers + 1)
        procs = []
        for w in range(workers):
            first = w * PER_PROCESS
            count = min(PER_PROCESS, n - first)
            p = multiprocessing.Process(target=clients, args=(first, count, port, greeting, opened, go, answered))
            p.start()
            procs.append(p)
        total = sum(opened.get(timeout=300) for _ in procs)
        time.sleep(1.0)
        after = rss_kib(server.pid)
        go.wait()
        ok = sum(answered.get(timeout=300) for _ in procs)
        go.wait()
        for p in procs:
            p.join()
        per = (after - before) * 1024 / total
        print(f"{total} idle connections: server RSS {before} KiB -> {after} KiB, "
              f"{per:.0f} bytes per connection; {ok}/{total} answered afterwards")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
