"""The OpenAPI document of the HTTP API, built from the command table so it cannot drift.

Each API command becomes ``/api/v1/NAME`` with its method: a POST's fields are
the JSON body's properties, a GET's are query parameters (a stream position
there is ``EPOCH:OFFSET``). Every answer is ``{"result": ...}`` or
``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

from typing import Any

import fastws
from fastws.hub.commands.spec import Command, Position
from fastws.hub.commands.table import API_COMMANDS

API_VERSIONS = ("1",)
ERROR_STATUSES = ("400", "401", "404", "405", "410", "413", "422", "503")

_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}


def _body(command: Command) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for field in command.fields:
        properties[field.name] = field.type.schema()
        if field.base64 is not None:
            properties[field.base64] = {"type": "string", "format": "byte"}
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    required = [f.name for f in command.fields if f.required and f.base64 is None]
    if required:
        schema["required"] = required
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _query(command: Command) -> list[dict[str, Any]]:
    parameters = []
    for field in command.fields:
        kind = field.type
        schema = kind.text_schema() if isinstance(kind, Position) else kind.schema()
        parameters.append(
            {"name": field.name, "in": "query", "required": field.required, "schema": schema}
        )
    return parameters


def _operation(command: Command) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": command.name,
        "parameters": [
            {
                "name": "API-Version",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "enum": list(API_VERSIONS)},
            }
        ],
        "responses": {
            "200": {
                "description": "the command's result",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"result": {}},
                            "required": ["result"],
                        }
                    }
                },
            },
            **{
                status: {
                    "description": "an error, its code as the status",
                    "content": {"application/json": {"schema": _ERROR}},
                }
                for status in ERROR_STATUSES
            },
        },
    }
    if command.http == "POST":
        operation["requestBody"] = _body(command)
    else:
        operation["parameters"] += _query(command)
    return operation


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "fastws hub HTTP API", "version": fastws.__version__},
        "components": {
            "securitySchemes": {
                "apikey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "the value is 'apikey KEY'",
                }
            }
        },
        "security": [{"apikey": []}],
        "paths": {
            f"/api/v1/{name}": {command.http.lower(): _operation(command)}
            for name, command in API_COMMANDS.items()
        },
    }


__all__ = ["API_VERSIONS", "openapi_document"]
