"""The command layer: one table, one validation, the same answers over WebSocket and HTTP."""

from __future__ import annotations

import pytest

from fastws.hub.commands import API_COMMANDS, CLIENT_COMMANDS, COMMANDS
from fastws.hub.permissions import Permission
from fastws.hub.protocol import codes
from tests.support.hub import HubClient, api, running_hub
from tests.support.loops import run_async


def test_every_command_is_reachable_and_names_its_permission_target() -> None:
    assert set(CLIENT_COMMANDS) == {
        "connect", "ping", "refresh", "rpc", "subscribe", "sub_refresh", "unsubscribe", "publish", "send",
        "presence", "history",
    }  # fmt: skip
    assert {name: c.http for name, c in API_COMMANDS.items()} == {
        "publish": "POST",
        "broadcast": "POST",
        "send": "POST",
        "subscribe": "POST",
        "unsubscribe": "POST",
        "disconnect": "POST",
        "refresh": "POST",
        "presence": "GET",
        "presence_stats": "GET",
        "history": "GET",
        "history_remove": "POST",
        "channels": "GET",
        "info": "GET",
        "batch": "POST",
    }
    for command in COMMANDS:
        if command.permission is not None:
            assert command.target in {f.name for f in command.fields if f.required}
        if command.grant is not None:
            assert command.grant in {f.name for f in command.fields}
    assert {c.name: c.permission for c in COMMANDS if c.permission} == {
        "subscribe": Permission.SUBSCRIBE,
        "sub_refresh": Permission.SUBSCRIBE,
        "publish": Permission.PUBLISH,
        "send": Permission.SEND,
        "presence": Permission.PRESENCE,
        "history": Permission.HISTORY,
    }


@pytest.mark.parametrize(
    ("name", "params", "why"),
    [
        ("publish", {"channel": "a"}, "needs the 'data' field"),
        ("publish", {"channel": "a", "data": 1, "extra": 2}, "unknown field 'extra'"),
        ("publish", {"channel": "a b", "data": 1}, "characters outside"),
        ("send", {"user": "", "data": 1}, "non-empty string"),
        ("send", {"user": 7, "data": 1}, "non-empty string"),
        ("history", {"channel": "a", "limit": -1}, "integer >= 0"),
        ("history", {"channel": "a", "limit": True}, "integer >= 0"),
        ("history", {"channel": "a", "since": {"epoch": "e"}}, "since must be"),
        ("broadcast", {"channels": "a", "data": 1}, "array of channel names"),
        ("disconnect", {"user": "u", "reason": "x" * 101}, "at most 100 bytes"),
        ("disconnect", {"user": "u", "code": 1000}, "from 4000 to 4999"),
        ("channels", {"pattern": "a*b"}, "whole segments"),
        ("batch", {"commands": [1]}, "array of at most 1000 objects"),
        ("unsubscribe", {"user": "u", "channel": "c", "client": ""}, "non-empty string"),
    ],
)
def test_fields_are_checked_once_for_every_caller(name: str, params: dict, why: str) -> None:
    with pytest.raises(codes.HubError) as caught:
        API_COMMANDS[name].check(params)
    assert caught.value.code == codes.BAD_REQUEST and why in caught.value.message


def test_checked_values_are_converted_and_defaults_filled_in() -> None:
    values = API_COMMANDS["history"].check({"channel": "a", "since": {"epoch": "e", "offset": 3}})
    assert values["limit"] is None and values["since"].offset == 3
    assert API_COMMANDS["publish"].check({"channel": "a", "data": {"k": 1}})["data"] == b'{"k":1}'
    assert API_COMMANDS["disconnect"].check({"user": ""})["reason"] == (
        codes.DISCONNECTED_BY_API.reason
    )
    assert API_COMMANDS["history"].from_query({"channel": "a", "limit": "7"}) == {
        "channel": "a",
        "limit": 7,
    }
    since = API_COMMANDS["history"].from_query({"channel": "a", "since": "ep:och:12"})["since"]
    assert (since.epoch, since.offset) == ("ep:och", 12)


@run_async()
async def test_a_client_and_the_api_get_the_same_error_for_the_same_mistake() -> None:
    async with running_hub(api_key="key") as hub:
        client = await HubClient.open(hub.port)
        for params in ({"channel": "a b", "data": 1}, {"channel": "a"}, {"data": 1}):
            code, message = await client.error("publish", params)
            status, body = await api(hub.port, "POST", "/api/v1/publish", params)
            assert status == code == 400
            assert body["error"] == {"code": code, "message": message}
        await client.close()
