"""The three encodings of the hub protocol: JSON text frames, MessagePack and Protobuf
binary frames.

Publication data travels through brokers and history as encoded once when
published (``fastws.hub.protocol.data``: JSON bytes, or binary bytes behind a
marker). Each wire shows the two kinds its own way, once per publication and
not once per receiver:

- JSON embeds JSON bytes as they are (``orjson.Fragment``) under ``data``, and
  gives binary data as a base64 string under ``b64data`` instead;
- MessagePack decodes JSON bytes once, and gives binary data as ``bin``;
- Protobuf carries both as ``bytes``, with ``json: true`` on JSON text.

Protobuf frames are read and written through the same dict shapes as the two
others (``fastws.hub.protocol.protobuf``), so the command layer sees one
shape whatever the wire. Its messages differ by direction: the hub reads
``Command`` and writes ``Reply``, a client the reverse, hence ``client``: the
wire a client uses for a subprotocol.
"""

from __future__ import annotations

import base64
from typing import Any

import msgpack
import orjson

from fastws.codec import OP_BINARY, OP_TEXT
from fastws.connection import prebuild
from fastws.hub.protocol import data as hub_data
from fastws.hub.protocol import protobuf

JSON_SUBPROTOCOL = "fastws.json"
MSGPACK_SUBPROTOCOL = "fastws.msgpack"
PROTOBUF_SUBPROTOCOL = "fastws.protobuf"
SUBPROTOCOLS = (JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL, PROTOBUF_SUBPROTOCOL)


class Wire:
    """One encoding: how commands are read and replies and pushes written."""

    name = ""
    opcode = OP_TEXT
    index = 0  # position in per-encoding caches of prebuilt frames

    @property
    def client(self) -> Wire:
        """The wire a client of this subprotocol uses (the same unless it depends on the
        direction)."""
        return self

    def loads(self, payload: bytes | memoryview) -> Any:
        raise NotImplementedError

    def dumps(self, message: Any) -> bytes:
        raise NotImplementedError

    def reply(self, command_id: int, method: str, result: Any) -> bytes:
        """A command's answer, encoded (Protobuf's reply type depends on the method)."""
        return self.dumps({"id": command_id, "result": result})

    def put_data(self, message: dict, encoded: bytes) -> None:
        """Put publication data, as carried, into ``message``."""
        raise NotImplementedError

    def json(self, encoded: bytes) -> Any:
        """The value to put in a message for JSON bytes (presence info)."""
        raise NotImplementedError

    def frame(self, message: Any) -> bytes:
        """A whole WebSocket frame, built once for every receiver using this encoding."""
        return prebuild(self.opcode, self.dumps(message))


class JsonWire(Wire):
    name = JSON_SUBPROTOCOL
    opcode = OP_TEXT
    index = 0
    loads = staticmethod(orjson.loads)
    dumps = staticmethod(orjson.dumps)
    json = staticmethod(orjson.Fragment)

    @staticmethod
    def put_data(message: dict, encoded: bytes) -> None:
        if encoded[:1] == hub_data.BINARY_MARK:
            message["b64data"] = base64.b64encode(encoded[1:]).decode()
        else:
            message["data"] = orjson.Fragment(encoded)


class MsgpackWire(Wire):
    name = MSGPACK_SUBPROTOCOL
    opcode = OP_BINARY
    index = 1

    @staticmethod
    def loads(payload: bytes | memoryview) -> Any:
        return msgpack.unpackb(payload, raw=False, strict_map_key=False)

    @staticmethod
    def dumps(message: Any) -> bytes:
        return msgpack.packb(message, use_bin_type=True)

    json = staticmethod(orjson.loads)

    @staticmethod
    def put_data(message: dict, encoded: bytes) -> None:
        message["data"] = hub_data.decode(encoded)


class ProtobufWire(Wire):
    """The hub's side: reads ``Command``, writes ``Reply``."""

    name = PROTOBUF_SUBPROTOCOL
    opcode = OP_BINARY
    index = 2
    loads = staticmethod(protobuf.command_from_bytes)
    dumps = staticmethod(protobuf.reply_to_bytes)

    @staticmethod
    def reply(command_id: int, method: str, result: Any) -> bytes:
        return protobuf.result_to_bytes(command_id, method, result)

    @staticmethod
    def put_data(message: dict, encoded: bytes) -> None:
        message["data"] = encoded  # split into data and json by the encoder

    @staticmethod
    def json(encoded: bytes) -> bytes:
        return encoded

    @property
    def client(self) -> Wire:
        return PROTOBUF_CLIENT


class ProtobufClientWire(ProtobufWire):
    """A client's side: writes ``Command``, reads ``Reply``."""

    loads = staticmethod(protobuf.reply_from_bytes)
    dumps = staticmethod(protobuf.command_to_bytes)

    @property
    def client(self) -> Wire:
        return self


JSON = JsonWire()
MSGPACK = MsgpackWire()
PROTOBUF = ProtobufWire()
PROTOBUF_CLIENT = ProtobufClientWire()
WIRES = (JSON, MSGPACK, PROTOBUF)
_BY_NAME = {wire.name: wire for wire in WIRES}


def wire_for(subprotocol: str | None) -> Wire:
    """The hub's wire for a negotiated subprotocol (none: JSON)."""
    return _BY_NAME.get(subprotocol, JSON)


def encode_data(value: Any) -> bytes:
    """Publication data as carried; 400 when it is neither bytes nor representable in JSON."""
    return hub_data.encode(value)


__all__ = [
    "JSON",
    "MSGPACK",
    "PROTOBUF",
    "PROTOBUF_CLIENT",
    "SUBPROTOCOLS",
    "WIRES",
    "Wire",
    "encode_data",
    "wire_for",
]
