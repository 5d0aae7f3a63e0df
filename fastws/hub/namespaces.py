"""Namespaces: what the hub keeps for a channel and who may use it, decided by its name.

A channel ``ns:name`` is in namespace ``ns``; a name without ``:`` is in the
default namespace (named ""). A leading ``$`` marks a channel that needs a
subscription token and is not part of the namespace: ``$ns:name`` is in ``ns``.
With ``allow_user_limited_channels``, ``ns:name#u1,u2`` may be subscribed only
by the users listed after ``#``.

Every option defaults to off: a namespace keeps nothing and grants nothing
unless it says so (the token claims grant on top, ``fastws.hub.permissions``).
The default namespace takes its options from the top-level configuration; the
others are declared as ``[[namespaces]]`` tables. A channel in a namespace that
is not declared is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

PRIVATE_PREFIX = "$"
NAMESPACE_SEPARATOR = ":"
USER_SEPARATOR = "#"


@dataclass(frozen=True)
class Namespace:
    """The options of one namespace (``name`` is "" for the default one)."""

    name: str = ""
    history_size: int = 0
    history_ttl: float = 0.0
    presence: bool = False
    join_leave: bool = False
    allow_subscribe_for_client: bool = False
    allow_subscribe_for_anonymous: bool = False
    allow_publish_for_client: bool = False
    allow_publish_for_subscriber: bool = False
    allow_publish_for_anonymous: bool = False
    allow_history_for_client: bool = False
    allow_history_for_subscriber: bool = False
    allow_presence_for_client: bool = False
    allow_presence_for_subscriber: bool = False
    allow_user_limited_channels: bool = False
    require_subscription_token: bool = False
    subscribe_hook: bool = False  # the subscribe hook decides instead of grants
    publish_hook: bool = False  # the publish hook decides, and may rewrite the data


KINDS = {
    f.name: {int: "int", float: "float", bool: "bool", str: "str"}[type(f.default)]
    for f in fields(Namespace)
}

# The options a namespace sets, which the default namespace reads from the top level.
OPTIONS = tuple(name for name in KINDS if name != "name")


def namespace_name(channel: str) -> str:
    """The namespace of ``channel`` ("" for the default one)."""
    name = channel[1:] if channel.startswith(PRIVATE_PREFIX) else channel
    namespace, separator, _ = name.partition(NAMESPACE_SEPARATOR)
    return namespace if separator else ""


def is_private(channel: str) -> bool:
    """Does ``channel`` need a subscription token whatever its namespace says?"""
    return channel.startswith(PRIVATE_PREFIX)


def allowed_users(channel: str) -> list[str] | None:
    """The users after ``#`` in a user-limited channel name, None when it names none."""
    _, separator, users = channel.rpartition(USER_SEPARATOR)
    return users.split(",") if separator else None


def namespace_error(namespace: Namespace) -> str | None:
    """What is wrong with ``namespace`` (the message names the option), or None."""
    name = namespace.name
    if name and not all(c.isalnum() or c in "_-." for c in name):
        return f"name: {name!r} may hold only letters, digits and _ - ."
    if namespace.history_size < 0:
        return "history_size: must not be negative"
    if namespace.history_ttl < 0:
        return "history_ttl: must not be negative"
    if namespace.history_size > 0 and namespace.history_ttl <= 0:
        return (
            "history_ttl: must be positive when history_size is "
            "(history is bounded by size and age)"
        )
    return None


class Namespaces:
    """The declared namespaces; ``get(channel)`` is one dict lookup after the name is split."""

    __slots__ = ("_by_name",)

    def __init__(self, default: Namespace, declared: list[Namespace]) -> None:
        self._by_name = {"": default, **{ns.name: ns for ns in declared}}

    def get(self, channel: str) -> Namespace | None:
        """The namespace of ``channel``; None when it is not declared."""
        return self._by_name.get(namespace_name(channel))


__all__ = [
    "KINDS",
    "OPTIONS",
    "Namespace",
    "Namespaces",
    "allowed_users",
    "is_private",
    "namespace_error",
    "namespace_name",
]
