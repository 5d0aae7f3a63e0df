"""What an upgrade (SIGUSR2) spends handing the memory broker to the new master.

The old master writes the state in the step before its exec (clients wait that
long for nothing), the new master reads it before its workers start (new
connections wait that long in the listen backlog). This fills a broker with
``--channels`` channels of ``--history`` publications of ``--size`` bytes each
and times both sides and the file's size.

    python bench/handover.py [--channels 1000] [--history 100] [--size 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from fastws.hub.broker import ClientInfo, PublishOptions, handover
from fastws.hub.broker.local import BrokerHost
from fastws.hub.broker.memory import MemoryBroker


async def measure(channels: int, history: int, size: int) -> None:
    old = BrokerHost(MemoryBroker())
    await old.start()
    options = PublishOptions(history_size=history, history_ttl=300)
    data = b"x" * size
    for c in range(channels):
        for _ in range(history):
            await old.broker.publish(f"chat:{c}", data, None, options)
        await old.broker.add_presence(f"chat:{c}", ClientInfo(f"client-{c}", f"user-{c}"))
    started = time.perf_counter()
    fd = handover.write(old.state())
    written = time.perf_counter() - started
    file_size = os.fstat(fd).st_size
    new = BrokerHost(MemoryBroker())
    await new.start()
    started = time.perf_counter()
    new.restore(handover.read(fd), ())
    read = time.perf_counter() - started
    assert new.broker.sizes() == old.broker.sizes()
    print(
        f"{channels} channels x {history} publications of {size} B: "
        f"file {file_size / 1e6:.1f} MB, written in {written * 1000:.0f} ms, "
        f"read and taken over in {read * 1000:.0f} ms"
    )
    await old.close()
    await new.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=1000)
    parser.add_argument("--history", type=int, default=100)
    parser.add_argument("--size", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(measure(args.channels, args.history, args.size))


if __name__ == "__main__":
    main()
