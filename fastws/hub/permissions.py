"""What a command needs on its target, and whether a connection may do it.

Each command that acts on a channel (or, for ``send``, on a user) names one
``Permission``; ``permits`` is the one place that decides it. Nothing is
allowed unless the channel's namespace or a token claim grants it:

============  =====================================  ==========================
permission    namespace options                      token claim (patterns)
============  =====================================  ==========================
subscribe     allow_subscribe_for_client/_anonymous  ``channels``
publish       allow_publish_for_client/_anonymous,   ``publish``
              allow_publish_for_subscriber
history       allow_history_for_client/_subscriber   ``history``
presence      allow_presence_for_client/_subscriber  ``presence``
send          (none: users are not channels)         ``send`` (user patterns)
============  =====================================  ==========================

"client" means a user with a non-empty ``sub``, "anonymous" the user "", and
"subscriber" a connection subscribed to the channel. Subscribing is decided
before the grants above when the channel says who may subscribe: a ``$``
channel, or one in a namespace with ``require_subscription_token``, only with a
subscription token (checked by the command, ``Context.permit``); a user-limited
channel ``ns:name#u1,u2`` (with ``allow_user_limited_channels``) only by the
users it lists. In insecure development mode everything is allowed.
"""

from __future__ import annotations

import enum

from fastws.hub.auth import Authenticator, Credentials
from fastws.hub.channels import Patterns
from fastws.hub.namespaces import Namespace, allowed_users, is_private


class Permission(enum.Enum):
    """A right on a channel or user; the value completes "not allowed to ..."."""

    SUBSCRIBE = "subscribe to"
    PUBLISH = "publish to"
    HISTORY = "read the history of"
    PRESENCE = "read the presence of"
    SEND = "send to user"


def needs_subscription_token(namespace: Namespace, channel: str) -> bool:
    """May ``channel`` be subscribed to only with a subscription token?"""
    return is_private(channel) or namespace.require_subscription_token


def _match(patterns: Patterns | None, name: str) -> bool:
    return patterns is not None and patterns.match(name)


def permits(
    auth: Authenticator,
    namespace: Namespace | None,
    credentials: Credentials,
    permission: Permission,
    name: str,
    subscribed: bool = False,
) -> bool:
    """Does a connection with ``credentials`` have ``permission`` on ``name`` (a channel
    of ``namespace``, or a user for ``SEND``)? ``subscribed``: it is subscribed to it."""
    if auth.insecure:
        return True
    if permission is Permission.SEND:
        return _match(credentials.send, name)
    client = credentials.user != ""
    if permission is Permission.SUBSCRIBE:
        if needs_subscription_token(namespace, name):
            return False
        if namespace.allow_user_limited_channels:
            users = allowed_users(name)
            if users is not None:
                return client and credentials.user in users
        return _match(credentials.channels, name) or (
            namespace.allow_subscribe_for_client if client
            else namespace.allow_subscribe_for_anonymous
        )
    if permission is Permission.PUBLISH:
        return (
            _match(credentials.publish, name)
            or (namespace.allow_publish_for_client if client
                else namespace.allow_publish_for_anonymous)
            or (subscribed and namespace.allow_publish_for_subscriber)
        )
    if permission is Permission.HISTORY:
        return (
            _match(credentials.history, name)
            or (client and namespace.allow_history_for_client)
            or (subscribed and namespace.allow_history_for_subscriber)
        )
    return (
        _match(credentials.presence, name)
        or (client and namespace.allow_presence_for_client)
        or (subscribed and namespace.allow_presence_for_subscriber)
    )


__all__ = ["Permission", "needs_subscription_token", "permits"]
