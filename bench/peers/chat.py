#!/usr/bin/env python3
"""A chat room in asyncio streams, the plain way a Python user writes it,
speaking examples/chat.rs's protocol byte for byte: the first line is a name
N; each line L after it goes to every other client as `N: L`; the others
hear `* N joined` and `* N left`. The peer of the harness's chat load.

    python3 bench/peers/chat.py PORT
"""

import asyncio
import sys

BACKLOG = 1024


class Room:
    def __init__(self):
        self.writers = set()

    def send(self, line, skip=None):
        for writer in self.writers:
            if writer is not skip:
                writer.write(line)


async def client(room, reader, writer):
    try:
        name = (await reader.readline()).rstrip(b"\n")
        if not name:
            return
        room.writers.add(writer)
        room.send(b"* " + name + b" joined\n", skip=writer)
        while line := await reader.readline():
            room.send(name + b": " + line.rstrip(b"\n") + b"\n", skip=writer)
            await writer.drain()
        room.writers.discard(writer)
        room.send(b"* " + name + b" left\n")
    except ConnectionError:
        room.writers.discard(writer)
    finally:
        writer.close()


async def main(port):
    room = Room()
    server = await asyncio.start_server(lambda r, w: client(room, r, w), "127.0.0.1", port, backlog=BACKLOG)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
