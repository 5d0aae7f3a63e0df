"""The two encodings of the hub protocol: JSON text frames and MessagePack binary frames.

Publication data travels through brokers and history as JSON bytes, encoded
once when published. A JSON frame embeds those bytes as they are
(``orjson.Fragment``); a MessagePack frame decodes them once per publication,
not once per receiver. So data must be representable in JSON whichever
encoding the publisher used (no MessagePack binary or extension types).
"""

from __future__ import annotations

from typing import Any

import msgpack
import orjson

from fastws.codec import OP_BINARY, OP_TEXT
from fastws.connection import prebuild
from fastws.hub.protocol import codes

JSON_SUBPROTOCOL = "fastws.json"
MSGPACK_SUBPROTOCOL = "fastws.msgpack"
SUBPROTOCOLS = (JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL)


class Wire:
    """One encoding: how commands are read and replies and pushes written."""

    name = ""
    opcode = OP_TEXT
    index = 0  # position in per-encoding caches of prebuilt frames

    def loads(self, payload: bytes | memoryview) -> Any:
        raise NotImplementedError

    def dumps(self, message: Any) -> bytes:
        raise NotImplementedError

    def data(self, encoded: bytes) -> Any:
        """The value to put in a message for data held as JSON bytes."""
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
    data = staticmethod(orjson.Fragment)


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

    data = staticmethod(orjson.loads)


JSON = JsonWire()
MSGPACK = MsgpackWire()
WIRES = (JSON, MSGPACK)


def wire_for(subprotocol: str | None) -> Wire:
    return MSGPACK if subprotocol == MSGPACK_SUBPROTOCOL else JSON


def encode_data(value: Any) -> bytes:
    """Publication data as JSON bytes; 400 when it has no JSON form."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise codes.HubError(
            codes.BAD_REQUEST, f"data must be representable in JSON: {exc}"
        ) from None


__all__ = ["JSON", "MSGPACK", "SUBPROTOCOLS", "Wire", "encode_data", "wire_for"]
