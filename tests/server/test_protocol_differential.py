"""The compiled connection glue against the reference: one ``WebSocket`` on each
``ProtocolCore`` (with its own backend's ``Connection``, as they are selected together),
driven through fake transports and a fake loop with the same random byte streams and the
same application calls, must write the same bytes, tell the application the same events
and close with the same codes."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastws.codec import OP_BINARY, OP_TEXT, build_frame
from fastws.protocol import Listener, Options, WebSocket
from tests.conftest import CONNECTION_MODULES, PROTOCOL_MODULES, load_backend
from tests.connection.test_differential import frames, payloads, unmasked

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def websocket_on(core: type) -> type:
    """``WebSocket`` with its own methods over ``core`` (either backend's ``ProtocolCore``)."""
    own = set(WebSocket.__slots__) | {"__dict__", "__weakref__"}
    namespace = {name: value for name, value in vars(WebSocket).items() if name not in own}
    return type("WebSocket", (core, asyncio.BufferedProtocol), namespace)


class FakeLoop:
    """What the glue asks of a loop: callbacks run when the script says the turn ends."""

    def __init__(self) -> None:
        self.ready: list[Any] = []
        self.now = 0.0

    def call_soon(self, callback: Any, *args: Any) -> None:
        self.ready.append((callback, args))

    def time(self) -> float:
        return self.now

    def get_debug(self) -> bool:
        return False

    def create_future(self) -> asyncio.Future:
        return asyncio.Future(loop=self)  # type: ignore[arg-type]

    def run_turn(self) -> int:
        ready, self.ready = self.ready, []
        for callback, args in ready:
            callback(*args)
        return len(ready)


class FakeTransport:
    """Records everything the glue does to it; its write buffer size is set by the script."""

    def __init__(self, log: list[Any], client: bool) -> None:
        self.log = log
        self.client = client
        self.buffered = 0
        self.closing = False

    def write(self, data: Any) -> None:
        data = bytes(data)
        self.log.append(("write", unmasked(data, True) if self.client else data))

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def pause_reading(self) -> None:
        self.log.append(("pause_reading",))

    def resume_reading(self) -> None:
        self.log.append(("resume_reading",))

    def close(self) -> None:
        self.log.append(("close",))
        self.closing = True

    def abort(self) -> None:
        self.log.append(("abort",))
        self.closing = True


class ScriptedListener(Listener):
    """Records the events and answers each message as the script says, in turn."""

    def __init__(self, log: list[Any], answers: list[str]) -> None:
        self.log = log
        self.answers = answers or ["nothing"]
        self.count = 0

    def on_connect(self, ws: WebSocket) -> None:
        self.log.append(("connect",))

    def on_message(self, ws: WebSocket, opcode: int, payload: memoryview) -> None:
        self.log.append(("message", opcode, bytes(payload)))
        answer = self.answers[self.count % len(self.answers)]
        self.count += 1
        if answer == "echo":
            ws.send_message(opcode, payload)
        elif answer == "text":
            ws.send_message(OP_TEXT, "é" * len(payload))
        elif answer == "close":
            ws.close_nowait(1000, "bye")
        elif answer == "raise":
            raise RuntimeError("the application failed")

    def on_close(self, ws: WebSocket, code: int, reason: str) -> None:
        self.log.append(("on_close", code, reason))


# What the application and the transport do between reads.
steps = st.one_of(
    st.tuples(st.just("turn")),
    st.tuples(st.just("send_message"), st.sampled_from([OP_TEXT, OP_BINARY]), payloads),
    st.tuples(st.just("send_nowait"), st.one_of(st.text(max_size=20), payloads)),
    st.tuples(
        st.just("send"),
        st.one_of(st.text(max_size=20), payloads, st.lists(payloads, min_size=1, max_size=3)),
    ),
    st.tuples(st.just("send_prebuilt"), payloads.map(lambda p: build_frame(OP_BINARY, p))),
    st.tuples(st.just("close_nowait"), st.sampled_from([1000, 1001, 3000])),
    st.tuples(st.just("write_buffer"), st.sampled_from([0, 100, 1000])),
    st.tuples(st.just("pause_writing")),
    st.tuples(st.just("resume_writing")),
    st.tuples(st.just("take")),
    st.tuples(st.just("transport_closing")),
)


@st.composite
def scripts(draw: st.DrawFn, client: bool) -> list[tuple[Any, ...]]:
    """Reads (a random cut of a frame stream) with application and transport steps between."""
    stream = b"".join(draw(st.lists(frames(masked=not client), max_size=10)))
    script: list[tuple[Any, ...]] = []
    at = 0
    while at < len(stream):
        size = draw(st.integers(1, max(1, len(stream) - at)))
        script.append(("feed", stream[at : at + size]))
        at += size
        script += draw(st.lists(steps, max_size=3))
    script.append(draw(st.sampled_from([("eof",), ("lost",), ("turn",)])))
    return script


def run(
    engine: tuple[type, type],
    script: list[tuple[Any, ...]],
    client: bool,
    callback: bool,
    answers: list[str],
    slow_consumer: str,
) -> list[Any]:
    """Everything observable, in order: what the transport saw, events, state."""
    core, connection = engine
    log: list[Any] = []
    loop = FakeLoop()
    options = Options(max_write_buffer=300, max_queue=3, slow_consumer=slow_consumer)
    ws = websocket_on(core)(options, loop)
    ws.transport = FakeTransport(log, client)
    ws.listener = ScriptedListener(log, answers) if callback else None
    ws._open(connection(client=client, max_message_size=200), b"")
    for step in script:
        kind, *args = step
        try:
            if kind == "feed":
                buffer = ws.get_buffer(-1)
                buffer[: len(args[0])] = args[0]
                ws.buffer_updated(len(args[0]))
            elif kind == "turn":
                log.append(("turn", loop.run_turn()))
            elif kind == "write_buffer":
                ws.transport.buffered = args[0]
            elif kind == "transport_closing":
                ws.transport.closing = True
            elif kind == "send":
                sent = ws.send(args[0])
                if asyncio.iscoroutine(sent):  # a drain to wait for: its first step
                    try:
                        sent.send(None)
                        log.append(("send", "waits"))
                    except StopIteration:
                        log.append(("send", "drained"))
                    sent.close()
                else:
                    log.append(("send", sent.done()))
            elif kind == "take":
                if ws.listener is None and ws._queue:
                    anext = ws.__anext__()
                    try:
                        anext.send(None)
                    except StopIteration as stop:
                        log.append(("took", stop.value))
            elif kind == "eof":
                ws.eof_received()
            elif kind == "lost":
                ws.connection_lost(None)
            else:
                getattr(ws, kind)(*args)
        except Exception as exc:  # the same refusal, word for word
            log.append(("raised", type(exc).__name__, str(exc)))
        log.append(
            (
                "state",
                int(ws.state),
                ws.close_code,
                ws.close_reason,
                ws._read_holds,
                ws._flush_pending,
                ws.seen,
                list(ws._queue or ()),
                len(ws.conn.out),
                ws.deadline,
            )
        )
    return log


@pytest.fixture(scope="module")
def engines() -> tuple[tuple[type, type], tuple[type, type]]:
    """(reference, compiled), each a ``ProtocolCore`` and its ``Connection``."""
    return tuple(
        (
            load_backend(name, PROTOCOL_MODULES).ProtocolCore,
            load_backend(name, CONNECTION_MODULES).Connection,
        )
        for name in ("python", "cython")
    )


answers = st.lists(st.sampled_from(["echo", "text", "close", "raise", "nothing"]), max_size=4)


@pytest.mark.parametrize("client", [False, True], ids=["server", "client"])
@pytest.mark.parametrize("callback", [True, False], ids=["callback", "async"])
@SETTINGS
@given(data=st.data())
def test_both_glue_backends_behave_the_same(engines, client: bool, callback: bool, data) -> None:
    reference, compiled = engines
    script = data.draw(scripts(client))
    replies = data.draw(answers)
    slow_consumer = data.draw(st.sampled_from(["close", "wait"]))
    logging.disable(logging.ERROR)  # the scripted application's failures, logged by both
    try:
        expected = run(reference, script, client, callback, replies, slow_consumer)
        assert run(compiled, script, client, callback, replies, slow_consumer) == expected
    finally:
        logging.disable(logging.NOTSET)


def test_both_cores_have_the_same_fields_and_methods(engines) -> None:
    """The reference's methods stand in for the compiled ones (the connection_backend fixture)."""
    (reference, _), (compiled, _) = engines
    assert public_names(compiled) == public_names(reference)


def public_names(core: type) -> set[str]:
    """Fields (slots or member descriptors) and methods, without Python's own."""
    return {name for name in vars(core) if not name.startswith("__")}
