#!/usr/bin/env bash
# Instructions per echo reply, counted by callgrind (repeatable whatever else
# the machine is doing): the server runs under valgrind on CPU 0, `sockit
# bench` sends N echo requests of 64 B over CONNS connections from CPU 1, and
# the server's total instructions are divided by the replies.
#
#   cargo build --release --workspace --bins
#   bench/callgrind_echo.sh sockit 50 200000 target/release/sockit serve tcp://127.0.0.1:PORT --service echo -q
#   bench/callgrind_echo.sh tokio 50 200000 target/release/tokio_echo 127.0.0.1:PORT
#
# PORT in the server's command line is replaced by a free port. Prints one
# line: NAME c=CONNS replies=R Ir=TOTAL perreply=IR_PER_REPLY. From the
# environment: SERVICE=greet for another service than echo, ENDPOINT for
# another endpoint than tcp://127.0.0.1:PORT (PORT replaced there too), and
# KEEP=FILE to keep the callgrind profile in FILE. Greet over Unix:
#
#   SERVICE=greet ENDPOINT=unix:@cg-PORT bench/callgrind_echo.sh sockit 50 200000 \
#       target/release/sockit serve unix:@cg-PORT --service greet -q
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1 conns=$2 n=$3
shift 3
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cmd=("${@//PORT/$port}")
endpoint=${ENDPOINT:-tcp://127.0.0.1:PORT}
endpoint=${endpoint//PORT/$port}
work=$(mktemp -d)
# KEEP=FILE keeps the profile there, to read with callgrind_annotate.
trap 'if [ -n "${KEEP:-}" ]; then cp "$work/out" "$KEEP"; fi; rm -rf "$work"' EXIT
taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$work/out" "${cmd[@]}" >"$work/server.log" 2>&1 &
server=$!
if [[ $endpoint == tcp://* ]]; then
    for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
else
    sleep 3 # valgrind's start
fi
sleep 0.5
taskset -c 1 target/release/sockit bench "$endpoint" --service "${SERVICE:-echo}" -n "$n" -c "$conns" --json >"$work/bench.json"
kill -INT "$server"
sleep 1
kill -TERM "$server" 2>/dev/null || true
wait "$server" || true
replies=$(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))['replies'])" "$work/bench.json")
# Whole, then searched: `grep -m1` on the pipe would stop callgrind_annotate
# early, and pipefail would end the script before it prints.
callgrind_annotate "$work/out" >"$work/annotated" 2>/dev/null
ir=$(grep -m1 'PROGRAM TOTALS' "$work/annotated" | awk '{print $1}' | tr -d ,)
echo "$name c=$conns replies=$replies Ir=$ir perreply=$(python3 -c "print(round($ir / $replies))")"
