#!/usr/bin/env python3
"""Python echo servers for the side-by-side harness (BENCH.md's peers), each
the plain way a Python user would write it, on loopback TCP with TCP_NODELAY
and a listen backlog of 1024 (as tokio's default):

    python3 bench/peers/echo.py --kind threads PORT   # socketserver.ThreadingTCPServer
    python3 bench/peers/echo.py --kind asyncio PORT   # asyncio streams
    python3 bench/peers/echo.py --kind uvloop PORT    # asyncio streams on uvloop (pip install uvloop)
"""

import argparse
import asyncio
import socket
import socketserver

BACKLOG = 1024
READ_SIZE = 65536


class EchoHandler(socketserver.BaseRequestHandler):
    """One thread per connection: recv, then sendall what came."""

    def setup(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self):
        while data := self.request.recv(READ_SIZE):
            self.request.sendall(data)


class ThreadingEchoServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = BACKLOG


def serve_threads(port):
    with ThreadingEchoServer(("127.0.0.1", port), EchoHandler) as server:
        server.serve_forever()


async def echo(reader, writer):
    """asyncio streams set TCP_NODELAY themselves."""
    try:
        while data := await reader.read(READ_SIZE):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def serve_asyncio(port):
    server = await asyncio.start_server(echo, "127.0.0.1", port, backlog=BACKLOG)
    async with server:
        await server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=["threads", "asyncio", "uvloop"], required=True)
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    if args.kind == "threads":
        serve_threads(args.port)
    elif args.kind == "asyncio":
        asyncio.run(serve_asyncio(args.port))
    else:
        import uvloop

        uvloop.run(serve_asyncio(args.port))


if __name__ == "__main__":
    main()
