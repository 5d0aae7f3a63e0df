"""Who a command runs for: one client's connection, or the server API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastws.hub.permissions import Permission, permits
from fastws.hub.protocol import codes
from fastws.hub.protocol.wire import JSON, Wire

if TYPE_CHECKING:
    from fastws.hub.node import Node
    from fastws.hub.session import Session


class Context:
    """The node a command acts on and who asks: ``session`` is the client's connection,
    None for the server API (a backend holding the API key, which may do anything).
    ``wire`` is the encoding replies are built for."""

    __slots__ = ("node", "session", "wire")

    def __init__(self, node: Node, session: Session | None = None, wire: Wire = JSON) -> None:
        self.node = node
        self.session = session
        self.wire = wire

    @property
    def user(self) -> str | None:
        """The asking user, shown as publisher and sender; None for the server API."""
        session = self.session
        return None if session is None else session.credentials.user

    def permit(self, permission: Permission, name: str) -> None:
        """Raise 403 unless the caller has ``permission`` on ``name``."""
        session = self.session
        if session is None:
            return
        if not permits(self.node.auth, session.credentials, permission, name):
            raise codes.HubError(
                codes.PERMISSION_DENIED, f"not allowed to {permission.value} {name!r}"
            )


__all__ = ["Context"]
