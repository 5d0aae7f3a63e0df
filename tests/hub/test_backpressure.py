"""A hub client that sends commands and never reads its replies cannot make the hub
buffer them: the hub stops reading from it, whatever ``max_send_buffer`` allows.

The rate limit is lifted so that only backpressure stands between the flood and
the hub's memory.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import orjson

from fastws.codec import OP_TEXT, build_frame
from tests.support.flood import FloodingPeer, rss_bytes
from tests.support.hubprocess import HubProcess, dev_token

FLOOD = 50 << 20


def commands(method: str) -> Iterator[bytes]:
    for n in itertools.count(2):
        command = {"id": n, "method": method}
        yield build_frame(OP_TEXT, orjson.dumps(command), mask=True)


def test_hub_stops_reading_from_a_client_that_does_not_read() -> None:
    unlimited = ("--command-rate", "1000000000", "--command-burst", "1000000000")
    with HubProcess("--max-send-buffer", str(256 << 20), *unlimited) as hub:
        peer = FloodingPeer(hub.port, "/connection", "Sec-WebSocket-Protocol: fastws.json\r\n")
        connect = {"id": 1, "method": "connect", "params": {"token": asyncio.run(dev_token(hub.port, "ann"))}}
        peer.send(build_frame(OP_TEXT, orjson.dumps(connect), mask=True))
        assert "result" in orjson.loads(peer.read(1)[0])
        before = rss_bytes(hub.process.pid)
        sent = peer.send_until_stalled(commands("ping"), FLOOD)
        grown = rss_bytes(hub.process.pid) - before
        assert peer.sent < FLOOD // 2, f"the hub read {peer.sent >> 20} MiB from a client that does not read"
        assert grown < 12 << 20, f"the hub grew by {grown >> 20} MiB"
        replies = [orjson.loads(m) for m in peer.read(1 + sent)[1:]]
        assert [r["id"] for r in replies] == list(range(2, 2 + sent))
        peer.close()
