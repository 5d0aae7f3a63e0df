"""A TCP proxy that holds every chunk for ``delay`` seconds each way: latency on a link
where the kernel offers no ``netem``.

Each direction is a queue of (due time, bytes) read as fast as the peer sends and written
when due, so the delay is added once per chunk, not once per chunk in flight, and order is
kept. ``delay`` may change while connections are open (a link that slows down); a chunk
keeps the due time it got when it arrived. Closing one side closes the other once what was
read before has been written.
"""

from __future__ import annotations

import asyncio
import contextlib
import time


class DelayProxy:
    """Listen on ``host``:``port`` (0: any free one), forward to ``target``, ``delay`` each way."""

    def __init__(self, target: tuple[str, int], delay: float, host: str = "127.0.0.1") -> None:
        self.target = target
        self.delay = delay
        self.host = host
        self.port = 0
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task] = set()

    async def start(self) -> DelayProxy:
        self.server = await asyncio.start_server(self.accept, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self.tasks.add(task)
        try:
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
            except OSError:
                writer.close()
                return
            await asyncio.gather(
                self.pipe(reader, upstream_writer), self.pipe(upstream_reader, writer)
            )
        finally:
            self.tasks.discard(task)

    async def pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def receive() -> None:
            with contextlib.suppress(OSError):
                while chunk := await reader.read(65536):
                    queue.put_nowait((time.monotonic() + self.delay, chunk))
            queue.put_nowait((time.monotonic() + self.delay, b""))

        receiving = asyncio.create_task(receive())
        try:
            while True:
                due, chunk = await queue.get()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if not chunk:
                    break
                writer.write(chunk)
                await writer.drain()
        except OSError:
            pass
        finally:
            receiving.cancel()
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await receiving

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()

    async def __aenter__(self) -> DelayProxy:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


__all__ = ["DelayProxy"]
