"""The hub's three encodings side by side: a ``pub`` push encoded and decoded.

``python -m bench.hub_codec_report`` runs this file and prints the tables of
docs/benchmarks.md (time per message, bytes on the wire); ``pytest
bench/test_hub_codec_bench.py --benchmark-only`` runs it alone.

- encode: what the hub does once per publication and encoding: the push built
  from the publication as carried (``messages.publication_push``) and
  serialised by the hub's ``Wire``: orjson, msgpack, Protobuf (upb). Also
  Protobuf into one reused message (``Clear`` then fill: the "object pool").
- decode: what a receiver does: from the frame's payload to the application's
  values, data included (a JSON payload parsed). Protobuf twice: the generated
  class alone (``Reply.FromString``, data parsed when marked JSON), and the
  Python client's dict layer (``PROTOBUF_CLIENT.loads``).

Payloads: a JSON object whose JSON text is 64 B, 300 B (chat-sized) or 16 KiB,
and binary data of the same sizes (JSON clients get it as base64 ``b64data``).
"""

from __future__ import annotations

import orjson
import pytest

from fastws.hub.broker import Publication
from fastws.hub.messages import publication_push
from fastws.hub.protocol import hub_pb2 as pb
from fastws.hub.protocol import protobuf
from fastws.hub.protocol.data import encode
from fastws.hub.protocol.wire import JSON, MSGPACK, PROTOBUF, PROTOBUF_CLIENT

SIZES = {"64 B": 64, "300 B": 300, "16 KiB": 16384}
CHANNEL = "chat:lobby"
WIRES = {"json": JSON, "msgpack": MSGPACK, "protobuf": PROTOBUF}


def json_payload(size: int) -> dict:
    """A chat-like object whose compact JSON text is exactly ``size`` bytes."""
    base = {"user": "alice", "room": "lobby", "ts": 1733300000123, "text": ""}
    padding = size - len(orjson.dumps(base))
    value = {**base, "text": "hello, world! " * (padding // 14 + 1)}
    value["text"] = value["text"][:padding]
    assert len(orjson.dumps(value)) == size
    return value


def publication(kind: str, size: int) -> Publication:
    value = json_payload(size) if kind == "json" else bytes(i * 7 % 251 for i in range(size))
    return Publication(12345, "9c1e04aa", encode(value), "alice")


def push_frame(codec: str, kind: str, size: int) -> bytes:
    """The message as the hub sends it (the WebSocket payload, without the frame header)."""
    wire = WIRES[codec]
    return wire.dumps(publication_push(wire, CHANNEL, publication(kind, size)))


def _pooled_encoder(p: Publication):
    """Protobuf into one message kept across calls: the object-pool variant."""
    reply = pb.Reply()

    def encode_pooled() -> bytes:
        reply.Clear()
        protobuf._pub_push(reply, publication_push(PROTOBUF, CHANNEL, p))
        return reply.SerializeToString()

    return encode_pooled


ENCODERS = ["json", "msgpack", "protobuf", "protobuf-pooled"]
DECODERS = ["json", "msgpack", "protobuf", "protobuf-client"]


def _decode_raw_protobuf(payload: bytes):
    pub = pb.Reply.FromString(payload).push.pub
    return orjson.loads(pub.data) if pub.json else pub.data


def decoder(codec: str):
    if codec == "json":
        return orjson.loads
    if codec == "msgpack":
        return MSGPACK.loads
    if codec == "protobuf":
        return _decode_raw_protobuf
    if codec == "protobuf-client":
        return PROTOBUF_CLIENT.loads
    raise AssertionError(codec)


def _info(benchmark, op: str, codec: str, kind: str, label: str, size: int) -> None:
    wire_codec = "protobuf" if codec.startswith("protobuf") else codec
    benchmark.group = f"{op} {kind} {label}"
    benchmark.extra_info.update(
        kind=op,
        impl=codec,
        payload=kind,
        label=label,
        size=size,
        wire_bytes=len(push_frame(wire_codec, kind, size)),
    )


@pytest.mark.parametrize("size", list(SIZES.values()), ids=list(SIZES))
@pytest.mark.parametrize("kind", ["json", "binary"])
@pytest.mark.parametrize("codec", ENCODERS)
def test_encode(benchmark, codec: str, kind: str, size: int) -> None:
    label = next(name for name, n in SIZES.items() if n == size)
    _info(benchmark, "encode", codec, kind, label, size)
    p = publication(kind, size)
    if codec == "protobuf-pooled":
        run = _pooled_encoder(p)
    else:
        wire = WIRES[codec]

        def run() -> bytes:
            return wire.dumps(publication_push(wire, CHANNEL, p))

    assert run() == push_frame(codec.split("-")[0], kind, size)
    benchmark(run)


@pytest.mark.parametrize("size", list(SIZES.values()), ids=list(SIZES))
@pytest.mark.parametrize("kind", ["json", "binary"])
@pytest.mark.parametrize("codec", DECODERS)
def test_decode(benchmark, codec: str, kind: str, size: int) -> None:
    label = next(name for name, n in SIZES.items() if n == size)
    _info(benchmark, "decode", codec, kind, label, size)
    payload = push_frame(codec.split("-")[0], kind, size)
    benchmark(decoder(codec), payload)
