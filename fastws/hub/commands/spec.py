"""How a command is declared and checked: its fields, its permission, its handler.

A ``Command`` lists its fields; each ``Field`` has a type that checks a value
and turns it into what handlers use (a channel name, publication data as
carried, a stream position...). A field may also come base64-encoded under a
second name (``b64data`` for ``data``: JSON has no bytes). ``Command.check`` is the one validation of
params, whoever sends them: a client over WebSocket, or a backend through the
HTTP API, whose query strings go through ``Command.from_query`` first.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastws.hub.broker import BrokerUnavailable, StreamPosition
from fastws.hub.channels import MAX_CHANNEL_LENGTH, NAME_CHARACTERS, channel_error, pattern_error
from fastws.hub.permissions import Permission
from fastws.hub.protocol import codes
from fastws.hub.protocol.data import from_base64
from fastws.hub.protocol.wire import encode_data

if TYPE_CHECKING:
    from fastws.hub.commands.context import Context


CHANNEL_REGEX = f"^[{NAME_CHARACTERS}]{{1,{MAX_CHANNEL_LENGTH}}}$"
PATTERN_REGEX = (
    rf"^(\*|[{NAME_CHARACTERS}]{{1,{MAX_CHANNEL_LENGTH}}}"
    rf"|[{NAME_CHARACTERS}]{{0,{MAX_CHANNEL_LENGTH - 2}}}:\*)$"
)


def bad_request(message: str) -> codes.HubError:
    return codes.HubError(codes.BAD_REQUEST, message)


# -- field types -------------------------------------------------------------------------


class FieldType:
    """Checks one field's value; ``from_text`` reads it from a query string first;
    ``schema`` is the JSON Schema of the values it accepts (the OpenAPI document's)."""

    def check(self, name: str, value: Any) -> Any:
        return value

    def from_text(self, name: str, text: str) -> Any:
        return self.check(name, text)

    def schema(self) -> dict[str, Any]:
        return {}


class Channel(FieldType):
    def check(self, name: str, value: Any) -> str:
        error = channel_error(value)
        if error is not None:
            raise bad_request(error)
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": CHANNEL_REGEX}


class Pattern(FieldType):
    """A channel pattern (``fastws.hub.channels``): a name, ``NAME:*``, or ``*``."""

    def check(self, name: str, value: Any) -> str:
        error = pattern_error(value)
        if error is not None:
            raise bad_request(error)
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": PATTERN_REGEX}


class Channels(FieldType):
    """A list of channel names."""

    def check(self, name: str, value: Any) -> list[str]:
        if not isinstance(value, list):
            raise bad_request(f"{name} must be an array of channel names")
        return [CHANNEL.check(name, channel) for channel in value]

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "items": CHANNEL.schema()}


class Data(FieldType):
    """Bytes (binary data) or any value with a JSON form, encoded once as carried."""

    def check(self, name: str, value: Any) -> bytes:
        return encode_data(value)


class Text(FieldType):
    """A string, non-empty or not, of at most ``max_bytes`` UTF-8 bytes."""

    def __init__(self, non_empty: bool = False, max_bytes: int | None = None) -> None:
        self.non_empty = non_empty
        self.max_bytes = max_bytes

    def check(self, name: str, value: Any) -> str:
        if not isinstance(value, str) or (self.non_empty and not value):
            raise bad_request(f"{name} must be a {'non-empty ' if self.non_empty else ''}string")
        if self.max_bytes is not None and len(value.encode()) > self.max_bytes:
            raise bad_request(f"{name} must be a string of at most {self.max_bytes} bytes")
        return value

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        if self.non_empty:
            schema["minLength"] = 1
        if self.max_bytes is not None:
            schema["maxLength"] = self.max_bytes // 4  # characters surely within the bytes
        return schema


class Count(FieldType):
    """An integer >= 0."""

    def check(self, name: str, value: Any) -> int:
        if type(value) is not int or value < 0:
            raise bad_request(f"{name} must be an integer >= 0")
        return value

    def from_text(self, name: str, text: str) -> int:
        if not text.isdigit():
            raise bad_request(f"{name} must be an integer >= 0, not {text!r}")
        return int(text)

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": 0}


class Integer(FieldType):
    """An integer from ``low`` to ``high``."""

    def __init__(self, low: int, high: int) -> None:
        self.low = low
        self.high = high

    def check(self, name: str, value: Any) -> int:
        if type(value) is not int or not self.low <= value <= self.high:
            raise bad_request(f"{name} must be an integer from {self.low} to {self.high}")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.low, "maximum": self.high}


class Objects(FieldType):
    """A list of JSON objects (the commands of a batch), at most ``max_items``."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items

    def check(self, name: str, value: Any) -> list[dict[str, Any]]:
        if (
            not isinstance(value, list)
            or len(value) > self.max_items
            or not all(isinstance(item, dict) for item in value)
        ):
            raise bad_request(f"{name} must be an array of at most {self.max_items} objects")
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "maxItems": self.max_items, "items": {"type": "object"}}


class Flag(FieldType):
    """A boolean; in a query string ``true`` or ``false``."""

    def check(self, name: str, value: Any) -> bool:
        if type(value) is not bool:
            raise bad_request(f"{name} must be true or false")
        return value

    def from_text(self, name: str, text: str) -> bool:
        if text not in ("true", "false"):
            raise bad_request(f"{name} must be true or false, not {text!r}")
        return text == "true"

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


class Position(FieldType):
    """A stream position, ``{"epoch": str, "offset": int}``; in a query string
    ``EPOCH:OFFSET``."""

    def check(self, name: str, value: Any) -> StreamPosition:
        if type(value) is StreamPosition:  # read from a query string already
            return value
        if (
            not isinstance(value, dict)
            or set(value) != {"epoch", "offset"}
            or not isinstance(value["epoch"], str)
            or type(value["offset"]) is not int
            or value["offset"] < 0
        ):
            raise bad_request(f'{name} must be {{"epoch": string, "offset": integer >= 0}}')
        return StreamPosition(value["offset"], value["epoch"])

    def from_text(self, name: str, text: str) -> StreamPosition:
        epoch, _, offset = text.rpartition(":")
        if not offset.isdigit() or not _:
            raise bad_request(f"{name} must be EPOCH:OFFSET in a query string, not {text!r}")
        return StreamPosition(int(offset), epoch)

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "epoch": {"type": "string"},
                "offset": {"type": "integer", "minimum": 0},
            },
            "required": ["epoch", "offset"],
            "additionalProperties": False,
        }

    def text_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "^.*:[0-9]+$"}


class Positions(FieldType):
    """Stream positions by channel, ``{channel: {"epoch", "offset"}}``."""

    def check(self, name: str, value: Any) -> dict[str, StreamPosition]:
        if not isinstance(value, dict):
            raise bad_request(f"{name} must be an object of stream positions by channel")
        return {
            CHANNEL.check(name, channel): POSITION.check(f"{name}.{channel}", position)
            for channel, position in value.items()
        }

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": POSITION.schema()}


ANY = FieldType()
CHANNEL = Channel()
CHANNELS = Channels()
DATA = Data()
USER = Text(non_empty=True)
TOKEN = Text(non_empty=True)
COUNT = Count()
FLAG = Flag()
POSITION = Position()
POSITIONS = Positions()
PATTERN = Pattern()
CLOSE_CODE = Integer(4000, 4999)
TIMESTAMP = Integer(0, 2**53)


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: FieldType
    required: bool = False
    default: Any = None  # the value handlers see when an optional field is absent
    base64: str | None = None  # the name under which the value may come as base64 bytes


# -- commands -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """A result whose reply must go out before ``then`` runs (a subscription starts
    delivering only after its subscribe reply)."""

    result: Any
    then: Callable[[], Awaitable[None]]


Handler = Callable[["Context", dict[str, Any]], Any]


@dataclass(frozen=True)
class Command:
    """One command: its fields, the permission it needs on its target, its handler.

    ``client`` says whether connections may send it; ``http`` is the HTTP method of
    its API endpoint (None: not in the API). ``target`` names the field that holds
    what ``permission`` is checked on; ``grant`` the field of a subscription token
    that, when given, grants it instead (the handler then finds the checked
    ``SubscriptionGrant`` in that field, else None). A handler is a coroutine function unless
    it never waits (then ``inline``: answered at once, without a task).
    """

    name: str
    handler: Handler
    fields: tuple[Field, ...] = ()
    permission: Permission | None = None
    target: str = "channel"
    grant: str | None = None
    client: bool = True
    http: str | None = None
    inline: bool = field(init=False)
    _by_name: dict[str, Field] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inline", not inspect.iscoroutinefunction(self.handler))
        by_name = {f.name: f for f in self.fields}
        by_name.update({f.base64: f for f in self.fields if f.base64 is not None})
        object.__setattr__(self, "_by_name", by_name)

    def check(self, params: dict[str, Any]) -> dict[str, Any]:
        """The params, checked and converted; every field present (defaults filled in)."""
        by_name = self._by_name
        for key in params:
            if key not in by_name:
                raise bad_request(f"unknown field {key!r} in {self.name}")
        values = {}
        for spec in self.fields:
            name = spec.name
            encoded = spec.base64
            if name in params:
                if encoded in params:
                    raise bad_request(f"{self.name} takes {name!r} or {encoded!r}, not both")
                values[name] = spec.type.check(name, params[name])
            elif encoded is not None and encoded in params:
                values[name] = spec.type.check(name, from_base64(encoded, params[encoded]))
            elif spec.required:
                raise bad_request(f"{self.name} needs the {name!r} field")
            else:
                values[name] = spec.default
        return values

    def from_query(self, query: dict[str, str]) -> dict[str, Any]:
        """Params from a query string (each value a string) for ``check``."""
        by_name = self._by_name
        return {
            key: by_name[key].type.from_text(key, text) if key in by_name else text
            for key, text in query.items()
        }

    def prepare(self, ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
        """Check ``params`` and the caller's permission: the values for the handler."""
        values = self.check(params)
        if self.permission is not None:
            if self.grant is None:
                ctx.permit(self.permission, values[self.target])
            else:
                token = values[self.grant]
                values[self.grant] = ctx.permit(self.permission, values[self.target], token)
        return values

    async def run(self, ctx: Context, params: dict[str, Any]) -> Any:
        """Prepare and run for a caller that awaits the whole answer (the HTTP API)."""
        result = self.handler(ctx, self.prepare(ctx, params))
        if not self.inline:
            result = await result
        if type(result) is Reply:
            await result.then()
            return result.result
        return result


def as_hub_error(exc: Exception) -> codes.HubError | None:
    """The error code a failed command answers with; None for an unexpected error."""
    if isinstance(exc, codes.HubError):
        return exc
    if isinstance(exc, BrokerUnavailable):
        return codes.HubError(codes.BROKER_UNAVAILABLE, f"broker unavailable: {exc}")
    return None


__all__ = [
    "ANY",
    "CHANNEL",
    "CHANNELS",
    "CLOSE_CODE",
    "COUNT",
    "DATA",
    "FLAG",
    "PATTERN",
    "POSITION",
    "POSITIONS",
    "TOKEN",
    "TIMESTAMP",
    "USER",
    "Command",
    "Field",
    "FieldType",
    "Objects",
    "Reply",
    "Text",
    "as_hub_error",
    "bad_request",
]
