"""The Protobuf wire and binary publication data, across the three encodings.

Binary data published over any wire reaches Protobuf and MessagePack
subscribers as bytes and JSON subscribers as ``b64data``; JSON data reaches
Protobuf subscribers as JSON text marked ``json``. The schema must match its
generated module and docs/protocol.md.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from fastws.hub.broker import ClientInfo, Publication
from fastws.hub.commands import CLIENT_COMMANDS
from fastws.hub.messages import join_leave_push, publication_push
from fastws.hub.protocol import hub_pb2 as pb
from fastws.hub.protocol.data import decode, encode
from fastws.hub.protocol.wire import JSON, MSGPACK, PROTOBUF, PROTOBUF_CLIENT, WIRES
from tests.support.hub import SECRET, HubClient, api, running_hub, token
from tests.support.loops import run_async

ROOT = Path(__file__).resolve().parents[2]
PROTO = "fastws/hub/protocol/hub.proto"
BLOB = bytes(range(256))  # every byte value, including the marker 0x00 first


# -- the schema ------------------------------------------------------------------------


def test_generated_module_matches_the_schema(tmp_path: Path) -> None:
    """``make proto`` was run after the last change of hub.proto."""
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I.", f"--python_out={tmp_path}", PROTO],
        cwd=ROOT,
        check=True,
    )
    generated = (tmp_path / PROTO).with_name("hub_pb2.py").read_bytes()
    checked_in = (ROOT / PROTO).with_name("hub_pb2.py").read_bytes()
    assert generated == checked_in, "hub_pb2.py is stale: run `make proto`"


def documented_commands() -> list[str]:
    text = (ROOT / "docs/protocol.md").read_text()
    section = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^### (\w+)$", section, re.M)


def documented_pushes() -> dict[str, dict]:
    """The example of each push kind in docs/protocol.md, as a dict."""
    text = (ROOT / "docs/protocol.md").read_text()
    section = text.split("\n## Pushes\n", 1)[1].split("\n## ", 1)[0]
    pushes = {}
    for line in re.findall(r'^\{"push": .*\}$', section, re.M):
        example = orjson.loads(line.replace("ANY", "null").replace("{...}", "{}"))
        pushes[example.pop("push")] = example
    return pushes


def missing_fields(example: dict, message) -> list[str]:
    """Keys of ``example`` (nested too) that ``message`` (a descriptor) has no field for."""
    missing = []
    for key, value in example.items():
        field = message.fields_by_name.get(key)
        if field is None:
            missing.append(f"{message.name}.{key}")
        elif isinstance(value, dict) and value and field.message_type is not None:
            missing += missing_fields(value, field.message_type)
    return missing


def test_every_documented_command_and_push_is_in_the_schema() -> None:
    commands = documented_commands()
    assert set(commands) == set(CLIENT_COMMANDS) - {"connect"}, "docs and commands differ"
    requests = pb.Command.DESCRIPTOR.oneofs_by_name["params"].fields
    results = pb.Reply.DESCRIPTOR.oneofs_by_name["result"].fields
    for name, command in CLIENT_COMMANDS.items():
        request = pb.Command.DESCRIPTOR.fields_by_name[name].message_type
        assert request in [f.message_type for f in requests if f.name == name], name
        assert any(f.name == name for f in results), f"no result for {name}"
        for field in command.fields:
            assert field.name in request.fields_by_name, f"{name}.{field.name}"
    pushes = pb.Push.DESCRIPTOR.fields_by_name
    documented = documented_pushes()
    assert set(documented) == set(pushes), "docs and schema name different pushes"
    for kind, example in documented.items():
        assert not missing_fields(example, pushes[kind].message_type), kind


def test_each_wire_shows_binary_and_json_data_its_own_way() -> None:
    binary = Publication(3, "e", encode(BLOB), "u")
    text = Publication(4, "e", encode({"a": 1}), None)
    assert decode(binary.data) == BLOB and decode(text.data) == {"a": 1}

    as_json = orjson.loads(JSON.dumps(publication_push(JSON, "c", binary)))
    assert as_json == {
        "push": "pub",
        "channel": "c",
        "offset": 3,
        "b64data": base64.b64encode(BLOB).decode(),
        "info": {"user": "u"},
    }
    assert MSGPACK.loads(MSGPACK.dumps(publication_push(MSGPACK, "c", binary)))["data"] == BLOB

    reply = pb.Reply.FromString(PROTOBUF.dumps(publication_push(PROTOBUF, "c", binary)))
    assert reply.push.pub.data == BLOB and not reply.push.pub.json
    assert reply.push.pub.info.user == "u" and reply.push.pub.offset == 3
    reply = pb.Reply.FromString(PROTOBUF.dumps(publication_push(PROTOBUF, "c", text)))
    assert reply.push.pub.json and orjson.loads(reply.push.pub.data) == {"a": 1}
    assert not reply.push.pub.HasField("info")

    # A client's Protobuf wire gives the same dicts as the JSON wire, data decoded.
    for publication in (binary, text):
        read = PROTOBUF_CLIENT.loads(PROTOBUF.dumps(publication_push(PROTOBUF, "c", publication)))
        assert read["data"] == decode(publication.data)
    info = ClientInfo("c1", "ann", orjson.dumps({"name": "Ann"}))
    read = PROTOBUF_CLIENT.loads(PROTOBUF.dumps(join_leave_push(PROTOBUF, "join", "c", info)))
    assert read == {
        "push": "join",
        "channel": "c",
        "info": {"client": "c1", "user": "ann", "info": {"name": "Ann"}},
    }
    assert [wire.index for wire in WIRES] == list(range(len(WIRES)))


# -- end to end over real sockets --------------------------------------------------------------


@run_async()
async def test_binary_publications_reach_every_encoding() -> None:
    async with running_hub(api_key="key") as hub:
        proto = await HubClient.open(hub.port, protobuf=True)
        assert proto.ws.subprotocol == "fastws.protobuf"
        packed = await HubClient.open(hub.port, binary=True)
        text = await HubClient.open(hub.port)
        clients = (proto, packed, text)
        for client in clients:
            result = await client.result("subscribe", {"channel": "room:bin"})
            assert result["recovered"] is False and result["publications"] == []
        start = result["offset"]

        assert await proto.result("publish", {"channel": "room:bin", "data": BLOB}) == {
            "offset": start + 1
        }
        await packed.result("publish", {"channel": "room:bin", "data": b"\x01packed"})
        await text.result(
            "publish", {"channel": "room:bin", "b64data": base64.b64encode(b"\x00t").decode()}
        )
        await proto.result("publish", {"channel": "room:bin", "data": {"json": ["from", "pb"]}})
        status, body = await api(
            hub.port,
            "POST",
            "/api/publish",
            {"channel": "room:bin", "b64data": base64.b64encode(b"api").decode()},
        )
        assert status == 200 and body["result"]["offset"] == start + 5
        sent = [BLOB, b"\x01packed", b"\x00t", {"json": ["from", "pb"]}, b"api"]

        for client in clients:
            pushes = await client.pushes_of("pub", 5)
            assert [p["offset"] for p in pushes] == list(range(start + 1, start + 6))
            for push, data in zip(pushes, sent, strict=True):
                if client is text and isinstance(data, bytes):
                    assert "data" not in push
                    assert base64.b64decode(push["b64data"]) == data
                else:
                    assert push["data"] == data and "b64data" not in push

        # Recovery: what a Protobuf client missed comes back as bytes, exactly.
        await proto.result("unsubscribe", {"channel": "room:bin"})
        await packed.result("publish", {"channel": "room:bin", "data": b"missed"})
        result = await proto.result(
            "subscribe",
            {"channel": "room:bin", "since": {"offset": start + 4, "epoch": result["epoch"]}},
        )
        assert result["recovered"] is True
        assert [p["data"] for p in result["publications"]] == [b"api", b"missed"]
        history = await text.result("history", {"channel": "room:bin", "limit": 2, "reverse": True})
        assert [base64.b64decode(p["b64data"]) for p in history["publications"]] == [
            b"missed",
            b"api",
        ]
        for client in clients:
            await client.close()


@run_async()
async def test_protobuf_presence_errors_messages_and_disconnect() -> None:
    async with running_hub(jwt_secret=SECRET, api_key="key") as hub:
        ann_token = token(
            "ann", channels=["room:*"], publish=["room:*"], presence=["room:*"], send=["*"]
        )
        ann = await HubClient.open(hub.port, protobuf=True, token=ann_token)
        bob = await HubClient.open(
            hub.port,
            protobuf=True,
            token=token("bob", channels=["*"], presence=["*"], history=["*"], info={"name": "Bob"}),
        )
        await ann.result("subscribe", {"channel": "room:p"})
        await bob.result("subscribe", {"channel": "room:p"})
        (join,) = await ann.pushes_of("join", 1)  # ann's own join came before bob's
        if join["info"]["user"] == "ann":
            (join,) = await ann.pushes_of("join", 1)
        assert join == {
            "push": "join",
            "channel": "room:p",
            "info": {"client": bob.client_id, "user": "bob", "info": {"name": "Bob"}},
        }
        presence = await ann.result("presence", {"channel": "room:p"})
        assert presence["clients"][bob.client_id]["info"] == {"name": "Bob"}
        assert presence["clients"][ann.client_id]["user"] == "ann"

        assert (await ann.error("subscribe", {"channel": "room:p"}))[0] == 409
        assert (await ann.error("subscribe", {"channel": "other"}))[0] == 403
        assert (await ann.error("subscribe", {"channel": "bad name"}))[0] == 400
        assert (await bob.error("publish", {"channel": "room:p", "data": b"x"}))[0] == 403
        assert (await bob.error("presence", {"channel": "plain:x"}))[0] == 422
        assert (await bob.error("history", {"channel": "plain:x"}))[0] == 422

        await ann.result("send", {"user": "bob", "data": BLOB})
        (message,) = await bob.pushes_of("message", 1)
        assert message == {"push": "message", "from": "ann", "data": BLOB}

        code, _ = await ann.error("nosuch", {"x": 1})  # not in the schema: sent bare
        assert code == 404
        # A command that is not a Command message: 400 without an id, as in JSON.
        ann.ws.send_nowait(b"\xff\xff\xff")
        await ann.result("ping")
        assert ann.unsolicited and ann.unsolicited[0]["error"]["code"] == 400

        status, _ = await api(hub.port, "POST", "/api/disconnect", {"user": "bob"})
        assert status == 200
        (push,) = await bob.pushes_of("disconnect", 1)
        assert push == {
            "push": "disconnect",
            "code": 4503,
            "reason": "disconnected by the server API",
            "reconnect": False,
        }
        assert (await bob.closed())[0] == 4503
        await ann.close()


@run_async()
async def test_data_marked_json_must_be_json_and_json_binary_fields_are_exclusive() -> None:
    async with running_hub(api_key="key") as hub:
        proto = await HubClient.open(hub.port, protobuf=True)
        bad = pb.Command(id=7, publish=pb.PublishRequest(channel="room:j", data=b"{", json=True))
        proto.ws.send_nowait(bad.SerializeToString())
        await proto.result("ping")
        assert proto.unsolicited[0]["error"]["code"] == 400
        text = await HubClient.open(hub.port)
        code, message = await text.error(
            "publish", {"channel": "room:j", "data": 1, "b64data": "AA=="}
        )
        assert code == 400 and "not both" in message
        code, message = await text.error("publish", {"channel": "room:j", "b64data": "%%"})
        assert code == 400 and "base64" in message
        status, body = await api(
            hub.port, "POST", "/api/publish", {"channel": "room:j", "b64data": 5}
        )
        assert status == 400 and "b64data" in body["error"]["message"]
        for client in (proto, text):
            await client.close()


@pytest.mark.parametrize("subprotocol", ["fastws.json", "fastws.msgpack", "fastws.protobuf"])
@run_async()
async def test_client_library_sends_and_receives_bytes(subprotocol: str) -> None:
    from fastws.hub.client import Client

    async with running_hub() as hub:
        url = f"ws://127.0.0.1:{hub.port}/connection"
        async with Client(url, subprotocol=subprotocol) as client:
            sub = await client.subscribe("room:client-bytes")
            await client.publish("room:client-bytes", BLOB)
            await client.publish("room:client-bytes", {"n": 1})
            received = []
            async for pub in sub:
                received.append(pub.data)
                if len(received) == 2:
                    break
            assert received == [BLOB, {"n": 1}]
            history = await client.history("room:client-bytes")
            assert [p.data for p in history.publications] == [BLOB, {"n": 1}]
