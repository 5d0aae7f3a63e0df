"""Locust load test over WebSocket: every round trip is a locust request of type ``WS``.

Name the user class to run (locust runs every class of the file otherwise):

    python -m fastws echo --port 9001 &
    locust -f bench/locustfile.py EchoUser --headless -u 100 -r 20 -t 60s \\
        --host ws://127.0.0.1:9001 --only-summary

    python -m fastws --port 8080 --insecure &
    locust -f bench/locustfile.py HubUser --headless -u 100 -r 20 -t 60s \\
        --host ws://127.0.0.1:8080 --only-summary

The client is ``websocket-client`` (blocking sockets, which locust's gevent patching makes
cooperative). What a user does lives in its task set: ``EchoTasks`` talks to the echo server,
``HubTasks`` to the hub (connect, subscribe, publish, wait for its own publication to come back).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
import urllib.parse

import websocket
from locust import TaskSet, User, between, task

REQUEST_TYPE = "WS"
TEXT_64 = "x" * 64
BINARY_1K = bytes(range(256)) * 4
HUB_PATH = "/connection"
HUB_CHANNELS = 10  # users share channels: user n subscribes to chat:load-<n % HUB_CHANNELS>


class EchoMismatch(Exception):
    """The server answered something other than what was sent."""


class HubFailure(Exception):
    """The hub answered a command with an error, or something awaited did not come in time."""


class WebSocketClient:
    """One WebSocket connection that reports its round trips as locust request events."""

    def __init__(self, url: str, environment, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout
        self.events = environment.events
        self.ws: websocket.WebSocket | None = None

    def report(self, name: str, started: float, length: int, exception: Exception | None) -> None:
        self.events.request.fire(
            request_type=REQUEST_TYPE,
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=exception,
            context={},
        )

    def connect(self) -> None:
        started = time.perf_counter()
        try:
            self.ws = websocket.create_connection(self.url, timeout=self.timeout)
        except Exception as exc:
            self.ws = None
            self.report("connect", started, 0, exc)
            return
        self.report("connect", started, 0, None)

    def ensure_connected(self) -> bool:
        if self.ws is None:
            self.connect()
        return self.ws is not None

    def send(self, message: str | bytes) -> None:
        if isinstance(message, str):
            self.ws.send(message)
        else:
            self.ws.send_binary(message)

    def receive(self, timeout: float | None = None) -> str | bytes:
        """The next message; waits at most ``timeout`` seconds (the client's timeout by default)."""
        self.ws.settimeout(self.timeout if timeout is None else timeout)
        return self.ws.recv()

    def round_trip(self, name: str, message: str | bytes) -> None:
        """Send ``message``, wait for the echo, report the time it took."""
        if not self.ensure_connected():
            return
        started = time.perf_counter()
        try:
            self.send(message)
            reply = self.receive()
            if reply != message:
                raise EchoMismatch(f"sent {len(message)} bytes, got back {len(reply)} different ones")
        except Exception as exc:
            self.report(name, started, 0, exc)
            self.close()  # reconnect on the next task
            return
        self.report(name, started, len(reply), None)

    def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):  # already broken: nothing more to tell
                self.ws.close(timeout=1)
            self.ws = None


class WebSocketUser(User):
    """A locust user holding one WebSocket connection to ``--host`` (ws:// or wss:// URL)."""

    abstract = True

    def url(self) -> str:
        return self.host

    def on_start(self) -> None:
        self.client = WebSocketClient(self.url(), self.environment)
        self.client.connect()

    def on_stop(self) -> None:
        self.client.close()


class EchoTasks(TaskSet):
    """Round trips against an echo server: mostly small text, some binary."""

    @task(3)
    def echo_text(self) -> None:
        self.client.round_trip("echo text 64B", TEXT_64)

    @task(1)
    def echo_binary(self) -> None:
        self.client.round_trip("echo binary 1KiB", BINARY_1K)


class EchoUser(WebSocketUser):
    wait_time = between(0.01, 0.05)
    tasks = [EchoTasks]


def hub_url(host: str) -> str:
    """``--host`` itself when it names a path, else the hub's ``/connection`` endpoint on it."""
    parts = urllib.parse.urlsplit(host)
    if parts.path not in ("", "/"):
        return host
    return urllib.parse.urlunsplit(parts._replace(path=HUB_PATH))


_hub_user_numbers = itertools.count()


class HubTasks(TaskSet):
    """Publish into a channel shared with other users; time the reply and the publication's return.

    The hub must run in insecure development mode (``--insecure``): ``connect`` carries no token.
    ``publish->pub`` is the time from the stamp inside the publication to its arrival back as a
    ``pub`` push on this user's own subscription. A blocking client reads what queued up while
    it waited between tasks (other users' publications, ignored) before its own, so that time
    includes draining them.
    """

    def on_start(self) -> None:
        self.channel = f"chat:load-{next(_hub_user_numbers) % HUB_CHANNELS}"
        self.command_ids = itertools.count(1)
        self.client_id: str | None = None  # set once connect and subscribe succeeded
        self.join()

    def join(self) -> bool:
        """Open the connection if needed, send ``connect``, subscribe; False on failure."""
        if not self.client.ensure_connected():
            return False
        try:
            reply = self.command("connect command", "connect", {})
            self.command("subscribe", "subscribe", {"channel": self.channel})
        except Exception:
            self.client.close()  # already reported; try again on the next task
            return False
        self.client_id = reply["result"].get("client", "")
        return True

    def next_message(self, deadline: float, awaited: str) -> tuple[dict, int]:
        """The next message from the hub, decoded, and its length; HubFailure after ``deadline``."""
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            raise HubFailure(f"{awaited} did not arrive within {self.client.timeout} s")
        try:
            raw = self.client.receive(timeout=remaining)
        except websocket.WebSocketTimeoutException:
            raise HubFailure(f"{awaited} did not arrive within {self.client.timeout} s") from None
        return json.loads(raw), len(raw)

    def command(self, name: str, method: str, params: dict) -> dict:
        """Send one command and wait for its reply (pushes meanwhile are skipped); reported as ``name``."""
        command_id = next(self.command_ids)
        started = time.perf_counter()
        try:
            self.client.send(json.dumps({"id": command_id, "method": method, "params": params}))
            deadline = started + self.client.timeout
            while True:
                message, length = self.next_message(deadline, f"the reply to {method}")
                if message.get("id") == command_id:
                    check_reply(method, message)
                    break
        except Exception as exc:
            self.client.report(name, started, 0, exc)
            raise
        self.client.report(name, started, length, None)
        return message

    @task
    def publish(self) -> None:
        if self.client_id is None and not self.join():
            return
        command_id = next(self.command_ids)
        stamp = time.perf_counter_ns()
        started = time.perf_counter()
        data = {"t": stamp, "from": self.client_id}
        awaiting = ["publish", "publish->pub"]  # reports still owed; the push may come first
        try:
            self.client.send(json.dumps({
                "id": command_id,
                "method": "publish",
                "params": {"channel": self.channel, "data": data},
            }))  # fmt: skip
            deadline = started + self.client.timeout
            while awaiting:
                message, length = self.next_message(deadline, " and ".join(awaiting))
                if message.get("id") == command_id:
                    check_reply("publish", message)
                    awaiting.remove("publish")
                    self.client.report("publish", started, length, None)
                elif (
                    message.get("push") == "pub"
                    and message.get("channel") == self.channel
                    and message.get("data") == data
                ):
                    awaiting.remove("publish->pub")
                    stamped = message["data"]["t"] / 1e9  # perf_counter seconds at publication
                    self.client.report("publish->pub", stamped, length, None)
                # anything else: other users' publications, join/leave: read and ignored
        except Exception as exc:
            for name in awaiting:
                self.client.report(name, started, 0, exc)
            self.client.close()
            self.client_id = None  # connect and subscribe again on the next task


def check_reply(method: str, reply: dict) -> None:
    if "error" in reply:
        error = reply["error"]
        raise HubFailure(f"{method} failed: {error.get('code')} {error.get('message')}")


class HubUser(WebSocketUser):
    wait_time = between(0.05, 0.2)
    tasks = [HubTasks]

    def url(self) -> str:
        return hub_url(self.host)
