"""Locust load test over WebSocket: every round trip is a locust request of type ``WS``.

    python -m fastws echo --port 9001 &
    locust -f bench/locustfile.py --headless -u 100 -r 20 -t 60s \\
        --host ws://127.0.0.1:9001 --only-summary

The client is ``websocket-client`` (blocking sockets, which locust's gevent patching makes
cooperative). What a user does lives in its task set: ``EchoTasks`` talks to the echo server;
a hub scenario (subscribe, publish, receive fan-out) plugs in as another TaskSet assigned to
``tasks`` of a user class, reusing ``WebSocketUser`` and ``WebSocketClient.round_trip``/``send``/
``receive``.
"""

from __future__ import annotations

import contextlib
import time

import websocket
from locust import TaskSet, User, between, task

REQUEST_TYPE = "WS"
TEXT_64 = "x" * 64
BINARY_1K = bytes(range(256)) * 4


class EchoMismatch(Exception):
    """The server answered something other than what was sent."""


class WebSocketClient:
    """One WebSocket connection that reports its round trips as locust request events."""

    def __init__(self, url: str, environment, timeout: float = 10.0) -> None:
        self.url = url
        self.timeout = timeout
        self.events = environment.events
        self.ws: websocket.WebSocket | None = None

    def _fire(self, name: str, started: float, length: int, exception: Exception | None) -> None:
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
            self._fire("connect", started, 0, exc)
            return
        self._fire("connect", started, 0, None)

    def _ensure_connected(self) -> bool:
        if self.ws is None:
            self.connect()
        return self.ws is not None

    def send(self, message: str | bytes) -> None:
        if isinstance(message, str):
            self.ws.send(message)
        else:
            self.ws.send_binary(message)

    def receive(self) -> str | bytes:
        return self.ws.recv()

    def round_trip(self, name: str, message: str | bytes) -> None:
        """Send ``message``, wait for the echo, report the time it took."""
        if not self._ensure_connected():
            return
        started = time.perf_counter()
        try:
            self.send(message)
            reply = self.receive()
            if reply != message:
                raise EchoMismatch(f"sent {len(message)} bytes, got back {len(reply)} different ones")
        except Exception as exc:
            self._fire(name, started, 0, exc)
            self.close()  # reconnect on the next task
            return
        self._fire(name, started, len(reply), None)

    def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):  # already broken: nothing more to tell
                self.ws.close(timeout=1)
            self.ws = None


class WebSocketUser(User):
    """A locust user holding one WebSocket connection to ``--host`` (ws:// or wss:// URL)."""

    abstract = True

    def on_start(self) -> None:
        self.client = WebSocketClient(self.host, self.environment)
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
