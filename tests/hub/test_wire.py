"""The two encodings: MessagePack and JSON clients on one channel, subprotocol choice."""

from __future__ import annotations

import orjson
import pytest

from fastws.hub.broker import Publication
from fastws.hub.messages import publication_push
from fastws.hub.protocol import codes
from fastws.hub.protocol.wire import JSON, MSGPACK, encode_data
from tests.support.hub import HubClient, running_hub
from tests.support.loops import run_async


@run_async()
async def test_msgpack_round_trip_with_json_clients() -> None:
    async with running_hub() as hub:
        packed = await HubClient.open(hub.port, binary=True)
        assert packed.ws.subprotocol == "fastws.msgpack"
        text = await HubClient.open(hub.port)
        assert text.ws.subprotocol == "fastws.json"
        for client in (packed, text):
            await client.result("subscribe", {"channel": "plain:mix"})
        data = {"text": "héllo", "n": [1, 2.5, None, True], "nested": {"k": "v"}}
        assert await packed.result("publish", {"channel": "plain:mix", "data": data}) == {
            "offset": 1
        }
        assert await text.result("publish", {"channel": "plain:mix", "data": "from json"}) == {
            "offset": 2
        }
        for client in (packed, text):
            first, second = await client.push(), await client.push()
            assert first["data"] == data and first["offset"] == 1
            assert second["data"] == "from json" and second["offset"] == 2
        history = await packed.result("history", {"channel": "room:mix", "limit": 0})
        assert history["publications"] == [] and history["offset"] == 0
        code, _ = await packed.error("history", {"channel": "plain:mix"})  # plain:* keeps none
        assert code == codes.NOT_AVAILABLE
        # Binary data is a bin value at the top: deeper down it has no JSON form, refused.
        code, message = await packed.error(
            "publish", {"channel": "plain:mix", "data": {"k": b"\x00"}}
        )
        assert code == 400 and "JSON" in message
        for client in (packed, text):
            await client.close()


@run_async()
async def test_no_subprotocol_means_json_and_the_client_order_wins() -> None:
    async with running_hub() as hub:
        bare = await HubClient.open(hub.port, subprotocols=())
        assert bare.ws.subprotocol is None
        assert (await bare.result("ping")) == {}
        both = await HubClient.open(
            hub.port, binary=True, subprotocols=("fastws.msgpack", "fastws.json")
        )
        assert both.ws.subprotocol == "fastws.msgpack"
        unknown_first = await HubClient.open(hub.port, subprotocols=("other", "fastws.json"))
        assert unknown_first.ws.subprotocol == "fastws.json"
        for client in (bare, both, unknown_first):
            await client.close()


def test_json_push_embeds_the_published_bytes() -> None:
    data = encode_data({"a": [1, "x"]})
    publication = Publication(7, "e", data, "u")
    frame_json = JSON.dumps(publication_push(JSON, "c", publication))
    assert data in frame_json
    assert orjson.loads(frame_json) == {
        "push": "pub",
        "channel": "c",
        "offset": 7,
        "data": {"a": [1, "x"]},
        "info": {"user": "u"},
    }
    assert MSGPACK.loads(MSGPACK.dumps(publication_push(MSGPACK, "c", publication))) == (
        orjson.loads(frame_json)
    )


def test_encode_data_refuses_what_json_cannot_hold() -> None:
    for value in ({"nested": b"bytes"}, {1: "non-string key"}, 1 << 70, object()):
        with pytest.raises(codes.HubError) as caught:
            encode_data(value)
        assert caught.value.code == 400
