"""A deployment: nginx (docs/nginx.conf) in front of two hub nodes on one Redis.

A client connected through nginx keeps its subscription when its node stops:
it reconnects through nginx, lands on the other node and recovers what it
missed from the history in Redis.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest

import fastws
from fastws.hub.client import Client
from tests.support.hub import http
from tests.support.hubprocess import HubProcess, hub_nodes
from tests.support.loops import run_async
from tests.support.nginx import Nginx
from tests.support.polling import until
from tests.support.redis import RedisServer


async def connections(node: HubProcess) -> int:
    status, body = await node.api("GET", "/api/v1/info")
    assert status == 200, body
    return body["result"]["connections"]


@run_async(loops=("uvloop",), timeout=120)
async def test_a_client_behind_nginx_survives_its_node_stopping(redis_server: RedisServer) -> None:
    async with hub_nodes(redis_server.url, 2) as nodes:
        nginx = Nginx([node.port for node in nodes])
        try:
            await asyncio.to_thread(nginx.start)
            received = []
            resyncs = []
            client = Client(
                f"ws://127.0.0.1:{nginx.port}/connection", backoff_base=0.05, backoff_max=0.5
            )
            await client.connect()
            sub = await client.subscribe(
                "stream:lb", on_publication=received.append, on_resync=resyncs.append
            )
            async def publish_through_nginx(i: int) -> None:
                body = orjson.dumps({"channel": "stream:lb", "data": i})
                close = (("Connection", "close"),)  # nginx would keep the connection open
                status, _, reply = await http(
                    nginx.port, "POST", "/api/v1/publish", body, close, nodes[0].api_key
                )
                assert status == 200, reply  # the HTTP API through the proxy too

            for i in range(10):
                await publish_through_nginx(i)
            await until(lambda: len(received) == 10, "10 publications", timeout=20)
            counts = [await connections(node) for node in nodes]
            assert sorted(counts) == [0, 1]
            serving, other = (nodes[0], nodes[1]) if counts[0] else (nodes[1], nodes[0])

            await serving.stop()  # SIGTERM: clients are told 1001, reconnect
            for i in range(10, 20):  # while the client finds its way to the other node
                status, reply = await other.api(
                    "POST", "/api/v1/publish", {"channel": "stream:lb", "data": i}
                )
                assert status == 200, reply
            await until(lambda: len(received) == 20, "20 publications", timeout=20)
            async def on_the_other_node() -> bool:
                return await connections(other) == 1

            await until(
                on_the_other_node,
                "the client on the other node",
                timeout=20,
            )
            assert client.reconnects >= 1
            assert [p.offset for p in received] == list(range(1, 21))
            assert [p.data for p in received] == list(range(20))
            assert sub.recovered is True and resyncs == []
            await client.close()
            # nginx forwards the browser's Host, so a page of its own address may connect.
            url = f"ws://127.0.0.1:{nginx.port}/connection"
            async with fastws.connect(url, origin=f"http://127.0.0.1:{nginx.port}"):
                pass
            with pytest.raises(fastws.HandshakeError) as refused:
                await fastws.connect(url, origin="https://elsewhere.example")
            assert refused.value.status == 403
        except BaseException:
            print(f"--- nginx ---\n{nginx.log()}")
            raise
        finally:
            await asyncio.to_thread(nginx.cleanup)
