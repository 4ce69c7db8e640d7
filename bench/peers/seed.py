#!/usr/bin/env python3
"""Runs one of the seed's programs unchanged, as a peer for the harness.

    python3 bench/peers/seed.py [--no-sleep] tcp_server.py|udp_server.py

The seed's file is executed as it is (runpy), from $SOCKIT_SEED_DIR or
../shared/seed beside the repository. Two things are patched around it, not in
it: SO_REUSEADDR is set before its `bind` (the seed binds fixed ports, 8000
and 9000, which may sit in TIME_WAIT after earlier runs), and with
--no-sleep `time.sleep` does nothing, which removes the seed TCP server's one
second pause per message.
"""

import argparse
import os
import runpy
import socket
import time


def seed_dir():
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "seed")
    return os.environ.get("SOCKIT_SEED_DIR", default)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-sleep", action="store_true", help="make time.sleep a no-op")
    parser.add_argument("program", choices=["tcp_server.py", "udp_server.py"])
    args = parser.parse_args()

    bind = socket.socket.bind

    def bind_reusing_address(sock, address):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        return bind(sock, address)

    socket.socket.bind = bind_reusing_address
    if args.no_sleep:
        time.sleep = lambda seconds: None
    runpy.run_path(os.path.join(seed_dir(), args.program), run_name="__main__")


if __name__ == "__main__":
    main()
