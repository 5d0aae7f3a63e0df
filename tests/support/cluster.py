"""Clients of a hub spread over its workers, and what its notification hooks were told."""

from __future__ import annotations

from tests.support.hub import HubClient
from tests.support.hubprocess import HubProcess, dev_token
from tests.support.ops import metric


async def open_client(hub: HubProcess, user: str) -> HubClient:
    return await HubClient.open(hub.port, token=await dev_token(hub.port, user))


async def on_both_workers(hub: HubProcess, user: str) -> list[HubClient]:
    """Connections of ``user``, opened until both workers hold some (bounded)."""
    clients = [await open_client(hub, user)]
    for _ in range(40):
        samples = await hub.metrics()
        if all(metric(samples, "fastws_connections", worker=w) > 0 for w in ("0", "1")):
            return clients
        clients.append(await open_client(hub, user))
    raise AssertionError("every connection landed on the same worker")


def channel_events(seen: list[dict]) -> list[tuple[str, str]]:
    """The occupied and vacated notifications among what the proxy backend was sent."""
    return [(e["event"], e["channel"]) for e in seen if e["event"].startswith("channel_")]
