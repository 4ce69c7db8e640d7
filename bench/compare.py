#!/usr/bin/env python3
"""The side-by-side harness of issue 4, measured as BENCH.md asks.

For every load, every server that speaks its protocol is started on loopback
pinned to CPU 0 (`taskset -c 0`), `sockit bench` drives it from CPU 1, and the
servers alternate A B C A B C ... for --rounds rounds. For each server the
table shows the client-seen msgs/s, the server's own CPU time per reply
(utime + stime of all its processes, from /proc, before and after the load,
divided by the replies the client counted), its peak RSS and the client-seen
p99 latency, each also as the median of its per-round ratios to the load's
base (the hand-written tokio server, or the naive tokio UDP loop, measured in
the same run). Peers that are not installed are listed as not measured, with
the command that installs them.

Usage (from anywhere; paths are relative to the repository root):
    cargo build --release --workspace --bins --examples && python3 bench/compare.py --loads all
    python3 bench/compare.py --quick                       # smoke run: 1 round of 1 s
    python3 bench/compare.py --loads tcp-echo-50,udp-greet-1 --rounds 5 --json out.json
    python3 bench/compare.py --list                        # the loads and their servers
    python3 bench/compare.py --loads tcp-echo-50 --servers handler   # one server against the base
    python3 bench/compare.py --loads tcp-echo-50 --before /tmp/before/target/release/sockit
                                        # beside each `sockit serve`, the same command from an older build

Loads (default: all but idle-19000, which runs with --loads all or by name):
    tcp-echo-1       TCP echo, 1 connection, 64 B, one in flight
    tcp-echo-50      TCP echo, 50 connections
    tcp-echo-1000    TCP echo, 1,000 connections, open loop at one rate for all
                     servers (--rate, or 60% of the base's closed-loop msgs/s at
                     1,000 connections, measured first in the same run)
    tcp-echo-50x16   TCP echo, 50 connections x 16 pipelined, line framing
    tcp-echo-50-4k   TCP echo, 50 connections, 4 KiB messages
    tcp-greet-50     TCP greet, 50 connections (tokio --greet base, sockit, seed)
    unix-greet-50    greet over a Unix socket and over TCP: sockit, and tokio greet for the kernel's share
    udp-greet-1      UDP greet, 1 socket, one datagram in flight
    udp-greet-50x64  UDP greet, 50 sockets, a window of 64 datagrams each
    tcp-echo-50-metrics  sockit's TCP echo with --metrics on, as a ratio of off
    tls-echo-50      TLS echo, 50 connections: sockit against a tokio-rustls echo
                     baseline, socat and ncat (OpenSSL), and sockit's plain TCP
    chat-100         examples/chat (a handler with a Group) against an asyncio chat:
                     100 clients, a line every 10 ms each, delivery latency and
                     the server's CPU (driven by bench/src/bin/chat_load)
    chat-100-calm    the same at a line every 100 ms, a rate asyncio keeps up with
    idle-19000       RSS per idle connection (bench/idle_connections.py), sockit
                     vs the tokio baseline; needs `ulimit -n` >= 20000
    relay-upload     one bulk TCP stream (--relay-size, 1 GiB) through a relay to a
                     sink: HAProxy with splice (the base) and without, sockit
                     relay, socat; the relay's CPU per GiB and the throughput
                     (bench/src/bin/bulk, every byte checked where it arrives)
    relay-download   the same stream the other way, from a source behind the relay
    relay-idle-1000  1,000 relayed connection pairs, each past one echo, then
                     idle: the relay's RSS per pair
    relay            all three relay loads (--loads relay)

Only loopback is used. Results go to stdout (one table per load, then what was
not measured); progress to stderr; --json FILE saves every run's raw figures.
"""

import argparse
import dataclasses
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOCKIT = "target/release/sockit"
TOKIO = "target/release/tokio_echo"
UDP_NAIVE = "target/release/udp_naive"
HANDLER_ECHO = "target/release/handler_echo"
CHAT = "target/release/examples/chat"
CHAT_LOAD = "target/release/chat_load"
BULK = "target/release/bulk"
BUILD = "cargo build --release --workspace --bins --examples"
SERVER_CPU, LOAD_CPU = 0, 1
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
RSS_EVERY_S = 0.5
SEED_TCP_PORT, SEED_UDP_PORT = 8000, 9000
IDLE_CONNECTIONS = 19000
RELAY_SIZE = "1G"
RELAY_IDLE_PAIRS = 1000
OPEN_LOOP_SHARE = 0.6
# `sockit bench` frees the window slot of a lost datagram only after its
# --timeout, so UDP runs keep it short (TCP runs use 5 s: forking servers
# are slow to accept).
UDP_TIMEOUT = "1s"


def seed_dir():
    return os.environ.get("SOCKIT_SEED_DIR", os.path.join(ROOT, "..", "shared", "seed"))


# ---------------------------------------------------------------------------
# Servers and loads


@dataclass
class Server:
    """One server under test: how to start it and how the load reaches it."""

    name: str
    command: list  # "{port}" is replaced by the port (or, for unix:, a unique id)
    endpoint: str = "tcp://127.0.0.1:{port}"
    framing: str = "auto"  # the `sockit bench --framing` used against it
    port: int = None  # a fixed port, for the seed's servers
    timeout: str = "5s"  # `sockit bench --timeout`: to connect (forking servers are slow), and per reply
    needs: list = field(default_factory=list)  # [(check, why not, what to do)]
    note: str = ""
    client: list = field(default_factory=list)  # more `sockit bench` flags for this server (TLS)
    config: str = ""  # a config file's text ("{port}", "{backend}" filled in), given as "{config}"


def have_file(path):
    return lambda: os.path.exists(os.path.join(ROOT, path))


def have_program(name):
    return lambda: shutil.which(name) is not None


def have_module(name):
    return lambda: subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True).returncode == 0


def built(path):
    return (have_file(path), f"{path} not built", f"build: {BUILD}")


def tokio(greet=False, current_thread=False, unix=False):
    address = "unix:@sockit-harness-tokio-{port}" if unix else "127.0.0.1:{port}"
    command = [TOKIO, address] + ["--current-thread"] * current_thread + ["--greet"] * greet
    runtime = "current-thread" if current_thread else "multi-thread"
    return Server(f"tokio {'greet' if greet else 'echo'}, {runtime}" + ", Unix" * unix, command,
                  endpoint=address if unix else Server.endpoint,
                  framing="line" if greet else "auto", needs=[built(TOKIO)])


def tokio_tls():
    return Server("tokio-rustls echo, multi-thread", [TOKIO, "127.0.0.1:{port}", "--tls", TLS_CERT, TLS_KEY],
                  endpoint="tls://127.0.0.1:{port}", client=["--insecure"], needs=[built(TOKIO), TLS_NEED])


def sockit(service, framing=None, endpoint="tcp://127.0.0.1:{port}", bench_framing=None, flags=(), shown=""):
    command = [SOCKIT, "serve", endpoint, "--service", service, "-q", *flags]
    if framing:
        command += ["--framing", framing]
    scheme = re.match(r"[a-z-]+:(?://|@)?", endpoint).group()
    name = f"sockit serve {scheme} --service {service}" + (f" --framing {framing}" if framing else "") + shown
    needs = [built(SOCKIT)]
    client = []
    if endpoint.startswith("tls"):
        command += ["--cert", TLS_CERT, "--key", TLS_KEY]
        needs.append(TLS_NEED)
        client = ["--insecure"]
    return Server(name, command, endpoint, framing=bench_framing or framing or "auto",
                  timeout=UDP_TIMEOUT if endpoint.startswith("udp") else Server.timeout, needs=needs, client=client)


# A self-signed certificate for the TLS load, made with openssl when first needed.
TLS_DIR = os.path.join(tempfile.gettempdir(), "sockit-harness-tls")
TLS_CERT = os.path.join(TLS_DIR, "cert.pem")
TLS_KEY = os.path.join(TLS_DIR, "key.pem")


def tls_pair():
    """Makes the certificate and key of the TLS load, once; whether they are there."""
    if not os.path.exists(TLS_CERT) and shutil.which("openssl"):
        os.makedirs(TLS_DIR, exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "30", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE",
                        "-keyout", TLS_KEY, "-out", TLS_CERT], capture_output=True, check=False)
    return os.path.exists(TLS_CERT)


TLS_NEED = (tls_pair, "no certificate (openssl makes it)", "install: apt-get install openssl")


def python_echo(kind, label):
    needs = []
    if kind == "uvloop":
        needs = [(have_module("uvloop"), "uvloop not importable", "install: pip install uvloop")]
    return Server(f"Python {label}", [sys.executable, "bench/peers/echo.py", "--kind", kind, "{port}"], needs=needs)


def socat():
    return Server("socat fork EXEC:cat",
                  ["socat", "TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,backlog=1024", "EXEC:cat"],
                  needs=[(have_program("socat"), "socat not installed", "install: apt-get install socat")],
                  note="forks a socat and a cat per connection: CPU and RSS are sums over its process tree; "
                       "backlog=1024 as every other peer (socat's default of 5 stalls simultaneous connects)")


def ncat():
    return Server("ncat --exec /bin/cat", ["ncat", "-l", "-k", "127.0.0.1", "{port}", "--exec", "/bin/cat"],
                  needs=[(have_program("ncat"), "ncat not installed", "install: apt-get install ncat")],
                  note="forks a cat per connection: CPU and RSS are sums over its process tree; ncat listens with "
                       "a backlog of 10 and takes at most 100 connections at once (its default --max-conns)")


def socat_tls():
    return Server("socat fork OPENSSL-LISTEN EXEC:cat",
                  ["socat", f"OPENSSL-LISTEN:{{port}},bind=127.0.0.1,reuseaddr,fork,backlog=1024,"
                            f"cert={TLS_CERT},key={TLS_KEY},verify=0", "EXEC:cat"],
                  endpoint="tls://127.0.0.1:{port}", client=["--insecure"],
                  needs=[(have_program("socat"), "socat not installed", "install: apt-get install socat"), TLS_NEED],
                  note="forks a socat and a cat per connection (OpenSSL)")


def ncat_tls():
    return Server("ncat --ssl --exec /bin/cat",
                  ["ncat", "-l", "-k", "--ssl", "--ssl-cert", TLS_CERT, "--ssl-key", TLS_KEY, "127.0.0.1", "{port}",
                   "--exec", "/bin/cat"],
                  endpoint="tls://127.0.0.1:{port}", client=["--insecure"],
                  needs=[(have_program("ncat"), "ncat not installed", "install: apt-get install ncat"), TLS_NEED],
                  note="forks a cat per connection (OpenSSL)")


def seed(program, sleep=False):
    path = os.path.join(seed_dir(), program)
    need = (lambda: os.path.exists(path), f"{path} not found", "set SOCKIT_SEED_DIR to the seed's directory")
    command = [sys.executable, "bench/peers/seed.py", program] + ["--no-sleep"] * (not sleep)
    if program == "udp_server.py":
        return Server("seed UDP server (Python)", command, "udp://127.0.0.1:{port}", port=SEED_UDP_PORT,
                      timeout=UDP_TIMEOUT, needs=[need])
    if sleep:
        return Server("seed TCP server as is (1 s sleep)", command, port=SEED_TCP_PORT,
                      needs=[need], note="sleeps 1 s per message, as the seed does: for the record")
    return Server("seed TCP server without sleep", command, port=SEED_TCP_PORT, needs=[need],
                  note="bench --framing auto (the seed cuts a message per read: no newline); it listens with a "
                  "backlog of 10, and of 50 simultaneous connects about half are never served (errors)")


def handler_echo():
    return Server("sockit handler echo (handler_echo)", [HANDLER_ECHO, "tcp://127.0.0.1:{port}"],
                  needs=[built(HANDLER_ECHO)], note="an echo written as a Server::handler, raw framing")


def chat_servers():
    return [Server("sockit examples/chat (handler + Group)", [CHAT, "tcp://127.0.0.1:{port}"],
                   needs=[built(CHAT), built(CHAT_LOAD)]),
            Server("Python asyncio streams chat", [sys.executable, "bench/peers/chat.py", "{port}"],
                   needs=[built(CHAT_LOAD)])]


def udp_naive():
    return Server("naive tokio UDP loop (udp_naive)", [UDP_NAIVE, "127.0.0.1:{port}"], "udp://127.0.0.1:{port}",
                  timeout=UDP_TIMEOUT, needs=[built(UDP_NAIVE)])


HAPROXY_CONFIG = """global
    nbthread 1
    maxconn 3000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
{splice}frontend relay
    bind 127.0.0.1:{{port}}
    default_backend target
backend target
    server target 127.0.0.1:{{backend}}
"""


def relays():
    """The relays of the relay loads, forwarding 127.0.0.1:{port} to 127.0.0.1:{backend}."""
    need_haproxy = (have_program("haproxy"), "haproxy not installed", "install: apt-get install haproxy")
    need_bulk = built(BULK)
    splice = "    option splice-request\n    option splice-response\n"
    return [
        Server("HAProxy, option splice-request/-response", ["haproxy", "-db", "-f", "{config}"],
               config=HAPROXY_CONFIG.format(splice=splice), needs=[need_haproxy, need_bulk],
               note="nbthread 1, as every relay here runs on the one core it is pinned to; maxconn 3000 (its "
                    "descriptors for 3,000 connections and their pipes fit this machine's limit of 20,000)"),
        Server("HAProxy, no splice", ["haproxy", "-db", "-f", "{config}"], config=HAPROXY_CONFIG.format(splice=""),
               needs=[need_haproxy, need_bulk]),
        Server("sockit relay", [SOCKIT, "relay", "tcp://127.0.0.1:{port}", "tcp://127.0.0.1:{backend}", "-q",
                                "--max-connections", "20000"], needs=[built(SOCKIT), need_bulk]),
        Server("socat fork", ["socat", "TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,backlog=1024",
                              "TCP:127.0.0.1:{backend}"],
               needs=[(have_program("socat"), "socat not installed", "install: apt-get install socat"), need_bulk],
               note="forks a socat per connection: CPU and RSS are sums over its process tree"),
    ]


@dataclass
class Load:
    """A `sockit bench` load and the servers that speak it; servers[0] is the base."""

    name: str
    title: str
    service: str
    args: list  # -c, -p, -s ... for `sockit bench`
    servers: list
    open_loop: bool = False
    idle: bool = False
    chat: bool = False  # driven by chat_load (args are its flags), not by `sockit bench`
    relay: str = ""  # a relay load: "upload", "download" or "idle", driven by bench/src/bin/bulk
    note: str = ""
    pairs: list = field(default_factory=list)  # [(name, TCP row, Unix row)]: a Unix/TCP line under the table


def echo_peers(sockit_framing=None):
    return [tokio(), tokio(current_thread=True), sockit("echo", framing=sockit_framing), handler_echo(),
            python_echo("threads", "socketserver.ThreadingTCPServer"), python_echo("asyncio", "asyncio streams"),
            python_echo("uvloop", "asyncio on uvloop"), socat(), ncat()]


def loads():
    sockit_tcp_greet = sockit("greet", bench_framing="line")
    # sockit over TCP (the base) and over Unix, and the hand-written tokio
    # greet the same two ways: whether Unix's gain is the kernel's or sockit's.
    unix_greet_servers = [sockit_tcp_greet,
                          sockit("greet", endpoint="unix:@sockit-harness-{port}", bench_framing="line"),
                          tokio(greet=True), tokio(greet=True, unix=True)]
    return [
        Load("tcp-echo-1", "TCP echo, 1 connection, 64 B, one in flight", "echo", ["-c", "1"], echo_peers()),
        Load("tcp-echo-50", "TCP echo, 50 connections, 64 B, one in flight each", "echo", ["-c", "50"],
             echo_peers()),
        Load("tcp-echo-1000", "TCP echo, 1,000 connections, 64 B, open loop", "echo", ["-c", "1000"],
             echo_peers(), open_loop=True),
        Load("tcp-echo-50x16", "TCP echo, 50 connections x 16 pipelined, 64 B, line framing", "echo",
             ["-c", "50", "-p", "16"], [replace_framing(s, "line") for s in echo_peers(sockit_framing="line")]),
        Load("tcp-echo-50-4k", "TCP echo, 50 connections, 4 KiB messages, one in flight each", "echo",
             ["-c", "50", "-s", "4096"], echo_peers()),
        Load("tcp-greet-50", "TCP greet, 50 connections, 64 B, one in flight each, line framing", "greet",
             ["-c", "50"], [tokio(greet=True), sockit_tcp_greet, seed("tcp_server.py"),
                            seed("tcp_server.py", sleep=True)]),
        Load("unix-greet-50", "greet, 50 connections, 64 B, line framing: over Unix vs over TCP", "greet",
             ["-c", "50"], unix_greet_servers, pairs=[("sockit", *unix_greet_servers[:2]),
                                                      ("tokio", *unix_greet_servers[2:])]),
        Load("udp-greet-1", "UDP greet, 1 socket, 64 B, one datagram in flight", "greet", ["-c", "1"],
             [udp_naive(), sockit("greet", endpoint="udp://127.0.0.1:{port}"), seed("udp_server.py")]),
        Load("udp-greet-50x64", "UDP greet, 50 sockets x 64 datagrams in flight, 64 B", "greet",
             ["-c", "50", "-p", "64"],
             [udp_naive(), sockit("greet", endpoint="udp://127.0.0.1:{port}"), seed("udp_server.py")],
             note=f"errors are datagrams lost (3,200 in flight overflow the server's receive buffer); a lost "
                  f"one's window slot is sent again only after --timeout {UDP_TIMEOUT}"),
        Load("tcp-echo-50-metrics", "TCP echo, 50 connections, 64 B: sockit with and without --metrics", "echo",
             ["-c", "50"], [sockit("echo"), sockit("echo", flags=["--metrics", "127.0.0.1:0"],
                                                    shown=" --metrics")]),
        Load("tls-echo-50", "TLS echo, 50 connections, 64 B, one in flight each (bench --insecure)", "echo",
             ["-c", "50"], [tokio_tls(), sockit("echo", endpoint="tls://127.0.0.1:{port}"), socat_tls(),
                            ncat_tls(), sockit("echo")],
             note="the last row is plain TCP, for what TLS costs"),
        *(Load(name, f"chat fan-out, 100 clients, each a line every {every} ms (99 deliveries per line)",
               "chat", ["--clients", "100", "--interval-ms", str(every)], chat_servers(), chat=True,
               note="bench/src/bin/chat_load on CPU 1; latency is from a line's send to its arrival at each "
                    "other client; a line sent in the measured window counts if it arrives within 0.5 s "
                    "after; CPU-us per delivery is the server's CPU over the run (warm-up included) per "
                    "line delivered")
          for name, every in (("chat-100", 10), ("chat-100-calm", 100))),
        Load("idle-19000", "idle TCP connections (--idle): server RSS growth per connection", "echo",
             [], [tokio(), sockit("echo", framing=None)], idle=True),
        Load("relay-upload", "one bulk TCP stream through a relay, client to target", "", [], relays(),
             relay="upload"),
        Load("relay-download", "one bulk TCP stream through a relay, target to client", "", [], relays(),
             relay="download"),
        Load("relay-idle-1000", "idle relayed TCP connection pairs (--relay-idle): the relay's RSS per pair",
             "", [], relays(), relay="idle"),
    ]


def replace_framing(server, framing):
    server.framing = framing
    return server


# ---------------------------------------------------------------------------
# Processes and /proc


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port, kind):
    """Whether nothing is bound to `port`: a TCP port in TIME_WAIT counts as
    free (the seed wrapper sets SO_REUSEADDR), but a UDP port with a socket on
    it never does (SO_REUSEADDR would let two share it)."""
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def process_tree(root):
    """The pids of `root` and all its descendants, from the ppid in /proc/*/stat."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_cpu_s(root):
    """utime + stime + cutime + cstime summed over the live process tree: each
    live process's own time, plus what its reaped children left it."""
    return tree_cpu_split_s(root)[0]


def tree_cpu_split_s(root):
    """As tree_cpu_s, and the user-space share of it (utime + cutime)."""
    total = user = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # Fields 14-17 of stat (utime, stime, cutime, cstime), counted after the name.
        total += sum(int(f) for f in fields[11:15])
        user += int(fields[11]) + int(fields[13])
    return total / TICKS, user / TICKS


def tree_rss_bytes(root):
    total = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/statm") as statm:
                total += int(statm.read().split()[1]) * PAGE
        except OSError:
            continue
    return total


def wait_ready(server, port, process):
    """Until the server answers on its endpoint (10 s at most)."""
    endpoint = server.endpoint.replace("{port}", str(port))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with status {process.returncode}")
        try:
            if endpoint.startswith("udp://"):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.settimeout(0.2)
                    s.connect(("127.0.0.1", port))
                    s.send(b"ready?")
                    s.recv(64)
            elif endpoint.startswith("unix:@"):
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect("\0" + endpoint[len("unix:@"):])
            else:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("not answering after 10 s")


class Running:
    """A server started pinned to CPU 0 in a session of its own, so that it and
    every process it forks are stopped together."""

    def __init__(self, server, port):
        self.log = tempfile.TemporaryFile()
        command = [part.replace("{port}", str(port)) for part in server.command]
        self.process = subprocess.Popen(["taskset", "-c", str(SERVER_CPU), *command], cwd=ROOT,
                                        env=dict(os.environ, SOCKIT_SEED_DIR=seed_dir()),
                                        stdout=subprocess.DEVNULL, stderr=self.log, start_new_session=True)

    def stop(self):
        """SIGTERM to the whole process group, then SIGKILL to whatever is left
        of it after 5 s (a leader that would not stop, or forked children)."""
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.signal(signal.SIGKILL)
        self.process.wait()
        self.log.close()

    def signal(self, number):
        try:
            os.killpg(self.process.pid, number)
        except ProcessLookupError:
            pass

    def stderr_tail(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace").strip()[-300:]


def start(server, port):
    """Starts `server` on `port` and waits until it answers: (the running
    server, None), or (None, why it did not start), stopped."""
    running = Running(server, port)
    try:
        wait_ready(server, port, running.process)
    except RuntimeError as error:
        why = f"did not start: {error} {running.stderr_tail()}".strip()
        running.stop()
        return None, why
    return running, None


@dataclass
class Driven:
    """What one load client's run against a server showed: the JSON report it
    printed, the server tree's CPU seconds and peak RSS over the run, and the
    wall time; or why it failed."""
    report: dict = None
    cpu_s: float = 0.0
    user_s: float = 0.0  # the user-space share of cpu_s
    wall_s: float = 0.0
    peak_rss: int = 0
    failed: str = ""


def drive(running, command, name):
    """Runs the load client `command` to its end against the running server,
    sampling the server's process tree every RSS_EVERY_S meanwhile."""
    root = running.process.pid
    peak_rss = tree_rss_bytes(root)
    (cpu_before, user_before), wall_before = tree_cpu_split_s(root), time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        client = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=err)
        while client.poll() is None:
            peak_rss = max(peak_rss, tree_rss_bytes(root))
            try:
                client.wait(RSS_EVERY_S)
            except subprocess.TimeoutExpired:
                pass
        (cpu_after, user_after), wall_s = tree_cpu_split_s(root), time.monotonic() - wall_before
        cpu_s, user_s = cpu_after - cpu_before, user_after - user_before
        peak_rss = max(peak_rss, tree_rss_bytes(root))
        out.seek(0)
        err.seek(0)
        try:
            report = json.loads(out.read())
        except ValueError:
            tail = err.read().decode(errors="replace").strip()[-300:]
            return Driven(failed=f"{name} exited {client.returncode}: {tail}")
    return Driven(report, cpu_s, user_s, wall_s, peak_rss)


def bench_command(server, load, port, settings, rate=None):
    """`sockit bench` on CPU 1, driving `server` with `load`."""
    endpoint = server.endpoint.replace("{port}", str(port))
    command = ["taskset", "-c", str(LOAD_CPU), SOCKIT, "bench", endpoint, "--service", load.service,
               "--framing", server.framing, *load.args, "-d", settings.duration, "--warmup", settings.warmup,
               "--timeout", server.timeout, "--json", "-q", *server.client]
    if rate:
        command += ["--rate", str(rate)]
    return command


def measure(load, server, settings, rate=None):
    """Starts `server`, drives it with the load once, stops it."""
    port = server.port or free_port()
    run = {"load": load.name, "server": server.name, "rate": rate}
    kind = socket.SOCK_DGRAM if server.endpoint.startswith("udp") else socket.SOCK_STREAM
    if server.port and not port_free(port, kind):
        return dict(run, failed=f"port {port} is in use (the seed's servers need it)")
    running, failed = start(server, port)
    if failed:
        return dict(run, failed=failed)
    try:
        client = drive(running, bench_command(server, load, port, settings, rate), "sockit bench")
        if client.failed:
            return dict(run, failed=client.failed)
        report = client.report
        # The warm-up's replies cost the server CPU too.
        replies = report["replies"] + report["warmup_replies"]
        return dict(run, msgs_per_s=report["msgs_per_s"],
                    cpu_us=client.cpu_s * 1e6 / replies if replies else None,
                    user_us=client.user_s * 1e6 / replies if replies else None,
                    rss_mib=client.peak_rss / 2**20, p99_us=report["latency_us"]["p99"],
                    errors=report["errors"]["total"], replies=report["replies"], report=report)
    finally:
        running.stop()


IDLE_LINE = re.compile(r"(\d+) idle connections: server RSS (\d+) KiB -> (\d+) KiB, (-?\d+) bytes per connection; "
                       r"(\d+)/(\d+) answered")


def measure_idle(load, server, settings):
    """bench/idle_connections.py with the server pinned to CPU 0, its clients to CPU 1."""
    run = {"load": load.name, "server": server.name}
    command = list(server.command)
    if command[0] == SOCKIT:
        command += ["--max-connections", str(settings.idle + 1000)]
    result = subprocess.run(["taskset", "-c", str(LOAD_CPU), sys.executable, "bench/idle_connections.py",
                             str(settings.idle), "--", "taskset", "-c", str(SERVER_CPU), *command],
                            cwd=ROOT, capture_output=True, text=True)
    match = IDLE_LINE.search(result.stdout)
    if not match:
        return dict(run, failed=f"idle_connections.py exited {result.returncode}: {result.stderr.strip()[-300:]}")
    total, before, after, per, answered, _ = (int(g) for g in match.groups())
    return dict(run, connections=total, rss_before_kib=before, rss_after_kib=after, bytes_per_conn=per,
                answered=answered, errors=total - answered)


def start_relay(server, port, backend_port, config_dir):
    """Starts a relay from `port` to `backend_port` (its config file, if any,
    written in `config_dir`) and waits until it takes connections."""
    command = [part.replace("{backend}", str(backend_port)) for part in server.command]
    if server.config:
        path = os.path.join(config_dir, "relay.cfg")
        with open(path, "w") as config:
            config.write(server.config.replace("{port}", str(port)).replace("{backend}", str(backend_port)))
        command = [part.replace("{config}", path) for part in command]
    return start(dataclasses.replace(server, command=command), port)


def relay_backend(load, port, settings):
    """The relay load's target, on the load's CPU: a sink, a source, or an echo."""
    if load.relay == "upload":
        command = [BULK, "sink", f"127.0.0.1:{port}"]
    elif load.relay == "download":
        command = [BULK, "source", f"127.0.0.1:{port}", settings.relay_size]
    else:
        command = [SOCKIT, "serve", f"tcp://127.0.0.1:{port}", "--service", "echo", "-q",
                   "--max-connections", "20000"]
    process = subprocess.Popen(["taskset", "-c", str(LOAD_CPU), *command], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{command[0]} did not listen on {port}")


def idle_pairs(port, count):
    """Opens `count` connections to `port`, each answered once (so the pair is
    made through to the target), and keeps them open; returns them."""
    held = []
    for _ in range(count):
        connection = socket.create_connection(("127.0.0.1", port), timeout=10)
        connection.sendall(b"x\n")
        if connection.recv(16) != b"x\n":
            raise RuntimeError("a relayed echo did not come back")
        held.append(connection)
    return held


def measure_relay(load, server, settings):
    """Starts the load's target and `server` relaying to it, moves the load
    through it once (or holds idle pairs), stops both."""
    run = {"load": load.name, "server": server.name}
    port, backend_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as config_dir:
        try:
            backend = relay_backend(load, backend_port, settings)
        except RuntimeError as error:
            return dict(run, failed=str(error))
        try:
            running, failed = start_relay(server, port, backend_port, config_dir)
            if failed:
                return dict(run, failed=failed)
            try:
                if load.relay == "idle":
                    before = tree_rss_bytes(running.process.pid)
                    held = idle_pairs(port, settings.relay_idle)
                    time.sleep(1)
                    after = tree_rss_bytes(running.process.pid)
                    for connection in held:
                        connection.close()
                    per = (after - before) / settings.relay_idle
                    return dict(run, bytes_per_pair=per, rss_mib=after / 2**20, errors=0)
                client = drive(running, ["taskset", "-c", str(LOAD_CPU), BULK, load.relay, f"127.0.0.1:{port}",
                                         settings.relay_size], "bulk")
                if client.failed:
                    return dict(run, failed=client.failed)
                moved, seconds = client.report["bytes"], client.report["seconds"]
                return dict(run, gb_per_s=moved / seconds / 1e9, cpu_s_per_gib=client.cpu_s / (moved / 2**30),
                            rss_mib=client.peak_rss / 2**20, errors=0)
            finally:
                running.stop()
        finally:
            os.killpg(backend.pid, signal.SIGKILL)
            backend.wait()


def milliseconds(text):
    """'5s', '500ms' or '1.5s' as milliseconds."""
    return round(float(text[:-2])) if text.endswith("ms") else round(float(text.rstrip("s")) * 1000)


def measure_chat(load, server, settings):
    """Starts a chat server, runs chat_load on CPU 1 against it once, stops it."""
    port = free_port()
    run = {"load": load.name, "server": server.name}
    running, failed = start(server, port)
    if failed:
        return dict(run, failed=failed)
    try:
        duration_ms = milliseconds(settings.duration)
        command = ["taskset", "-c", str(LOAD_CPU), CHAT_LOAD, f"127.0.0.1:{port}", *load.args,
                   "--duration-ms", str(duration_ms), "--warmup-ms", str(milliseconds(settings.warmup))]
        client = drive(running, command, "chat_load")
        if client.failed:
            return dict(run, failed=client.failed)
        report = client.report
        delivered = report["delivered"]
        return dict(run, msgs_per_s=delivered * 1000 / duration_ms,
                    cpu_us=client.cpu_s * 1e6 / delivered if delivered else None,
                    cpu_share=client.cpu_s / client.wall_s, rss_mib=client.peak_rss / 2**20, p50_us=report["p50_us"], p99_us=report["p99_us"],
                    p999_us=report["p999_us"], errors=report["expected"] - delivered, report=report)
    finally:
        running.stop()


# ---------------------------------------------------------------------------
# Running the loads


def progress(message):
    print(message, file=sys.stderr, flush=True)


def missing_needs(server):
    return [(why, install) for check, why, install in server.needs if not check()]


def describe(run):
    if "failed" in run:
        return f"failed: {run['failed']}"
    if "bytes_per_conn" in run:
        return f"{run['bytes_per_conn']:,} B per idle connection, {run['answered']:,} answered"
    if "bytes_per_pair" in run:
        return f"{run['bytes_per_pair']:,.0f} B per idle pair"
    if "gb_per_s" in run:
        return f"{run['gb_per_s']:.2f} GB/s, {run['cpu_s_per_gib']:.3f} CPU-s/GiB"
    cpu = f"{run['cpu_us']:.2f}" if run["cpu_us"] is not None else "-"
    return f"{run['msgs_per_s']:,.0f} msgs/s, {cpu} CPU-us/reply, p99 {run['p99_us']:,.0f} us, {run['errors']} errors"


def run_load(load, settings, not_measured):
    servers = []
    for server in load.servers:
        missing = missing_needs(server)
        if missing:
            not_measured.append({"load": load.name, "server": server.name, "why": missing[0][0],
                                 "hint": missing[0][1]})
        else:
            servers.append(server)
    if not servers or servers[0] is not load.servers[0]:
        progress(f"[{load.name}] skipped: its base, {load.servers[0].name}, cannot run")
        return {"load": load.name, "title": load.title, "servers": [], "rounds": []}
    rate = None
    if load.open_loop:
        rate = settings.rate
        if not rate:
            progress(f"[{load.name}] finding the rate: {servers[0].name}, closed loop")
            calibration = measure(load, servers[0], settings)
            if "failed" in calibration:
                progress(f"[{load.name}] skipped: the calibration run failed: {calibration['failed']}")
                return {"load": load.name, "title": load.title, "servers": [], "rounds": []}
            rate = max(1, round(OPEN_LOOP_SHARE * calibration["msgs_per_s"]))
    rounds = []
    for number in range(1, settings.rounds + 1):
        runs = []
        for server in servers:
            if load.relay:
                run = measure_relay(load, server, settings)
            elif load.idle:
                run = measure_idle(load, server, settings)
            elif load.chat:
                run = measure_chat(load, server, settings)
            else:
                run = measure(load, server, settings, rate)
            progress(f"[{load.name}] round {number}/{settings.rounds}: {server.name}: {describe(run)}")
            runs.append(run)
        rounds.append(runs)
    notes = {s.name: s.note for s in servers if s.note}
    if load.note:
        notes["note"] = load.note
    pairs = [(name, tcp.name, unix.name) for name, tcp, unix in load.pairs if tcp in servers and unix in servers]
    return {"load": load.name, "title": load.title, "rate": rate, "servers": [s.name for s in servers],
            "notes": notes, "rounds": rounds, "chat": load.chat, "pairs": pairs}


# ---------------------------------------------------------------------------
# Tables


def summarize(result, keys):
    """Per server: the median of each key over the rounds, the median of its
    per-round ratios to the base, and the errors over all rounds."""
    rows = []
    for i, name in enumerate(result["servers"]):
        runs = [r[i] for r in result["rounds"] if "failed" not in r[i]]
        failures = [r[i]["failed"] for r in result["rounds"] if "failed" in r[i]]
        row = {"server": name, "runs": len(runs), "failed": failures}
        for key in keys:
            values = [run[key] for run in runs if run.get(key) is not None]
            ratios = [r[i][key] / r[0][key] for r in result["rounds"]
                      if "failed" not in r[i] and "failed" not in r[0] and r[i].get(key) is not None
                      and r[0].get(key)]
            row[key] = statistics.median(values) if values else None
            row[key + "_ratio"] = statistics.median(ratios) if ratios else None
        row["errors"] = sum(run["errors"] for run in runs)
        rows.append(row)
    return rows


def rounds_text(settings):
    return f"{settings.rounds} round{'s' * (settings.rounds != 1)}"


def cell(value, spec):
    return "-" if value is None else format(value, spec)


def print_table(result, settings):
    load_line = f"== {result['load']}: {result['title']}"
    if result.get("rate"):
        load_line += f", {result['rate']:,} msgs/s offered to every server"
    print(load_line)
    if not result["servers"]:
        print("   not measured (see below)\n")
        return
    idle = result["load"].startswith("idle")
    if result["load"] in ("relay-upload", "relay-download"):
        columns = [("gb_per_s", "GB/s", ".2f"), ("cpu_s_per_gib", "CPU-s/GiB", ".3f"),
                   ("rss_mib", "peak RSS MiB", ".1f")]
        print(f"   {settings.relay_size} per run, {rounds_text(settings)}; relay on CPU {SERVER_CPU}, the client "
              f"and the target (bench/src/bin/bulk) on CPU {LOAD_CPU}; CPU is the relay's")
    elif result["load"] == "relay-idle-1000":
        columns = [("bytes_per_pair", "RSS B/idle pair", ",.0f"), ("rss_mib", "RSS MiB", ".1f")]
        print(f"   {settings.relay_idle:,} pairs, {rounds_text(settings)}; relay on CPU {SERVER_CPU}, its target "
              f"(sockit serve --service echo) on CPU {LOAD_CPU}")
    elif idle:
        columns = [("bytes_per_conn", "RSS B/idle conn", ",.0f")]
        print(f"   {settings.idle:,} connections, {rounds_text(settings)}; "
              f"server on CPU {SERVER_CPU}, clients on CPU {LOAD_CPU}")
    elif result.get("chat"):
        columns = [("msgs_per_s", "deliveries/s", ",.0f"), ("cpu_us", "CPU-us/delivery", ".2f"),
                   ("cpu_share", "server CPU share", ".2f"), ("rss_mib", "peak RSS MiB", ".1f"),
                   ("p50_us", "p50 us", ",.0f"), ("p99_us", "p99 us", ",.0f"), ("p999_us", "p99.9 us", ",.0f")]
        print(f"   {rounds_text(settings)} of {settings.duration} after {settings.warmup} warm-up; "
              f"server on CPU {SERVER_CPU}, chat_load on CPU {LOAD_CPU}; errors are deliveries missing")
    else:
        columns = [("msgs_per_s", "msgs/s", ",.0f"), ("cpu_us", "CPU-us/reply", ".2f"),
                   ("rss_mib", "peak RSS MiB", ".1f"), ("p99_us", "p99 us", ",.0f")]
        print(f"   {rounds_text(settings)} of {settings.duration} after {settings.warmup} warm-up; "
              f"server on CPU {SERVER_CPU}, sockit bench on CPU {LOAD_CPU}")
    rows = summarize(result, [key for key, _, _ in columns])
    width = max(len(row["server"]) for row in rows) + 7
    header = f"{'server':{width}}" + "".join(f" {title:>{max(len(title), 9)}} {'x base':>6}"
                                             for _, title, _ in columns) + f" {'errors':>7}"
    print(header)
    for i, row in enumerate(rows):
        name = row["server"] + (" (base)" if i == 0 else "")
        line = f"{name:{width}}"
        if not row["runs"]:
            print(f"{line} not measured: {row['failed'][0]}")
            continue
        for key, title, spec in columns:
            line += f" {cell(row[key], spec):>{max(len(title), 9)}} {cell(row[key + '_ratio'], '.2f'):>6}"
        line += f" {row['errors']:>7,}"
        if row["failed"]:
            line += f"  ({len(row['failed'])} failed: {row['failed'][0]})"
        print(line)
    for name, tcp, unix in result.get("pairs", []):
        print(f"   {name} over Unix / over TCP: {pair_text(result, tcp, unix)}")
    for name, note in result.get("notes", {}).items():
        print(f"   {name}: {note}")
    print()


def pair_text(result, tcp, unix):
    """The median and range of the per-round Unix/TCP msgs/s ratios of one
    server, and the CPU per reply of each, user-space and kernel."""
    servers = result["servers"]
    runs = [(r[servers.index(tcp)], r[servers.index(unix)]) for r in result["rounds"]]
    runs = [(t, u) for t, u in runs if "failed" not in t and "failed" not in u]
    if not runs:
        return "not measured"
    ratios = [u["msgs_per_s"] / t["msgs_per_s"] for t, u in runs]

    def split(side):
        cpu = statistics.median(run[side]["cpu_us"] for run in runs)
        user = statistics.median(run[side]["user_us"] for run in runs)
        return f"{cpu:.2f} ({user:.2f} user + {cpu - user:.2f} kernel)"
    return (f"{statistics.median(ratios):.2f} x msgs/s (rounds {min(ratios):.2f} to {max(ratios):.2f}); "
            f"CPU-us/reply {split(1)} over Unix, {split(0)} over TCP")


# ---------------------------------------------------------------------------


def parse_args(all_loads):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    names = [load.name for load in all_loads]
    parser.add_argument("--loads", help=f"comma-separated, or 'all' (default: all but idle-19000): {','.join(names)}")
    parser.add_argument("--rounds", type=int, help="A B A B ... rounds (default 3; --quick 1)")
    parser.add_argument("--duration", help="measured time per run (default 5s; --quick 1s)")
    parser.add_argument("--warmup", help="unmeasured load before each run (default 1s; --quick 500ms)")
    parser.add_argument("--rate", type=int, help="offered msgs/s of the open-loop load tcp-echo-1000 "
                        f"(default: {OPEN_LOOP_SHARE * 100:.0f}%% of the base's closed-loop msgs/s there)")
    parser.add_argument("--idle", type=int, default=IDLE_CONNECTIONS, help="connections of idle-19000")
    parser.add_argument("--relay-size", default=RELAY_SIZE, help=f"bytes per relay-upload/-download run "
                        f"(default {RELAY_SIZE}; K, M, G)")
    parser.add_argument("--relay-idle", type=int, default=RELAY_IDLE_PAIRS, help="pairs of relay-idle-1000")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 round of 1 s per server")
    parser.add_argument("--json", metavar="FILE", help="also save every run's raw figures here")
    parser.add_argument("--list", action="store_true", help="print the loads and their servers, and exit")
    parser.add_argument("--servers", metavar="TEXT,...", help="measure only the servers whose names contain one "
                        "of these (the base always runs: the ratios need it)")
    parser.add_argument("--before", metavar="SOCKIT", help="an older build of sockit: each `sockit serve` row "
                        "gets a twin run with this binary (the load client stays the current build)")
    args = parser.parse_args()
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.duration = args.duration or ("1s" if args.quick else "5s")
    args.warmup = args.warmup or ("500ms" if args.quick else "1s")
    if args.loads in (None, "all"):
        args.loads = [n for n in names if args.loads == "all" or not n.startswith("idle")]
    else:
        args.loads = [name for group in args.loads.split(",")
                      for name in ([n for n in names if n.startswith("relay-")] if group == "relay" else [group])]
        unknown = [n for n in args.loads if n not in names]
        if unknown:
            parser.error(f"unknown loads {', '.join(unknown)}; known: {', '.join(names)}")
    return args


def add_before(all_loads, binary):
    """Beside every `sockit serve` server, the same command run by `binary`."""
    for load in all_loads:
        twins = []
        for server in load.servers:
            twins.append(server)
            if server.command[0] == SOCKIT:
                twins.append(dataclasses.replace(server, name=f"{server.name} [before: {binary}]",
                                                 command=[binary, *server.command[1:]],
                                                 needs=[*server.needs, (have_file(binary), f"{binary} not built",
                                                         "build the older commit in a worktree")]))
        load.servers = twins


def raise_descriptor_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends the listing quietly
    all_loads = loads()
    settings = parse_args(all_loads)
    if settings.before:
        add_before(all_loads, os.path.abspath(settings.before))
    if settings.servers:
        wanted = settings.servers.split(",")
        for load in all_loads:
            load.servers = [s for i, s in enumerate(load.servers) if i == 0 or any(w in s.name for w in wanted)]
    if settings.list:
        for load in all_loads:
            print(f"{load.name}: {load.title}")
            for i, server in enumerate(load.servers):
                print(f"    {server.name}{' (base)' if i == 0 else ''}")
        return
    if len(os.sched_getaffinity(0)) < 2 or not {SERVER_CPU, LOAD_CPU} <= os.sched_getaffinity(0):
        sys.exit(f"needs CPUs {SERVER_CPU} and {LOAD_CPU}: the server and the load never share a core")
    # The harness's own sampling stays off the server's core.
    os.sched_setaffinity(0, {LOAD_CPU})
    if not os.path.exists(os.path.join(ROOT, SOCKIT)):
        sys.exit(f"{SOCKIT} not built: {BUILD}")
    descriptors = raise_descriptor_limit()
    not_measured, results = [], []
    for load in (l for l in all_loads if l.name in settings.loads):
        if load.idle and descriptors < settings.idle + 1000:
            not_measured.append({"load": load.name, "server": "all", "why": f"ulimit -n is {descriptors}",
                                 "hint": f"raise it: ulimit -n {settings.idle + 1000}"})
            continue
        results.append(run_load(load, settings, not_measured))
    for result in results:
        print_table(result, settings)
    print("RSS is the peak of the sum of VmRSS over the server's processes, sampled every "
          f"{RSS_EVERY_S} s during the run (forking servers: their whole process tree).")
    print("CPU-us/reply: utime+stime of the server's process tree (and of its reaped children) "
          "over the run, warm-up included, per reply.")
    if not_measured:
        print("\nNot measured:")
        seen = set()
        for item in not_measured:
            key = (item["server"], item["why"])
            if key not in seen:
                seen.add(key)
                loads_of = sorted({i["load"] for i in not_measured if (i["server"], i["why"]) == key})
                print(f"  {item['server']} ({', '.join(loads_of)}): {item['why']}; {item['hint']}")
    if settings.json:
        with open(settings.json, "w") as out:
            json.dump({"settings": {k: v for k, v in vars(settings).items() if k != "json"},
                       "results": results, "not_measured": not_measured}, out, indent=1)


if __name__ == "__main__":
    main()
