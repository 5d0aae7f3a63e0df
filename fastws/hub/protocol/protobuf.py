"""The hub's messages to and from Protobuf (``hub.proto``), through the dict shapes the
JSON and MessagePack wires use.

The command layer and the clients speak in dicts (``{"id": N, "method": M,
"params": {...}}``, ``{"push": "pub", ...}``); here each dict key is the
Protobuf field of the same name, so that one shape serves all three wires.
Two keys are special:

- ``data`` with a ``json`` flag beside it. In what the hub writes, ``data`` is
  publication data as carried (``fastws.hub.protocol.data``): binary data goes
  out as its payload, JSON bytes as they are with ``json: true``. In commands
  and in what a client reads, ``data`` is the application's value: ``bytes``
  for binary data, anything else for JSON;
- ``info`` of a client is JSON text on the wire and a decoded value for a client.
"""

from __future__ import annotations

from typing import Any

import orjson
from google.protobuf.message import Message

from fastws.hub.protocol import hub_pb2 as pb
from fastws.hub.protocol.data import BINARY_MARK

# -- what the hub writes: Reply (answers, errors, pushes) ------------------------------


def _fill(message: Message, values: dict) -> None:
    """Set the fields of ``message`` from a dict written by the hub."""
    fields = message.DESCRIPTOR.fields_by_name
    for key, value in values.items():
        if key == "data":
            if value[:1] == BINARY_MARK:
                message.data = value[1:]
            else:
                message.data = value
                message.json = True
            continue
        field = fields[key]
        if field.message_type is None:
            setattr(message, key, value)
        elif field.message_type.GetOptions().map_entry:
            entries = getattr(message, key)
            for entry_key, entry in value.items():
                _fill(entries[entry_key], entry)
        elif field.is_repeated:
            items = getattr(message, key)
            for item in value:
                _fill(items.add(), item)
        else:
            child = getattr(message, key)
            child.SetInParent()
            _fill(child, value)


def _pub_push(reply: pb.Reply, values: dict) -> None:
    """The one push sent to many: filled by hand, it is the hot path of the fan-out."""
    pub = reply.push.pub
    pub.channel = values["channel"]
    pub.offset = values["offset"]
    data = values["data"]
    if data[:1] == BINARY_MARK:
        pub.data = data[1:]
    else:
        pub.data = data
        pub.json = True
    info = values.get("info")
    if info is not None:
        pub.info.user = info["user"]


def reply_to_bytes(message: dict) -> bytes:
    """A push (``{"push": kind, ...}``), or an error (``{"id"?: N, "error": {...}}``)."""
    reply = pb.Reply()
    kind = message.get("push")
    if kind == "pub":
        _pub_push(reply, message)
    elif kind is not None:
        push = getattr(reply.push, kind)
        push.SetInParent()
        _fill(push, {k: v for k, v in message.items() if k != "push"})
    else:
        if "id" in message:
            reply.id = message["id"]
        if "error" in message:
            _fill(reply.error, message["error"])
    return reply.SerializeToString()


def result_to_bytes(command_id: int, method: str, result: dict) -> bytes:
    reply = pb.Reply(id=command_id)
    answer = getattr(reply, method)
    answer.SetInParent()
    _fill(answer, result)
    return reply.SerializeToString()


# -- what the hub reads: Command --------------------------------------------------------


def _values(message: Message) -> dict[str, Any]:
    """The message as the dict a reader expects: every plain field (as JSON would show
    it), optional ones only when set, ``data`` decoded and ``info`` parsed."""
    values: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        name = field.name
        if name == "json" or (field.has_presence and not message.HasField(name)):
            continue
        value = getattr(message, name)
        if name == "data":
            values[name] = orjson.loads(value) if message.json else bytes(value)
        elif field.message_type is None:
            values[name] = orjson.loads(value) if name == "info" else value
        elif field.message_type.GetOptions().map_entry:
            values[name] = {key: _values(entry) for key, entry in value.items()}
        elif field.is_repeated:
            values[name] = [_values(item) for item in value]
        else:
            values[name] = _values(value)
    return values


def command_from_bytes(payload: bytes | memoryview) -> dict[str, Any]:
    """``{"id": N, "method": M, "params": {...}}``; data marked JSON must parse."""
    command = pb.Command.FromString(bytes(payload))
    method = command.WhichOneof("params")
    if method is None:
        return {"id": command.id}
    return {"id": command.id, "method": method, "params": _values(getattr(command, method))}


# -- the client's side ---------------------------------------------------------------------

_METHODS = frozenset(f.name for f in pb.Command.DESCRIPTOR.oneofs_by_name["params"].fields)


def command_to_bytes(message: dict) -> bytes:
    """A client's command dict, ``data`` being ``bytes`` (binary) or a JSON value. A method
    the schema does not have goes out without params: the hub answers 404, as over JSON."""
    command = pb.Command(id=message["id"])
    method = message["method"]
    if method not in _METHODS:
        return command.SerializeToString()
    params = dict(message.get("params") or {})
    request = getattr(command, method)
    request.SetInParent()
    if "data" in params:
        value = params.pop("data")
        if isinstance(value, (bytes, bytearray, memoryview)):
            request.data = bytes(value)
        else:
            request.data = orjson.dumps(value)
            request.json = True
    _fill(request, params)
    return command.SerializeToString()


def _pub_values(pub: pb.PubPush) -> dict[str, Any]:
    """A ``pub`` push read by hand: the message a client reads most."""
    message = {
        "push": "pub",
        "channel": pub.channel,
        "offset": pub.offset,
        "data": orjson.loads(pub.data) if pub.json else pub.data,
    }
    if pub.HasField("info"):
        message["info"] = {"user": pub.info.user}
    return message


def reply_from_bytes(payload: bytes | memoryview) -> dict[str, Any]:
    """What the hub sent, as the dict the JSON wire would give (``data`` decoded)."""
    reply = pb.Reply.FromString(bytes(payload))
    if reply.HasField("push"):
        kind = reply.push.WhichOneof("push")
        if kind == "pub":
            return _pub_values(reply.push.pub)
        return {"push": kind, **_values(getattr(reply.push, kind))}
    message: dict[str, Any] = {}
    if reply.id:
        message["id"] = reply.id
    if reply.HasField("error"):
        message["error"] = _values(reply.error)
    else:
        which = reply.WhichOneof("result")
        message["result"] = _values(getattr(reply, which)) if which else {}
    return message


__all__ = ["command_from_bytes", "command_to_bytes", "reply_from_bytes", "reply_to_bytes"]
