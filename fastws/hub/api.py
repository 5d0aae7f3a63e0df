"""The HTTP API, on the hub's port: a backend publishes, sends and inspects with it.

Every endpoint lives under ``/api/v1/`` and, as an alias of the current
version, under ``/api/``. Requests carry ``Authorization: apikey KEY``; without
a configured key the API does not exist (404). Answers are JSON: ``{"result":
...}`` with 200, or ``{"error": {"code": N, "message": S}}`` with N as the
status (400 bad JSON or fields, 401 key, 404 unknown, 405 method, 413 body too
large, 503 broker unavailable).

``GET /api/dev/token?user=NAME`` exists only in insecure development mode and
needs no key: it returns a token this process accepts.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

import fastws
from fastws.handshake import Request
from fastws.hub import messages
from fastws.hub.broker import BrokerUnavailable
from fastws.hub.node import Node
from fastws.hub.protocol import codes
from fastws.hub.protocol.wire import JSON, encode_data
from fastws.hub.session import check_channel
from fastws.server import Response

JSON_TYPE = "application/json"


def json_response(status: int, body: Any, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, orjson.dumps(body), content_type=JSON_TYPE, headers=headers)


def error_response(code: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return json_response(code, {"error": {"code": code, "message": message}}, headers)


def _fail(code: int, message: str) -> codes.HubError:
    return codes.HubError(code, message)


def _check_keys(
    values: dict[str, Any], allowed: tuple[str, ...], required: tuple[str, ...]
) -> None:
    for key in values:
        if key not in allowed:
            raise _fail(codes.BAD_REQUEST, f"unknown field {key!r}")
    for key in required:
        if key not in values:
            raise _fail(codes.BAD_REQUEST, f"the {key!r} field is missing")


class HttpApi:
    """Routes ``/api/...`` requests to the node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        config = node.config
        self.key = config.api_key.encode() if config.api_key else None
        self.max_body_size = config.max_body_size
        self._endpoints: dict[str, tuple[str, Callable[[Any], Awaitable[Any]]]] = {
            "publish": ("POST", self.publish),
            "broadcast": ("POST", self.broadcast),
            "send": ("POST", self.send),
            "disconnect": ("POST", self.disconnect),
            "presence": ("GET", self.presence),
            "history": ("GET", self.history),
            "info": ("GET", self.info),
        }

    async def handle(self, request: Request) -> Response:
        try:
            return await self._handle(request)
        except codes.HubError as exc:
            return error_response(exc.code, exc.message)
        except BrokerUnavailable as exc:
            return error_response(codes.BROKER_UNAVAILABLE, f"broker unavailable: {exc}")

    async def _handle(self, request: Request) -> Response:
        path = request.path
        name = path[len("/api/v1/") :] if path.startswith("/api/v1/") else path[len("/api/") :]
        if name == "dev/token":
            return self.dev_token(request)
        if self.key is None:
            raise _fail(codes.NOT_FOUND, "the HTTP API is off: no api_key is configured")
        self._authorize(request)
        endpoint = self._endpoints.get(name)
        if endpoint is None:
            raise _fail(codes.NOT_FOUND, f"no API endpoint {path!r}")
        method, handler = endpoint
        if request.method != method:
            return error_response(405, f"{path} takes {method}", (("Allow", method),))
        argument = self._body(request) if method == "POST" else self._query(request)
        return json_response(200, {"result": await handler(argument)})

    def _authorize(self, request: Request) -> None:
        header = request.headers.get("authorization") or ""
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "apikey" or not hmac.compare_digest(key.strip().encode(), self.key):
            raise _fail(codes.UNAUTHORIZED, "missing or wrong API key (Authorization: apikey KEY)")

    def _body(self, request: Request) -> dict[str, Any]:
        body = request.body
        if len(body) > self.max_body_size:
            raise _fail(
                codes.MESSAGE_TOO_LARGE,
                f"request body over the limit of {self.max_body_size} bytes",
            )
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise _fail(codes.BAD_REQUEST, f"the body is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise _fail(codes.BAD_REQUEST, "the body must be a JSON object")
        return value

    @staticmethod
    def _query(request: Request) -> dict[str, str]:
        query = {}
        for key, values in request.query.items():
            if len(values) != 1:
                raise _fail(codes.BAD_REQUEST, f"query parameter {key!r} is repeated")
            query[key] = values[0]
        return query

    # -- endpoints -------------------------------------------------------------------

    async def publish(self, body: dict[str, Any]) -> dict[str, Any]:
        _check_keys(body, ("channel", "data"), ("channel", "data"))
        position = await self.node.publish(
            check_channel(body["channel"]), encode_data(body["data"]), None
        )
        return {"offset": position.offset, "epoch": position.epoch}

    async def broadcast(self, body: dict[str, Any]) -> dict[str, Any]:
        _check_keys(body, ("channels", "data"), ("channels", "data"))
        channels = body["channels"]
        if not isinstance(channels, list):
            raise _fail(codes.BAD_REQUEST, "channels must be an array of channel names")
        for channel in channels:
            check_channel(channel)
        data = encode_data(body["data"])
        responses = []
        for channel in channels:
            try:
                position = await self.node.publish(channel, data, None)
            except BrokerUnavailable as exc:
                responses.append({"error": {"code": codes.BROKER_UNAVAILABLE, "message": str(exc)}})
            else:
                responses.append({"result": {"offset": position.offset, "epoch": position.epoch}})
        return {"responses": responses}

    async def send(self, body: dict[str, Any]) -> dict[str, Any]:
        _check_keys(body, ("user", "data"), ("user", "data"))
        user = body["user"]
        if not isinstance(user, str) or not user:
            raise _fail(codes.BAD_REQUEST, "user must be a non-empty string")
        await self.node.broker.send_to_user(user, None, encode_data(body["data"]))
        return {}

    async def disconnect(self, body: dict[str, Any]) -> dict[str, Any]:
        _check_keys(body, ("user", "reason"), ("user",))
        user, reason = body["user"], body.get("reason", codes.DISCONNECTED_BY_API.reason)
        if not isinstance(user, str):
            raise _fail(codes.BAD_REQUEST, "user must be a string")
        if not isinstance(reason, str) or len(reason.encode()) > 100:
            raise _fail(codes.BAD_REQUEST, "reason must be a string of at most 100 bytes")
        await self.node.broker.disconnect_user(user, codes.DISCONNECTED_BY_API.code, reason)
        return {}

    async def presence(self, query: dict[str, str]) -> dict[str, Any]:
        _check_keys(query, ("channel",), ("channel",))
        channel = check_channel(query["channel"])
        return messages.presence_reply(JSON, await self.node.presence(channel))

    async def history(self, query: dict[str, str]) -> dict[str, Any]:
        _check_keys(query, ("channel", "limit"), ("channel",))
        channel = check_channel(query["channel"])
        limit = None
        if "limit" in query:
            text = query["limit"]
            if not text.isdigit():
                raise _fail(codes.BAD_REQUEST, f"limit must be an integer >= 0, not {text!r}")
            limit = int(text)
        return messages.history_reply(JSON, await self.node.history(channel, None, limit))

    async def info(self, query: dict[str, str]) -> dict[str, Any]:
        _check_keys(query, (), ())
        node = self.node
        return {
            "version": fastws.__version__,
            "node": node.id,
            "connections": len(node.sessions),
            "users": len(node.users),
            "channels": len(node.channels),
            "broker": {"kind": node.config.broker.partition("://")[0], **node.broker.status()},
            "uptime": round(time.time() - node.started_at, 3),
        }

    def dev_token(self, request: Request) -> Response:
        auth = self.node.auth
        if not auth.insecure:
            raise _fail(codes.NOT_FOUND, "development tokens exist only in insecure mode")
        if request.method != "GET":
            return error_response(405, "/api/dev/token takes GET", (("Allow", "GET"),))
        query = self._query(request)
        _check_keys(query, ("user",), ())
        user = query.get("user", "")
        return json_response(200, {"token": auth.dev_token(user), "user": user})


__all__ = ["HttpApi", "error_response", "json_response"]
