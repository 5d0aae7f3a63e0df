"""The Python client of the hub: one logical connection that outlives the network.

    async with Client("ws://127.0.0.1:8080/connection", get_token=get_token) as client:
        sub = await client.subscribe("chat:lobby")
        await sub.publish({"text": "hi"})
        async for pub in sub:
            print(pub.offset, pub.data)

When the socket drops, the client reconnects with exponential backoff and full
jitter, asks for a fresh token (``get_token``), and subscribes
again to every channel from the last position it saw. The hub then replays what
was missed (``recovered=True``) or says it cannot (``on_resync``). Publications
reach the application once each and in offset order across all of that. Before
a token's ``exp`` the client asks ``get_token`` (or, for a subscription token,
``get_subscription_token(channel)``) for a new one and hands it to the hub
without reconnecting (``tokens``).

Modules, as in other client SDKs: ``client`` (the connection's life: connect,
reconnect, commands, pushes), ``session`` (one WebSocket connection: commands
and their replies), ``subscription``, ``types`` (what the application
receives), ``inbox`` (the queues read with ``async for``), ``backoff`` and
``errors``. The three encodings (``subprotocol=``: JSON, MessagePack,
Protobuf) give the application the same values; binary data is ``bytes``
both ways. Encodings, codes and ``StreamPosition`` come from
``fastws.hub.protocol``, shared with the server.
"""

from fastws.hub.client.backoff import backoff_delay
from fastws.hub.client.client import Client, ClientState, Token
from fastws.hub.client.errors import CommandTimeout, Disconnected, may_reconnect
from fastws.hub.client.subscription import Subscription
from fastws.hub.client.types import History, Message, ReceivedClientInfo, ReceivedPublication
from fastws.hub.protocol.codes import HubError
from fastws.hub.protocol.types import StreamPosition
from fastws.hub.protocol.wire import JSON_SUBPROTOCOL, MSGPACK_SUBPROTOCOL, PROTOBUF_SUBPROTOCOL

__all__ = [
    "JSON_SUBPROTOCOL",
    "MSGPACK_SUBPROTOCOL",
    "PROTOBUF_SUBPROTOCOL",
    "Client",
    "ClientState",
    "CommandTimeout",
    "Disconnected",
    "History",
    "HubError",
    "Message",
    "ReceivedClientInfo",
    "ReceivedPublication",
    "StreamPosition",
    "Subscription",
    "Token",
    "backoff_delay",
    "may_reconnect",
]
