"""Namespaces, permissions, subscription tokens and refresh, against ``python -m fastws``.

One hub process per test, started as an operator would: a TOML file of namespaces
(one per permission option, so each is seen on and off) and a key file.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fastws.hub.client import Client, ReceivedPublication
from tests.support.hub import HubClient, token
from tests.support.hubprocess import HubProcess
from tests.support.leaks import secret
from tests.support.loops import run_async

SECRET = secret("a permissions test secret of 32 bytes or more")
FEATURES = "history_size = 10\nhistory_ttl = 60\npresence = true\n"
NAMESPACES = {
    "none": "",  # every option off
    "kept": FEATURES,  # history and presence kept, nothing granted
    "subclient": "allow_subscribe_for_client = true\n",
    "subanon": "allow_subscribe_for_anonymous = true\n",
    "pubclient": "allow_publish_for_client = true\n",
    "pubanon": "allow_publish_for_anonymous = true\n",
    "pubsub": "allow_publish_for_subscriber = true\n"
    "allow_subscribe_for_client = true\nallow_subscribe_for_anonymous = true\n",
    "histclient": FEATURES + "allow_history_for_client = true\n",
    "histsub": FEATURES + "allow_history_for_subscriber = true\nallow_subscribe_for_client = true\n",
    "presclient": FEATURES + "allow_presence_for_client = true\n",
    "pressub": FEATURES + "allow_presence_for_subscriber = true\nallow_subscribe_for_client = true\n",
    "dm": "allow_user_limited_channels = true\nallow_subscribe_for_client = true\n",
    "vip": FEATURES + "require_subscription_token = true\nallow_subscribe_for_client = true\n",
}
CONFIG = "jwt_leeway = 0\n" + "".join(
    f'\n[[namespaces]]\nname = "{name}"\n{options}' for name, options in NAMESPACES.items()
)


@contextlib.asynccontextmanager
async def hub_process(tmp_path: Path) -> AsyncIterator[HubProcess]:
    config = tmp_path / "hub.toml"
    config.write_text(CONFIG)
    key = tmp_path / "jwt.secret"
    key.write_text(SECRET)
    args = ("--config", str(config), "--jwt-secret-file", str(key))
    async with HubProcess(*args, insecure=False) as hub:
        yield hub


def sign(sub: str, **claims) -> str:
    return token(sub, secret=SECRET, **claims)


def in_seconds(seconds: float) -> int:
    return int(time.time() + seconds)


async def code_of(client: HubClient, method: str, channel: str) -> int:
    """200 when ``method`` on ``channel`` succeeds, else its error code."""
    params = {"channel": channel, "data": 1} if method == "publish" else {"channel": channel}
    reply = await client.call(method, params)
    return reply["error"]["code"] if "error" in reply else 200


# (namespace, method, anonymous?, subscribed first?, expected)
OPTION_CASES = [
    ("none", "subscribe", False, False, 403),
    ("none", "subscribe", True, False, 403),
    ("none", "publish", False, False, 403),
    ("kept", "history", False, False, 403),
    ("kept", "presence", False, False, 403),
    ("subclient", "subscribe", False, False, 200),
    ("subclient", "subscribe", True, False, 403),
    ("subclient", "history", False, True, 403),  # subscribe never implies history
    ("subclient", "presence", False, True, 403),  # ... nor presence
    ("subclient", "publish", False, True, 403),
    ("subanon", "subscribe", True, False, 200),
    ("subanon", "subscribe", False, False, 403),
    ("pubclient", "publish", False, False, 200),
    ("pubclient", "publish", True, False, 403),
    ("pubanon", "publish", True, False, 200),
    ("pubanon", "publish", False, False, 403),
    ("pubsub", "publish", False, False, 403),
    ("pubsub", "publish", False, True, 200),
    ("pubsub", "publish", True, True, 200),
    ("histclient", "history", False, False, 200),
    ("histclient", "history", True, False, 403),
    ("histsub", "history", False, False, 403),
    ("histsub", "history", False, True, 200),
    ("presclient", "presence", False, False, 200),
    ("presclient", "presence", True, False, 403),
    ("pressub", "presence", False, False, 403),
    ("pressub", "presence", False, True, 200),
    ("nowhere", "subscribe", False, False, 404),
    ("nowhere", "publish", False, False, 404),
]


@run_async(loops=("uvloop",), timeout=60)
async def test_every_namespace_option_on_and_off_for_users_and_anonymous(tmp_path) -> None:
    async with hub_process(tmp_path) as hub:
        alice = await HubClient.open(hub.port, token=sign("alice"))
        anonymous = await HubClient.open(hub.port, token=sign(""))
        outcomes = []
        for i, (namespace, method, anon, subscribed, _) in enumerate(OPTION_CASES):
            client = anonymous if anon else alice
            channel = f"{namespace}:case{i}"
            if subscribed:
                await client.result("subscribe", {"channel": channel})
            outcomes.append(await code_of(client, method, channel))
        assert outcomes == [case[-1] for case in OPTION_CASES]
        # Over the HTTP API an undeclared namespace is unknown too.
        status, body = await hub.api("POST", "/api/publish", {"channel": "nowhere:a", "data": 1})
        assert status == 404 and "unknown channel" in body["error"]["message"]
        for client in (alice, anonymous):
            await client.close()


@run_async(loops=("uvloop",), timeout=60)
async def test_claims_grant_on_top_and_star_matches_whole_segments(tmp_path) -> None:
    async with hub_process(tmp_path) as hub:
        claims = {
            "channels": ["kept:*", "none:exact"],
            "publish": ["kept:*"],
            "history": ["kept:*"],
            "presence": ["kept:a"],
            "send": ["bob"],
        }
        ann = await HubClient.open(hub.port, token=sign("ann", **claims))
        assert await code_of(ann, "subscribe", "kept:a") == 200
        assert await code_of(ann, "subscribe", "kept:x:y") == 200
        assert await code_of(ann, "subscribe", "none:exact") == 200
        assert await code_of(ann, "subscribe", "none:exactly") == 403
        assert await code_of(ann, "subscribe", "keptx:a") == 404
        assert await code_of(ann, "publish", "kept:a") == 200
        assert await code_of(ann, "history", "kept:a") == 200
        assert await code_of(ann, "presence", "kept:a") == 200
        assert await code_of(ann, "presence", "kept:b") == 403
        assert (await ann.error("send", {"user": "bobby", "data": 1}))[0] == 403
        await ann.result("send", {"user": "bob", "data": 1})
        # '*' in the middle of a name is no pattern: the token is refused, not widened.
        for bad in (["user:ali*"], ["ali*"], ["a*b"]):
            client = await HubClient.open(hub.port, connect=False)
            code, message = await client.error("connect", {"token": sign("eve", channels=bad)})
            assert code == 401 and "whole segments" in message
            assert (await client.closed())[0] == 4500
        client = await HubClient.open(hub.port, connect=False)
        assert (await client.error("connect", {"token": sign("eve", send=["b*"])}))[0] == 401
        await ann.close()


@run_async(loops=("uvloop",), timeout=60)
async def test_user_limited_channels(tmp_path) -> None:
    async with hub_process(tmp_path) as hub:
        alice = await HubClient.open(hub.port, token=sign("alice", channels=["*"]))
        carol = await HubClient.open(hub.port, token=sign("carol", channels=["*"]))
        anonymous = await HubClient.open(hub.port, token=sign("", channels=["*"]))
        assert await code_of(alice, "subscribe", "dm:talk#alice,bob") == 200
        assert await code_of(alice, "subscribe", "dm:solo#alice") == 200
        # Not listed: refused whatever the namespace's other options and the claims say.
        assert await code_of(carol, "subscribe", "dm:talk#alice,bob") == 403
        assert await code_of(anonymous, "subscribe", "dm:talk#alice,bob") == 403
        assert await code_of(alice, "subscribe", "dm:other#bob") == 403
        # Without allow_user_limited_channels '#' is just a character of the name.
        assert await code_of(carol, "subscribe", "subclient:x#alice") == 200
        for client in (alice, carol, anonymous):
            await client.close()


@pytest.mark.parametrize("channel", ["$kept:room", "vip:room"])
@run_async(loops=("uvloop",), timeout=60)
async def test_channels_that_need_a_subscription_token(tmp_path, channel: str) -> None:
    async with hub_process(tmp_path) as hub:
        claims = {"channels": ["*"], "presence": ["*"]}
        alice = await HubClient.open(hub.port, token=sign("alice", info={"n": 1}, **claims))
        code, message = await alice.error("subscribe", {"channel": channel})
        assert code == 403 and "needs a subscription token" in message
        for bad, why in [
            (sign("bob", channel=channel), "'sub'"),
            (sign("alice", channel=channel + "x"), "'channel'"),
            (sign("alice", channel=channel, exp=in_seconds(-10)), "expired"),
            (token("alice", channel=channel, secret=secret("another secret of at least 32 bytes, too")), ""),
            ("not a jwt", ""),
        ]:
            code, message = await alice.error("subscribe", {"channel": channel, "token": bad})
            assert code == 403 and why in message, message
        await alice.result("ping")  # a bad subscription token does not close the connection
        good = sign("alice", channel=channel, info={"seat": 4})
        await alice.result("subscribe", {"channel": channel, "token": good})
        presence = await alice.result("presence", {"channel": channel})
        assert presence["clients"][alice.client_id]["info"] == {"seat": 4}
        await alice.close()


@run_async(loops=("uvloop",), timeout=60)
async def test_subscription_token_expiry_and_sub_refresh(tmp_path) -> None:
    async with hub_process(tmp_path) as hub:
        alice = await HubClient.open(hub.port, token=sign("alice"))
        short = {"exp": in_seconds(2)}
        for channel in ("$kept:a", "$kept:b"):
            params = {"channel": channel, "token": sign("alice", channel=channel, **short)}
            await alice.result("subscribe", params)
        renewed = sign("alice", channel="$kept:b", exp=in_seconds(60))
        await alice.result("sub_refresh", {"channel": "$kept:b", "token": renewed})
        code, _ = await alice.error(
            "sub_refresh", {"channel": "$kept:b", "token": sign("bob", channel="$kept:b")}
        )
        assert code == 403
        code, _ = await alice.error("sub_refresh", {"channel": "$kept:c", "token": renewed})
        assert code == 403  # the token is for another channel
        (push,) = await alice.pushes_of("unsubscribe", 1, timeout=10)
        assert push == {
            "push": "unsubscribe",
            "channel": "$kept:a",
            "code": 2501,
            "reason": "subscription token expired",
        }
        await asyncio.sleep(1.5)  # past the first expiry of $kept:b, which was refreshed
        for channel in ("$kept:b", "$kept:a"):
            status, _ = await hub.api("POST", "/api/publish", {"channel": channel, "data": 1})
            assert status == 200
        (pub,) = await alice.pushes_of("pub", 1)
        assert pub["channel"] == "$kept:b"
        await alice.no_more_pushes()
        await alice.close()


@run_async(loops=("uvloop",), timeout=60)
async def test_refresh_before_and_after_expiry(tmp_path) -> None:
    async with hub_process(tmp_path) as hub:
        kept = await HubClient.open(hub.port, token=sign("kim", exp=in_seconds(2)))
        lost = await HubClient.open(hub.port, token=sign("lou", exp=in_seconds(2)))
        await kept.result("refresh", {"token": sign("kim", exp=in_seconds(60), channels=["*"])})
        # The new token's grants apply at once.
        assert await code_of(kept, "subscribe", "none:x") == 200
        push = await lost.push(timeout=10)
        assert push == {
            "push": "disconnect",
            "code": 4501,
            "reason": "token expired",
            "reconnect": False,
        }
        assert (await lost.closed())[0] == 4501
        await kept.result("ping")  # past its first exp, still connected
        # Refreshing with an expired token, or another user's, closes like connect.
        late = await HubClient.open(hub.port, token=sign("lea", exp=in_seconds(60)))
        assert (await late.error("refresh", {"token": sign("lea", exp=in_seconds(-5))}))[0] == 401
        assert (await late.closed())[0] == 4501
        other = await HubClient.open(hub.port, token=sign("oz"))
        assert (await other.error("refresh", {"token": sign("eve")}))[0] == 401
        assert (await other.closed())[0] == 4500
        await kept.close()


@run_async(loops=("uvloop",), timeout=60)
async def test_the_python_client_refreshes_its_tokens_before_they_expire(tmp_path) -> None:
    async with hub_process(tmp_path) as hub:
        issued: list[str] = []
        sub_issued: list[str] = []

        def get_token() -> str:
            issued.append("connection")
            return sign("cy", exp=in_seconds(3), publish=["*"])

        async def get_subscription_token(channel: str) -> str | None:
            sub_issued.append(channel)
            return sign("cy", channel=channel, exp=in_seconds(3))

        received: list[ReceivedPublication] = []
        async with Client(
            hub.url(),
            get_token=get_token,
            get_subscription_token=get_subscription_token,
        ) as client:
            await client.subscribe("$kept:live", received.append)
            deadline = time.monotonic() + 20
            sent = 0
            while (len(issued) < 3 or len(sub_issued) < 3) and time.monotonic() < deadline:
                sent += 1
                await client.publish("$kept:live", sent)
                await asyncio.sleep(0.1)
            assert len(issued) >= 3 and len(sub_issued) >= 3
            assert client.reconnects == 0
            sent += 1
            await client.publish("$kept:live", sent)
            for _ in range(100):
                if len(received) == sent:
                    break
                await asyncio.sleep(0.05)
            assert [p.data for p in received] == list(range(1, sent + 1))
            assert client.subscriptions["$kept:live"].active
