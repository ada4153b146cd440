"""TCP forwarders in the root network namespace, so that other namespaces reach 127.0.0.1.

PostgreSQL and Redis listen on the machine's loopback, which no other network namespace can
route to. Each argument LISTEN_HOST:PORT=TARGET_HOST:PORT opens a listener that copies bytes
both ways to the target. "ready" on stdout says every listener is open.

    python -m multihost.forwarder 10.231.77.1:5432=127.0.0.1:5432 10.231.77.1:6379=127.0.0.1:6379
"""

from __future__ import annotations

import asyncio
import contextlib
import sys


def address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            writer.close()


def relay(target: tuple[str, int]) -> object:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    return handle


async def serve(pairs: list[tuple[tuple[str, int], tuple[str, int]]]) -> None:
    servers = [
        await asyncio.start_server(relay(target), *listen)  # type: ignore[arg-type]
        for listen, target in pairs
    ]
    print("ready", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


def main(argv: list[str]) -> None:
    pairs = []
    for arg in argv:
        listen, _, target = arg.partition("=")
        pairs.append((address(listen), address(target)))
    asyncio.run(serve(pairs))


if __name__ == "__main__":
    main(sys.argv[1:])
