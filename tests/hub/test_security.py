"""Fail closed, Origin, the internal port, secrets out of logs, strict claims, operator tokens:
``python -m fastws`` started as an operator starts it, over real sockets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import jwt
import orjson
import pytest

import fastws
from fastws.hub import app as hub_app
from fastws.hub.config import redact_url
from tests.support.hub import SECRET, HubClient, http, running_hub, token
from tests.support.hubprocess import API_KEY, HubProcess
from tests.support.leaks import leaked_lines, secret
from tests.support.loops import run_async
from tests.support.paths import ROOT

HUB_SECRET = secret("hub-secret-for-the-security-tests-0123456789")
FILE_API_KEY = secret("api-key-from-a-file-0123456789")
INTERNAL = re.compile(r"internal port http://127\.0\.0\.1:(\d+)/")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTWS_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return {**env, **extra}


def start_fails(*args: str, **env: str) -> str:
    """Run ``python -m fastws ARGS``, which must refuse to start; its one line of stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "fastws", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(**env),
        cwd=ROOT,
    )
    assert done.returncode == 2, done
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr and not done.stdout
    return lines[0]


@pytest.fixture
def secret_file(tmp_path: Path) -> str:
    path = tmp_path / "jwt.secret"
    path.write_text(HUB_SECRET + "\n")
    return str(path)


def test_every_start_without_a_usable_key_exits_with_one_clear_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("")
    newline = tmp_path / "newline"
    newline.write_text("\n")
    key = tmp_path / "secret"
    key.write_text(HUB_SECRET)
    for args, env, expected in [
        ((), {}, "no token key: set jwt_secret_file, jwt_secret or jwt_public_key"),
        ((), {"FASTWS_JWT_SECRET": ""}, "jwt_secret: is empty"),
        (("--jwt-secret", ""), {}, "jwt_secret: is empty"),
        (("--jwt-secret-file", str(empty)), {}, "jwt_secret_file: '" + str(empty) + "' is empty"),
        (("--jwt-secret-file", str(newline)), {}, "is empty"),
        (("--jwt-secret-file", str(tmp_path / "none")), {}, "jwt_secret_file: cannot read"),
        (("--api-key", FILE_API_KEY), {}, "api_key alone protects only the HTTP API"),
        (("--jwt-secret-file", str(key)), {"FASTWS_API_KEY": ""}, "api_key: is empty"),
        (("--jwt-secret-file", str(key), "--api-key-file", str(empty)), {}, "api_key_file"),
        ((), {"FASTWS_JWT_SECRET_FILE": str(key), "FASTWS_JWT_SECRET": HUB_SECRET}, "both set"),
        (("--jwt-secret-file", str(key), "--jwt-secret", HUB_SECRET), {}, "both set"),
    ]:
        line = start_fails(*args, **env)
        assert line.startswith("python -m fastws: error: "), line
        assert expected in line, (args, env, line)
        assert HUB_SECRET not in line and FILE_API_KEY not in line
    assert "--insecure" in start_fails()  # the message says how to run without a key


@run_async(loops=("uvloop",), timeout=60)
async def test_insecure_is_explicit_and_warns(secret_file: str) -> None:
    for hub in (
        HubProcess("--log-level", "warning"),  # HubProcess passes --insecure
        HubProcess(env={"FASTWS_INSECURE": "1"}, insecure=False),
    ):
        async with hub:
            assert "INSECURE development mode" in hub.log()
            status, _, _ = await http(hub.port, "GET", "/api/dev/token?user=x")
            assert status == 200
    async with HubProcess("--jwt-secret-file", secret_file, insecure=False) as hub:
        assert "INSECURE" not in hub.log()
        status, _, body = await http(hub.port, "GET", "/api/dev/token?user=x")
        assert status == 404 and orjson.loads(body)["error"]["code"] == 404
        client = await HubClient.open(hub.port, connect=False)
        assert (await client.error("connect", {}))[0] == 401
        assert (await client.closed())[0] == 4500


@run_async(loops=("uvloop",))
async def test_insecure_warning_repeats(monkeypatch, caplog) -> None:
    monkeypatch.setattr(hub_app, "INSECURE_WARNING_INTERVAL", 0.01)
    with caplog.at_level(logging.WARNING, logger="fastws.hub"):
        import asyncio

        task = asyncio.get_running_loop().create_task(hub_app.warn_insecure())
        while sum("INSECURE" in r.getMessage() for r in caplog.records) < 3:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def origin_handshake(port: int, origin: str | None) -> int:
    """The status of an upgrade to /connection sending ``origin`` (101: accepted)."""
    url = f"ws://127.0.0.1:{port}/connection"
    try:
        async with fastws.connect(url, origin=origin, subprotocols=("fastws.json",)):
            return 101
    except fastws.HandshakeError as exc:
        return exc.status


@run_async(loops=("uvloop",), timeout=60)
async def test_origin_defaults_to_the_hubs_own_host(secret_file: str) -> None:
    async with HubProcess("--jwt-secret-file", secret_file, insecure=False) as hub:
        own = f"http://127.0.0.1:{hub.port}"
        assert await origin_handshake(hub.port, own) == 101
        assert await origin_handshake(hub.port, own.upper()) == 101
        assert await origin_handshake(hub.port, None) == 101  # not a browser
        for other in (
            "https://evil.example",
            f"http://127.0.0.1:{hub.port + 1}",
            f"http://localhost:{hub.port}",
            "null",
        ):
            assert await origin_handshake(hub.port, other) == 403, other


@run_async(loops=("uvloop",))
async def test_allowed_origins_star_opens_and_a_list_is_exact() -> None:
    async with running_hub(allowed_origins=["*"]) as hub:
        assert await origin_handshake(hub.port, "https://anyone.example") == 101
    async with running_hub(allowed_origins=["https://a.example", "https://b.example:8443"]) as hub:
        assert await origin_handshake(hub.port, "https://a.example") == 101
        assert await origin_handshake(hub.port, "https://b.example:8443") == 101
        assert await origin_handshake(hub.port, "https://b.example") == 403
        assert await origin_handshake(hub.port, "https://a.example.evil") == 403
        assert await origin_handshake(hub.port, f"http://127.0.0.1:{hub.port}") == 403


async def check_internal_port(hub: HubProcess) -> None:
    match = next(m for m in map(INTERNAL.search, hub.printed().splitlines()) if m)
    internal = int(match.group(1))
    public = hub.port
    for path in ("/metrics", "/ready", "/api/v1/info", "/api/info"):
        status, headers, body = await http(public, "GET", path, api_key=API_KEY)
        assert status == 404 and headers["content-type"] == "application/json", (path, body)
    assert (await http(public, "GET", "/health"))[::2] == (200, b"ok")
    assert (await http(public, "GET", "/"))[0] == 200
    assert await origin_handshake(public, None) == 101
    assert (await http(internal, "GET", "/metrics"))[0] == 200
    assert (await http(internal, "GET", "/ready"))[::2] == (200, b"ready")
    assert (await http(internal, "GET", "/health"))[::2] == (200, b"ok")
    status, _, body = await http(internal, "GET", "/api/v1/info", api_key=API_KEY)
    assert status == 200 and orjson.loads(body)["result"]["version"] == fastws.__version__
    assert (await http(internal, "GET", "/api/v1/info"))[0] == 401  # the key is still needed
    assert (await http(internal, "GET", "/"))[0] == 404
    assert await origin_handshake(internal, None) == 404


@run_async(loops=("uvloop",), timeout=90)
async def test_internal_port_alone_serves_metrics_api_and_ready(secret_file: str) -> None:
    for workers in ("1", "2"):
        args = ("--jwt-secret-file", secret_file, "--internal-port", "0", "--workers", workers)
        async with HubProcess(*args, insecure=False) as hub:
            await check_internal_port(hub)
            assert await hub.stop() == 0


def proc_strings(pid: int) -> str:
    """The command line and environment of a process, as one text."""
    base = Path("/proc") / str(pid)
    return ((base / "cmdline").read_bytes() + b"\0" + (base / "environ").read_bytes()).decode(
        errors="replace"
    )


@run_async(loops=("uvloop",), timeout=120)
async def test_secrets_stay_out_of_argv_logs_and_probes_across_an_upgrade(tmp_path: Path) -> None:
    import signal

    from tests.support.net import free_port

    password = secret("redis-password-of-the-tests")
    api_key = secret("api-key-on-the-command-line-0123")
    broker = f"redis://:{password}@127.0.0.1:{free_port()}/0"  # nobody listens: not ready
    args = (
        "--workers", "2", "--jwt-secret", HUB_SECRET, "--api-key", api_key, "--broker", broker,
        "--internal-port", "0", "--log-level", "debug",
    )  # fmt: skip
    async with HubProcess(*args, insecure=False) as hub:
        assert HUB_SECRET.encode() in Path(f"/proc/{hub.pid}/cmdline").read_bytes()  # as started
        internal = int(next(m for m in map(INTERNAL.search, hub.printed().splitlines()) if m).group(1))
        await hub.wait_log("unreachable")
        hub.send(signal.SIGUSR2)
        await hub.wait_listening(2, timeout=60)
        await hub.wait_log("worker 1 ready", count=2)
        master = proc_strings(hub.pid)
        assert "--workers=2" in master and "fastws" in master
        for pid in [hub.pid, *hub.workers()]:
            text = proc_strings(pid)
            for value in (HUB_SECRET, api_key, password):
                assert value not in text, (pid, value)
        # The new master and its workers still know the secrets.
        client = await HubClient.open(hub.port, token=token("ann", secret=HUB_SECRET))
        assert client.client_id
        await client.close()
        status, _, body = await http(internal, "GET", "/api/v1/info", api_key=api_key)
        assert status == 200, body
        for path in ("/ready", "/metrics", "/api/v1/info"):
            _, _, body = await http(internal, "GET", path, api_key=api_key)
            assert password.encode() not in body and api_key.encode() not in body, path
        status, _, body = await http(internal, "GET", "/api/v1/info", api_key=HUB_SECRET)
        assert status == 401 and HUB_SECRET.encode() not in body
        assert "redis://:***@127.0.0.1" in hub.log()
        assert await hub.stop() == 0
        logs = [("this hub", hub.log() + hub.printed())]
        assert leaked_lines(logs) == []


def raw_token(payload: bytes, key: str = SECRET) -> str:
    """A correctly signed HS256 token around ``payload`` exactly as given."""

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(payload)
    signature = hmac.new(key.encode(), signing, hashlib.sha256).digest()
    return (signing + b"." + b64(signature)).decode()


@pytest.mark.parametrize(
    "payload",
    [
        b'{"sub": "\\ud800"}',
        b'{"sub": "ann", "info": {"name": "\\udfff"}}',
        b'{"sub": "ann", "channels": ["room:\\ud800*"]}',
        b'{"sub": "ann", "info": {"\\ud800": 1}}',
        b'{"sub": "\xff\xfe"}',
        b'{"sub": "ann", "exp": "99999999999"}',
        b'{"sub": "ann", "exp": "1"}',
        b'{"sub": "ann", "nbf": "1"}',
        b'{"sub": "ann", "iat": "1"}',
        b'{"sub": "ann", "exp": true}',
        b'{"sub": "ann", "exp": null, "iat": [1]}',
    ],
)
@run_async(loops=("uvloop",))
async def test_bad_claims_close_with_4500_never_1011(payload: bytes) -> None:
    async with running_hub(jwt_secret=SECRET) as hub:
        client = await HubClient.open(hub.port, connect=False)
        code, message = await client.error("connect", {"token": raw_token(payload)})
        assert code == 401, message
        assert (await client.closed())[0] == 4500
        good = await HubClient.open(hub.port, token=token("ann", exp=int(time.time()) + 60))
        await good.close()


@run_async(loops=("uvloop",))
async def test_api_refusals_of_the_server_are_json_too() -> None:
    async with running_hub(api_key="key", max_body_size=1000) as hub:
        status, headers, body = await http(
            hub.port, "POST", "/api/v1/publish", b"x" * 5000, api_key="key"
        )
        assert status == 413 and headers["content-type"] == "application/json"
        assert orjson.loads(body)["error"]["code"] == 413
        status, headers, body = await http(
            hub.port,
            "POST",
            "/api/v1/publish",
            headers=(("Transfer-Encoding", "chunked"),),
            api_key="key",
        )
        assert status == 411 and orjson.loads(body)["error"]["code"] == 411
        status, _, body = await http(hub.port, "POST", "/elsewhere", b"x" * 5000)
        assert status == 413 and b"error" not in body  # outside the API: plain text


def fastws_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fastws", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        cwd=ROOT,
    )


@run_async(loops=("uvloop",), timeout=60)
async def test_operator_tokens_are_accepted_by_a_hub_with_the_same_keys(secret_file: str) -> None:
    made = fastws_command(
        "gentoken", "--user", "olga", "--ttl", "600", "--channels", "chat:*",
        "--publish", "chat:*", "--history", "chat:a", "--presence", "chat:a", "chat:b",
        "--send", "*", "--jwt-secret-file", secret_file,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    connection = made.stdout.strip()
    claims = jwt.decode(connection, HUB_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "olga" and claims["channels"] == ["chat:*"]
    assert (claims["publish"], claims["history"], claims["send"]) == (["chat:*"], ["chat:a"], ["*"])
    assert claims["presence"] == ["chat:a", "chat:b"]
    assert 590 <= claims["exp"] - claims["iat"] <= 600
    made = fastws_command(
        "--jwt-secret-file", secret_file, "gensubtoken", "--user", "olga", "--channel", "$vip:1",
        "--info", '{"seat": 4}',
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    claims = jwt.decode(made.stdout.strip(), HUB_SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["channel"], claims["info"]) == ("olga", "$vip:1", {"seat": 4})
    checked = fastws_command("checktoken", connection, "--jwt-secret-file", secret_file)
    assert checked.returncode == 0 and "valid for user 'olga'" in checked.stdout
    tampered = connection[:-2] + ("AA" if connection[-2:] != "AA" else "BB")
    checked = fastws_command("checktoken", tampered, "--jwt-secret-file", secret_file)
    assert checked.returncode == 1 and "invalid" in checked.stderr
    assert HUB_SECRET not in checked.stderr + checked.stdout
    refused = fastws_command("gentoken", "--user", "x")
    assert refused.returncode == 2 and "no token key" in refused.stderr
    async with HubProcess("--jwt-secret-file", secret_file, insecure=False) as hub:
        client = await HubClient.open(hub.port, token=connection)
        await client.result("subscribe", {"channel": "chat:a"})  # a default namespace
        await client.result("publish", {"channel": "chat:b", "data": 1})  # the publish claim
        await client.result("history", {"channel": "chat:a"})
        code, _ = await client.error("subscribe", {"channel": "lobby"})
        assert code == 403
        await client.close()


def test_urls_are_shown_without_their_password() -> None:
    assert redact_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("redis://user:p@ss@h/1,redis://h2") == "redis://user:***@h/1,redis://h2"
    assert redact_url("redis://user@h") == "redis://user@h"
    assert redact_url("memory://") == "memory://"


@run_async(loops=("uvloop",), timeout=90)
async def test_a_reload_reads_the_key_files_again(tmp_path: Path) -> None:
    import signal

    key = tmp_path / "jwt.secret"
    key.write_text(HUB_SECRET)
    api_key = tmp_path / "api.key"
    api_key.write_text(FILE_API_KEY)
    rotated = secret("the-rotated-secret-of-the-security-tests-0123")
    args = ("--workers", "2", "--jwt-secret-file", str(key), "--api-key-file", str(api_key))
    async with HubProcess(*args, insecure=False) as hub:
        client = await HubClient.open(hub.port, token=token("ann", secret=HUB_SECRET))
        await client.close()
        assert (await http(hub.port, "GET", "/api/v1/info", api_key=FILE_API_KEY))[0] == 200
        assert f"FASTWS_API_KEY={API_KEY}" in proc_strings(hub.pid)  # as RunningHub starts it
        for pid in hub.workers():  # configured over their control link, not the environment
            assert "FASTWS_API_KEY" not in proc_strings(pid)
        key.write_text(rotated + "\n")
        hub.send(signal.SIGHUP)
        await hub.wait_log("reload done")
        await hub.wait_log("drained", count=2)
        client = await HubClient.open(hub.port, token=token("ann", secret=rotated))
        await client.close()
        old = await HubClient.open(hub.port, connect=False)
        assert (await old.error("connect", {"token": token("ann", secret=HUB_SECRET)}))[0] == 401
        key.write_text("")
        hub.send(signal.SIGHUP)
        await hub.wait_log("reload refused, the configuration is invalid: jwt_secret_file")
        client = await HubClient.open(hub.port, token=token("ann", secret=rotated))
        await client.close()
        assert await hub.stop() == 0
        assert leaked_lines([("this hub", hub.log())]) == []
