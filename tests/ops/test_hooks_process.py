"""Hooks in ``python -m fastws`` as an operator starts it: a module named by ``--hooks``
and found on the PYTHONPATH, with the headers it is told chosen by ``--hook-headers``;
and the proxy's static headers, given in a file and in the environment, on the requests
of every worker and never in a worker's environment or the log."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tests.support.cluster import on_both_workers
from tests.support.hooks_app import proxy_backend
from tests.support.hub import HubClient
from tests.support.hubprocess import HubProcess
from tests.support.loops import run_async
from tests.support.paths import ROOT

MODULE = "realtime_under_test"
HOOKS = '''
"""The hooks of an application: connect by the X-User header, messages shouted."""

from fastws.hub.hooks import Refuse


async def on_connect(ctx):
    user = ctx.headers.get("x-user")
    if not user:
        raise Refuse("name yourself in X-User", 401)
    return {"user": user, "data": {"headers": ctx.headers, "remote_addr": ctx.remote_addr}}


async def on_subscribe(ctx, channel, data):
    return None


async def on_publish(ctx, channel, data):
    if "spam" in data["text"]:
        raise Refuse("no spam here", 400)
    return {"data": {"text": data["text"].upper(), "by": ctx.user}}
'''


@run_async(loops=("uvloop",), timeout=60)
async def test_a_hooks_module_on_the_pythonpath_decides_in_the_process(tmp_path: Path) -> None:
    (tmp_path / f"{MODULE}.py").write_text(HOOKS)
    hub = HubProcess(
        "--hooks", MODULE, "--hook-headers", "X-User,Cookie",
        "--subscribe-hook", "true", "--publish-hook", "true",
        env={"PYTHONPATH": os.pathsep.join((str(tmp_path), str(ROOT)))},
        insecure=False,
    )  # fmt: skip
    async with hub:
        headers = (("X-User", "ann"), ("Cookie", "theme=dark"), ("X-Other", "1"))
        ann = await HubClient.open(hub.port, headers=headers, connect=False)
        result = await ann.result("connect", {})
        assert result["user"] == "ann"
        assert result["data"] == {
            "headers": {"x-user": "ann", "cookie": "theme=dark"}, "remote_addr": "127.0.0.1"
        }  # fmt: skip
        await ann.result("subscribe", {"channel": "lobby"})
        await ann.result("publish", {"channel": "lobby", "data": {"text": "hello"}})
        [pub] = await ann.pushes_of("pub", 1)
        assert pub["data"] == {"text": "HELLO", "by": "ann"}
        spam = {"channel": "lobby", "data": {"text": "buy spam"}}
        assert await ann.error("publish", spam) == (400, "no spam here")
        await ann.no_more_pushes()

        nobody = await HubClient.open(hub.port, connect=False)
        assert await nobody.error("connect", {}) == (401, "name yourself in X-User")
        assert (await nobody.closed())[0] == 4504
        await ann.close()


@run_async(loops=("uvloop",), timeout=90)
async def test_static_headers_from_a_file_and_the_env_reach_every_workers_requests(
    tmp_path: Path,
) -> None:
    secret_file = tmp_path / "hub-to-backend"
    secret_file.write_text("Authorization=Bearer from-the-file-7c1e\n")
    seen: list[dict] = []
    async with proxy_backend(seen) as base:
        hub = HubProcess(
            "--workers", "2", "--proxy-rpc-endpoint", f"{base}/rpc",
            "--proxy-static-headers-file", str(secret_file),
            env={"FASTWS_PROXY_STATIC_HEADERS": "X-Hub-Region=eu-1\nX-Hub-Key=from-the-env-91d2"},
        )  # fmt: skip
        async with hub:
            clients = await on_both_workers(hub, "ann")
            for client in clients:
                assert (await client.result("rpc", {"method": "echo", "data": 1}))["data"] == 1
            requests = [request["http"] for request in seen if request["event"] == "rpc"]
            assert len(requests) == len(clients)
            for http in requests:
                assert http["authorization"] == "Bearer from-the-file-7c1e"
                assert http["x-hub-key"] == "from-the-env-91d2"
                assert http["x-hub-region"] == "eu-1"
                assert http["user-agent"] == "fastws-hub"
            for pid in hub.workers():
                environ = Path(f"/proc/{pid}/environ").read_bytes()
                assert b"from-the-env" not in environ
            assert "from-the-" not in hub.log()
            await asyncio.gather(*(client.close() for client in clients))
