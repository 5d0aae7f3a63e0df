"""Namespaces and the one permission decision, without a server."""

from __future__ import annotations

import time

from fastws.hub.auth import Authenticator
from fastws.hub.config import HubConfig
from fastws.hub.namespaces import Namespace, allowed_users, is_private, namespace_name
from fastws.hub.permissions import Permission, permits
from tests.support.hub import HubClient, running_hub, token
from tests.support.loops import run_async

SECRET = "a namespaces test secret of 32 bytes or more"


def test_a_channels_namespace_comes_from_its_name() -> None:
    assert namespace_name("chat:lobby") == "chat"
    assert namespace_name("chat:a:b") == "chat"
    assert namespace_name("lobby") == ""
    assert namespace_name("$vip:1") == "vip" and is_private("$vip:1")
    assert namespace_name("$lobby") == "" and not is_private("lobby")
    assert allowed_users("dm:x#alice,bob") == ["alice", "bob"]
    assert allowed_users("dm:x") is None


def test_permits_needs_a_grant_from_the_namespace_or_a_claim() -> None:
    auth = Authenticator(HubConfig(jwt_secret=SECRET))
    bare = auth.authenticate(token("ann", secret=SECRET))
    granted = auth.authenticate(token("ann", secret=SECRET, history=["ns:*"]))
    closed, open_history = Namespace("ns"), Namespace("ns", allow_history_for_client=True)
    for permission in Permission:
        if permission is not Permission.SEND:
            assert not permits(auth, closed, bare, permission, "ns:a", subscribed=True)
    assert permits(auth, open_history, bare, Permission.HISTORY, "ns:a")
    assert not permits(auth, open_history, bare, Permission.PRESENCE, "ns:a")
    assert permits(auth, closed, granted, Permission.HISTORY, "ns:a")
    assert not permits(auth, closed, granted, Permission.SUBSCRIBE, "ns:a")
    insecure = Authenticator(HubConfig(insecure=True))
    assert permits(insecure, closed, insecure.authenticate(None), Permission.PUBLISH, "ns:a")


@run_async()
async def test_sub_refresh_of_a_channel_not_subscribed_and_expiry_pushes() -> None:
    async with running_hub(jwt_secret=SECRET, jwt_leeway=0.0) as hub:
        client = await HubClient.open(hub.port, token=token("ann", secret=SECRET))
        channel = "$room:x"
        renewed = token("ann", secret=SECRET, channel=channel)
        code, message = await client.error("sub_refresh", {"channel": channel, "token": renewed})
        assert code == 400 and "not subscribed" in message
        expiring = token("ann", secret=SECRET, channel=channel, exp=int(time.time()) + 1)
        await client.result("subscribe", {"channel": channel, "token": expiring})
        (push,) = await client.pushes_of("unsubscribe", 1)
        assert push["channel"] == channel
        assert channel not in hub.node.sessions[client.client_id].subscriptions
        await client.result("subscribe", {"channel": channel, "token": renewed})  # again
        await client.close()
