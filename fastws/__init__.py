"""fastws: a fast, RFC 6455/7692 conformant WebSocket server and client on uvloop.

Names are imported on first use, so that ``import fastws.codec`` does not load
the asyncio layers above it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "BACKEND": "fastws.codec",
    "OP_TEXT": "fastws.codec",
    "OP_BINARY": "fastws.codec",
    "WebSocketError": "fastws.errors",
    "ProtocolError": "fastws.errors",
    "HandshakeError": "fastws.errors",
    "ConnectionClosed": "fastws.errors",
    "ConnectionClosedOK": "fastws.errors",
    "ConnectionClosedError": "fastws.errors",
    "Request": "fastws.handshake",
    "State": "fastws.connection",
    "Listener": "fastws.protocol",
    "WebSocket": "fastws.protocol",
    "broadcast": "fastws.protocol",
    "Accept": "fastws.server",
    "Response": "fastws.server",
    "Server": "fastws.server",
    "ServerConnection": "fastws.server",
    "serve": "fastws.server",
    "ClientConnection": "fastws.client",
    "connect": "fastws.client",
}

__all__ = [
    "Accept",
    "BACKEND",
    "ClientConnection",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "HandshakeError",
    "Listener",
    "OP_BINARY",
    "OP_TEXT",
    "ProtocolError",
    "Request",
    "Response",
    "Server",
    "ServerConnection",
    "State",
    "WebSocket",
    "WebSocketError",
    "broadcast",
    "connect",
    "serve",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fastws' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from fastws.client import ClientConnection, connect
    from fastws.codec import BACKEND, OP_BINARY, OP_TEXT
    from fastws.connection import State
    from fastws.errors import (
        ConnectionClosed,
        ConnectionClosedError,
        ConnectionClosedOK,
        HandshakeError,
        ProtocolError,
        WebSocketError,
    )
    from fastws.handshake import Request
    from fastws.protocol import Listener, WebSocket, broadcast
    from fastws.server import Accept, Response, Server, ServerConnection, serve
