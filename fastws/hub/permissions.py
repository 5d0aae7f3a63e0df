"""What a command needs on its target, and whether a connection's token grants it.

Each command that acts on a channel (or, for ``send``, on a user) names one
``Permission``; ``permits`` is the one place that decides it. Today a
permission is granted by a token claim: ``channels`` grants subscribe, history
and presence, ``publish`` grants publish, ``send`` grants send.
"""

from __future__ import annotations

import enum

from fastws.hub.auth import Authenticator, Credentials
from fastws.hub.channels import Patterns


class Permission(enum.Enum):
    """A right on a channel or user; the value completes "not allowed to ..."."""

    SUBSCRIBE = "subscribe to"
    PUBLISH = "publish to"
    HISTORY = "read the history of"
    PRESENCE = "read the presence of"
    SEND = "send to user"


def _claim(credentials: Credentials, permission: Permission) -> Patterns | None:
    if permission is Permission.PUBLISH:
        return credentials.publish
    if permission is Permission.SEND:
        return credentials.send
    return credentials.channels


def permits(
    auth: Authenticator, credentials: Credentials, permission: Permission, name: str
) -> bool:
    """Does a connection with ``credentials`` have ``permission`` on ``name``?"""
    return auth.allowed(_claim(credentials, permission), name)


__all__ = ["Permission", "permits"]
