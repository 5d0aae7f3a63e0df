"""What the NATS broker keeps on NATS and sends through it: names and record formats.

A channel is known on NATS by ``channel_key``, a hash of its name: channel names may
hold characters that subjects, stream names and key-value keys refuse ('.', '*', '>',
spaces), and may be longer than a stream name may be.

- ``FASTWS_<key>``: the channel's stream, on the subject ``fastws.in.<key>``. Its
  sequence numbers are the channel's offsets: one stream per channel, so they are
  contiguous. Every stored message is republished by JetStream, with its sequence in
  the ``Nats-Sequence`` header, on ``fastws.out.<key>.p``.
- ``fastws.out.<key>.j`` / ``.l``: joins and leaves (core NATS, not stored); ``.s``:
  the probe a node sends itself when it subscribes.
- ``fastws.ctl``: user messages, user disconnects and control messages, to every node.
- Key-value buckets: ``fastws_presence`` (``<key>.<client>``, expiring after the
  presence TTL) and ``fastws_nodes`` (node announcements).

Records are msgpack arrays; data travels as the bytes the publisher's node encoded.
"""

from __future__ import annotations

import base64
import datetime
import hashlib

import msgpack

from fastws.hub.broker.base import ClientInfo

CONTROL_SUBJECT = "fastws.ctl"
PRESENCE_BUCKET = "fastws_presence"
NODES_BUCKET = "fastws_nodes"
PUBLICATION, JOIN, LEAVE = "p", "j", "l"  # the last token of a channel's output subjects
USER_MESSAGE, USER_DISCONNECT, CONTROL_MESSAGE = "m", "d", "c"
PROBE = "s"  # a node checking its new subscription receives (on a channel or the control subject)

_UNIX = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def channel_key(channel: str) -> str:
    return hashlib.blake2b(channel.encode(), digest_size=16).hexdigest()


def stream_name(key: str) -> str:
    return f"FASTWS_{key}"


def input_subject(key: str) -> str:
    return f"fastws.in.{key}"


def output_subject(key: str, kind: str) -> str:
    """``kind`` is PUBLICATION, JOIN, LEAVE, or '*' for all three."""
    return f"fastws.out.{key}.{kind}"


def token(name: str) -> str:
    """``name`` as a key-value key token (letters, digits, '-', '_', '=')."""
    return base64.urlsafe_b64encode(name.encode()).decode()


def untoken(token: str) -> str:
    return base64.urlsafe_b64decode(token).decode()


def presence_key(key: str, client: str) -> str:
    return f"{key}.{token(client)}"


def epoch_of(created: datetime.datetime) -> str:
    """A stream's epoch: its creation time in microseconds, which a recreated stream changes."""
    return format((created - _UNIX) // datetime.timedelta(microseconds=1), "x")


def pack(*fields: object) -> bytes:
    return msgpack.packb(fields, use_bin_type=True)


def unpack(payload: bytes) -> list:
    return msgpack.unpackb(payload, raw=False)


def encode_publication(user: str | None, kept: bool, data: bytes) -> bytes:
    """``kept``: whether history shows it (a channel without history still stores the last
    one, since a stream keeps at least one message)."""
    return pack(user, kept, data)


def encode_client(info: ClientInfo) -> bytes:
    return pack(info.client, info.user, info.info)


def decode_client(payload: bytes) -> ClientInfo:
    client, user, info = unpack(payload)
    return ClientInfo(client, user, info)


__all__ = [
    "CONTROL_MESSAGE",
    "CONTROL_SUBJECT",
    "JOIN",
    "LEAVE",
    "NODES_BUCKET",
    "PRESENCE_BUCKET",
    "PROBE",
    "PUBLICATION",
    "USER_DISCONNECT",
    "USER_MESSAGE",
    "channel_key",
    "decode_client",
    "encode_client",
    "encode_publication",
    "epoch_of",
    "input_subject",
    "output_subject",
    "pack",
    "presence_key",
    "stream_name",
    "token",
    "unpack",
    "untoken",
]
