"""Publication data as the hub carries it: JSON bytes, or binary bytes behind a marker.

Data is encoded once, where it enters the hub (a client's command, the HTTP
API), and every broker, history and node after that carries the same bytes
without looking inside. Two kinds share one ``bytes`` value:

- JSON data is its JSON text (orjson), as it always was: it is embedded as it
  is in JSON frames and stored unchanged in history;
- binary data (MessagePack ``bin``, Protobuf data not marked JSON, ``b64data``)
  is the byte ``0x00`` followed by the payload. JSON text never starts with
  ``0x00``, so the first byte tells the kinds apart, through every broker
  (memory, local, Redis records and pub/sub are all byte-transparent).

Each wire then shows each kind its own way (``fastws.hub.protocol.wire``); a
JSON connection gets binary data as a base64 string under ``b64data``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from fastws.hub.protocol import codes

BINARY_MARK = b"\x00"


def encode(value: Any) -> bytes:
    """A value as carried: ``bytes`` are binary data, anything else must have a JSON form."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return BINARY_MARK + bytes(value)
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise codes.HubError(
            codes.BAD_REQUEST,
            f"data must be bytes or representable in JSON: {exc}",
        ) from None


def encode_json_text(text: bytes) -> bytes:
    """Data that arrives as JSON text (Protobuf's ``json`` flag): checked, kept compact."""
    try:
        return orjson.dumps(orjson.loads(text))
    except orjson.JSONDecodeError as exc:
        raise codes.HubError(codes.BAD_REQUEST, f"data marked JSON is not JSON: {exc}") from None


def is_binary(encoded: bytes) -> bool:
    return encoded[:1] == BINARY_MARK


def payload(encoded: bytes) -> bytes:
    """The bytes a binary publication carries (without the marker)."""
    return encoded[1:]


def decode(encoded: bytes) -> Any:
    """The value: ``bytes`` for binary data, the decoded JSON value otherwise."""
    return encoded[1:] if encoded[:1] == BINARY_MARK else orjson.loads(encoded)


def from_base64(name: str, text: Any) -> bytes:
    """The binary data of a ``b64data`` field (standard alphabet, padding required)."""
    if not isinstance(text, str):
        raise codes.HubError(codes.BAD_REQUEST, f"{name} must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise codes.HubError(codes.BAD_REQUEST, f"{name} is not valid base64") from None


def to_base64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def received(item: dict) -> Any:
    """A client's view of the data of a push or publication item of any wire."""
    if "b64data" in item:
        return base64.b64decode(item["b64data"])
    return item.get("data")


__all__ = [
    "BINARY_MARK",
    "decode",
    "encode",
    "encode_json_text",
    "from_base64",
    "is_binary",
    "payload",
    "received",
    "to_base64",
]
