"""Connection tokens end to end: algorithms, where the token travels, failures, permissions."""

from __future__ import annotations

import time

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fastws.hub.auth import Authenticator, TokenError
from fastws.hub.config import ConfigError, HubConfig
from tests.support.hub import SECRET, HubClient, http, running_hub, token
from tests.support.loops import run_async


def write_public_key(tmp_path, private_key) -> str:
    path = tmp_path / "public.pem"
    path.write_bytes(
        private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return str(path)


@run_async()
async def test_connect_with_hs256_token() -> None:
    async with running_hub(jwt_secret=SECRET) as hub:
        client = await HubClient.open(hub.port, connect=False)
        reply = await client.call("connect", {"token": token("alice")})
        result = reply["result"]
        assert result["user"] == "alice"
        assert isinstance(result["client"], str) and result["client"]
        assert result["ping"] == 25
        await client.close()


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
@run_async()
async def test_connect_with_public_key_tokens(tmp_path, algorithm: str) -> None:
    if algorithm == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        private = ec.generate_private_key(ec.SECP256R1())
    key_file = write_public_key(tmp_path, private)
    async with running_hub(jwt_public_key=key_file) as hub:
        client = await HubClient.open(hub.port, token=token("bob", private, algorithm))
        assert client.client_id
        # An HS256 token is refused: only the public key's algorithm is accepted.
        other = await HubClient.open(hub.port, connect=False)
        code, message = await other.error("connect", {"token": token("bob")})
        assert code == 401 and "HS256" in message
        assert (await other.closed())[0] == 4500
        await client.close()


@run_async()
async def test_token_at_upgrade_by_query_or_bearer_header() -> None:
    async with running_hub(jwt_secret=SECRET) as hub:
        by_query = await HubClient.open(hub.port, connect=False, query=f"?token={token('q')}")
        assert (await by_query.result("connect"))["user"] == "q"
        by_header = await HubClient.open(
            hub.port, connect=False, headers=(("Authorization", f"Bearer {token('h')}"),)
        )
        assert (await by_header.result("connect", {}))["user"] == "h"
        # A token in connect wins over the one at the upgrade.
        both = await HubClient.open(hub.port, connect=False, query=f"?token={token('q')}")
        assert (await both.result("connect", {"token": token("c")}))["user"] == "c"
        for client in (by_query, by_header, both):
            await client.close()


@pytest.mark.parametrize(
    ("make_token", "close_code"),
    [
        (lambda: token("eve", secret="another secret of at least 32 bytes"), 4500),
        (lambda: "not.a.jwt", 4500),
        (lambda: token("eve", exp=int(time.time()) - 60), 4501),
        (lambda: token("eve", nbf=int(time.time()) + 600), 4500),
        (lambda: None, 4500),
        (lambda: token("eve", channels="chat:*"), 4500),  # claims of the wrong type
    ],
)
@run_async()
async def test_bad_token_gets_error_then_close(make_token, close_code: int) -> None:
    async with running_hub(jwt_secret=SECRET) as hub:
        client = await HubClient.open(hub.port, connect=False)
        value = make_token()
        code, _ = await client.error("connect", {} if value is None else {"token": value})
        assert code == 401
        push = await client.push()
        assert push["push"] == "disconnect"
        assert push["code"] == close_code and push["reconnect"] is False
        assert (await client.closed())[0] == close_code
        assert not hub.node.sessions


@run_async()
async def test_audience_and_issuer_are_checked() -> None:
    async with running_hub(jwt_secret=SECRET, jwt_audience="hub", jwt_issuer="me") as hub:
        good = await HubClient.open(hub.port, token=token("a", aud="hub", iss="me"))
        for claims in ({"aud": "other", "iss": "me"}, {"aud": "hub", "iss": "other"}, {}):
            bad = await HubClient.open(hub.port, connect=False)
            code, _ = await bad.error("connect", {"token": token("a", **claims)})
            assert code == 401
            assert (await bad.closed())[0] == 4500
        await good.close()


@run_async()
async def test_commands_before_connect_are_refused() -> None:
    async with running_hub(jwt_secret=SECRET) as hub:
        client = await HubClient.open(hub.port, connect=False)
        for method, params in [("subscribe", {"channel": "room:1"}), ("ping", None)]:
            code, message = await client.error(method, params)
            assert code == 401 and "connect" in message
        await client.result("connect", {"token": token()})
        code, message = await client.error("connect", {"token": token()})
        assert code == 400 and "already" in message
        await client.close()


@run_async()
async def test_permissions_from_claims() -> None:
    async with running_hub(jwt_secret=SECRET) as hub:
        alice = await HubClient.open(
            hub.port,
            token=token("alice", channels=["room:*", "news"], publish=["room:1"], send=["bob"]),
        )
        await alice.result("subscribe", {"channel": "room:1"})
        await alice.result("subscribe", {"channel": "news"})
        assert (await alice.error("subscribe", {"channel": "newsroom"}))[0] == 403
        assert (await alice.error("subscribe", {"channel": "plain:1"}))[0] == 403
        await alice.result("publish", {"channel": "room:1", "data": 1})
        assert (await alice.error("publish", {"channel": "room:2", "data": 1}))[0] == 403
        assert (await alice.error("history", {"channel": "plain:x"}))[0] == 403
        assert (await alice.error("presence", {"channel": "plain:x"}))[0] == 403
        await alice.result("send", {"user": "bob", "data": "hi"})
        assert (await alice.error("send", {"user": "carol", "data": "hi"}))[0] == 403
        # No claims at all: nothing is allowed when the hub has a key.
        bare = await HubClient.open(hub.port, token=token("bare"))
        assert (await bare.error("subscribe", {"channel": "room:1"}))[0] == 403
        assert (await bare.error("publish", {"channel": "room:1", "data": 1}))[0] == 403
        assert (await bare.error("send", {"user": "bob", "data": 1}))[0] == 403
        await alice.close()
        await bare.close()


@run_async(loops=("uvloop",))
async def test_connection_closes_when_its_token_expires() -> None:
    async with running_hub(jwt_secret=SECRET, jwt_leeway=0.0) as hub:
        client = await HubClient.open(hub.port, token=token("t", exp=int(time.time()) + 1))
        push = await client.push(timeout=5)
        assert push == {
            "push": "disconnect",
            "code": 4501,
            "reason": "token expired",
            "reconnect": False,
        }
        assert (await client.closed())[0] == 4501


@run_async()
async def test_insecure_mode_anonymous_and_dev_tokens() -> None:
    async with running_hub() as hub:
        anonymous = await HubClient.open(hub.port)
        assert (await anonymous.result("ping")) == {}
        status, headers, body = await http(hub.port, "GET", "/api/dev/token?user=zoe")
        assert status == 200 and headers["content-type"] == "application/json"
        dev = orjson.loads(body)
        assert dev["user"] == "zoe"
        named = await HubClient.open(hub.port, connect=False)
        assert (await named.result("connect", {"token": dev["token"]}))["user"] == "zoe"
        # Without claims every permission is granted in this mode, in declared namespaces.
        await named.result("subscribe", {"channel": "plain:at.all"})
        await named.result("publish", {"channel": "plain:at.all", "data": None})
        code, message = await named.error("subscribe", {"channel": "anything:at.all"})
        assert code == 404 and "unknown channel" in message
        # A token signed with another secret is still refused.
        forged = await HubClient.open(hub.port, connect=False)
        assert (await forged.error("connect", {"token": token("zoe")}))[0] == 401
        assert (await forged.closed())[0] == 4500
        await anonymous.close()
        await named.close()


@run_async()
async def test_dev_token_endpoint_is_absent_with_a_key() -> None:
    async with running_hub(jwt_secret=SECRET) as hub:
        status, _, body = await http(hub.port, "GET", "/api/dev/token?user=zoe")
        assert status == 404
        assert orjson.loads(body)["error"]["code"] == 404


def test_dev_tokens_need_insecure_mode() -> None:
    auth = Authenticator(HubConfig(jwt_secret=SECRET))
    with pytest.raises(RuntimeError):
        auth.dev_token("x")
    with pytest.raises(TokenError) as caught:
        auth.authenticate(None)
    assert caught.value.disconnect.code == 4500


def test_public_key_file_must_hold_a_usable_key(tmp_path) -> None:
    path = tmp_path / "key.pem"
    path.write_text("not a key")
    with pytest.raises(ConfigError, match="not a PEM public key"):
        Authenticator(HubConfig(jwt_public_key=str(path)))
    private = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(ConfigError, match="P-256"):
        Authenticator(HubConfig(jwt_public_key=write_public_key(tmp_path, private)))
