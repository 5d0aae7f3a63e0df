"""The HTTP API, on the hub's port: a backend publishes, sends and inspects with it.

Every endpoint lives under ``/api/v1/`` and, as an alias of the current
version, under ``/api/``; a request may pin the version in an ``API-Version``
header (an unknown one is refused with 400 naming those supported). Requests
carry ``Authorization: apikey KEY``; without a configured key the API does not
exist (404). ``GET /api/v1/openapi.json`` (no key needed) describes every
endpoint, built from the command table. Answers are JSON: ``{"result":
...}`` with 200, or ``{"error": {"code": N, "message": S}}`` with N as the
status (400 bad JSON or fields, 401 key, 404 unknown, 405 method, 413 body too
large, 503 broker unavailable).

``GET /api/dev/token?user=NAME`` exists only in insecure development mode and
needs no key: it returns a token this process accepts.
"""

from __future__ import annotations

import hmac
from typing import Any

import orjson

from fastws.handshake import Request
from fastws.hub.commands import API_COMMANDS, as_hub_error
from fastws.hub.commands.openapi import API_VERSIONS, openapi_document
from fastws.hub.commands.server_api import ServerApi
from fastws.hub.node import Node
from fastws.hub.protocol import codes
from fastws.server import Response

JSON_TYPE = "application/json"


def json_response(status: int, body: Any, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, orjson.dumps(body), content_type=JSON_TYPE, headers=headers)


def error_response(code: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return json_response(code, {"error": {"code": code, "message": message}}, headers)


def _fail(code: int, message: str) -> codes.HubError:
    return codes.HubError(code, message)


class HttpApi:
    """Decodes ``/api/...`` requests, runs the command of the endpoint's name (as the server,
    which holds every permission) and encodes its answer."""

    def __init__(self, node: Node, server_api: ServerApi) -> None:
        self.node = node
        config = node.config
        self.key = config.api_key.encode() if config.api_key else None
        self.max_body_size = config.max_body_size
        self.context = server_api.context  # the server API: every permission
        self.openapi = orjson.dumps(openapi_document())

    async def handle(self, request: Request) -> Response:
        try:
            return await self._handle(request)
        except Exception as exc:
            error = as_hub_error(exc)
            if error is None:
                raise
            return error_response(error.code, error.message)

    async def _handle(self, request: Request) -> Response:
        path = request.path
        name = path[len("/api/v1/") :] if path.startswith("/api/v1/") else path[len("/api/") :]
        if name == "dev/token":
            return self.dev_token(request)
        if self.key is None:
            raise _fail(codes.NOT_FOUND, "the HTTP API is off: no api_key is configured")
        version = request.headers.get("api-version")
        if version is not None and version.strip() not in API_VERSIONS:
            raise _fail(
                codes.BAD_REQUEST,
                f"API-Version {version!r} is not supported; supported: {', '.join(API_VERSIONS)}",
            )
        if name == "openapi.json" and request.method == "GET":
            return Response(200, self.openapi, content_type=JSON_TYPE)
        self._authorize(request)
        command = API_COMMANDS.get(name)
        if command is None:
            raise _fail(codes.NOT_FOUND, f"no API endpoint {path!r}")
        method = command.http
        if request.method != method:
            return error_response(405, f"{path} takes {method}", (("Allow", method),))
        if method == "POST":
            params = self._body(request)
        else:
            params = command.from_query(self._query(request))
        return json_response(200, {"result": await command.run(self.context, params)})

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

    def dev_token(self, request: Request) -> Response:
        auth = self.node.auth
        if not auth.insecure:
            raise _fail(codes.NOT_FOUND, "development tokens exist only in insecure mode")
        if request.method != "GET":
            return error_response(405, "/api/dev/token takes GET", (("Allow", "GET"),))
        query = self._query(request)
        unknown = sorted(set(query) - {"user"})
        if unknown:
            raise _fail(codes.BAD_REQUEST, f"unknown field {unknown[0]!r} in dev/token")
        user = query.get("user", "")
        return json_response(200, {"token": auth.dev_token(user), "user": user})


__all__ = ["HttpApi", "error_response", "json_response"]
