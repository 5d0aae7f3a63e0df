"""Who a command runs for: one client's connection, or the server API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastws.hub.auth import SubscriptionGrant, TokenError
from fastws.hub.permissions import Permission, needs_subscription_token, permits
from fastws.hub.protocol import codes
from fastws.hub.protocol.wire import JSON, Wire

if TYPE_CHECKING:
    from fastws.hub.node import Node
    from fastws.hub.session import Session

HOOKED = {Permission.SUBSCRIBE: "subscribe", Permission.PUBLISH: "publish"}


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

    def hooked(self, permission: Permission, channel: str) -> bool:
        """Does a hook decide ``permission`` on ``channel`` for this client, instead of
        grants: the subscribe hook where the namespace has ``subscribe_hook``, the publish
        hook where it has ``publish_hook``."""
        hooks = self.node.hooks
        event = HOOKED.get(permission)
        if event is None or hooks is None or self.session is None or not hooks.has(event):
            return False
        namespace = self.node.config.namespace(channel)
        return namespace is not None and getattr(namespace, f"{event}_hook")

    def permit(
        self, permission: Permission, name: str, token: str | None = None
    ) -> SubscriptionGrant | None:
        """Raise 403 unless the caller has ``permission`` on ``name`` (404 for a channel
        of an undeclared namespace, whoever asks). A subscription ``token``, when given,
        is the grant: checked, and returned."""
        node = self.node
        namespace = None if permission is Permission.SEND else node.namespace(name)
        session = self.session
        if session is None:
            return None
        credentials = session.credentials
        if token is not None:
            try:
                return node.auth.authorize_subscription(token, credentials.user, name)
            except TokenError as exc:
                raise codes.HubError(
                    codes.PERMISSION_DENIED, f"subscription token for {name!r}: {exc.message}"
                ) from None
        if self.hooked(permission, name):
            return None  # the hook decides, in the handler
        subscribed = name in session.subscriptions
        if not permits(node.auth, namespace, credentials, permission, name, subscribed):
            why = ""
            if permission is Permission.SUBSCRIBE and needs_subscription_token(namespace, name):
                why = ": it needs a subscription token"
            raise codes.HubError(
                codes.PERMISSION_DENIED, f"not allowed to {permission.value} {name!r}{why}"
            )
        return None


__all__ = ["Context"]
