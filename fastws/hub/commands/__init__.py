"""The hub's commands, written once for every caller.

``table`` lists every command with its fields, permission and handler; ``spec``
declares and checks them; ``context`` says who asks (a connection or the server
API). The WebSocket session and the HTTP API only decode, call a command and
encode its answer. Handlers are grouped by concept: ``connection``,
``subscriptions``, ``publications``, ``history``, ``presence``, ``users``,
``server``.
"""

from __future__ import annotations

from fastws.hub.commands.context import Context
from fastws.hub.commands.spec import Command, Reply, as_hub_error
from fastws.hub.commands.table import API_COMMANDS, CLIENT_COMMANDS, COMMANDS

__all__ = [
    "API_COMMANDS",
    "CLIENT_COMMANDS",
    "COMMANDS",
    "Command",
    "Context",
    "Reply",
    "as_hub_error",
]
