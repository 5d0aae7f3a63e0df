"""The shared timer's scan: ``timers_due`` picks the connections whose ``check_timers``
would do something, and skips only those where it would do nothing, on both backends."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastws.protocol import Options
from tests.conftest import CONNECTION_MODULES, PROTOCOL_MODULES, load_backend
from tests.server.test_protocol_differential import FakeLoop, FakeTransport, websocket_on

NOW = 100.0
INTERVAL = 25.0
TIMEOUT = 20.0

BACKENDS = sorted(PROTOCOL_MODULES)


def make(backend: str, *, conn: str = "open", deadline=0.0, seen=False, last_seen=NOW, ping_sent_at=0.0) -> Any:
    """A connection on ``backend``'s core and connection: ``conn`` is "open", "closing"
    or "none" (still in the handshake)."""
    core = load_backend(backend, PROTOCOL_MODULES).ProtocolCore
    ws = websocket_on(core)(Options(ping_interval=INTERVAL, ping_timeout=TIMEOUT), FakeLoop())
    ws.transport = FakeTransport([], client=False)
    if conn != "none":
        ws.conn = load_backend(backend, CONNECTION_MODULES).Connection(client=False)
        if conn == "closing":
            ws.conn.close(1000, "")
    ws.deadline, ws.seen, ws.last_seen, ws.ping_sent_at = deadline, seen, last_seen, ping_sent_at
    return ws


CASES = {
    "open and quiet": ({}, False),
    "silent for the interval: a ping is due": ({"last_seen": NOW - INTERVAL}, True),
    "a ping out, its timeout not reached": ({"ping_sent_at": NOW - TIMEOUT + 1}, False),
    "a ping unanswered past its timeout": ({"ping_sent_at": NOW - TIMEOUT}, True),
    "data seen since the last look": ({"seen": True}, True),
    "closing with a deadline": ({"conn": "closing", "deadline": NOW + 5}, True),
    "closing, no deadline": ({"conn": "closing", "last_seen": 0.0}, False),
    "in the handshake, with its deadline": ({"conn": "none", "deadline": NOW + 5}, True),
    "in the handshake, no deadline": ({"conn": "none"}, False),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_scan_picks_what_needs_a_look(backend: str, case: str) -> None:
    state, expected = CASES[case]
    ws = make(backend, **state)
    scan = load_backend(backend, PROTOCOL_MODULES).timers_due
    assert (scan([ws], NOW, INTERVAL, TIMEOUT) == [ws]) is expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_without_keepalive_only_deadlines_and_data_count(backend: str) -> None:
    scan = load_backend(backend, PROTOCOL_MODULES).timers_due
    silent = make(backend, last_seen=0.0)
    unanswered = make(backend, ping_sent_at=1.0)
    closing = make(backend, conn="closing", deadline=NOW + 1)
    assert scan([silent, unanswered, closing], NOW, 0.0, 0.0) == [closing]
    assert scan([unanswered], NOW, INTERVAL, 0.0) == []  # no timeout: the pong is awaited


def snapshot(ws: Any) -> tuple:
    return (
        ws.deadline, ws.seen, ws.last_seen, ws.ping_sent_at,
        None if ws.conn is None else (ws.conn.state, bytes(ws.conn.out)),
        ws.transport.log[:],
    )  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    backend=st.sampled_from(BACKENDS),
    conn=st.sampled_from(["open", "closing", "none"]),
    deadline=st.sampled_from([0.0, NOW - 1, NOW + 1]),
    seen=st.booleans(),
    last_seen=st.floats(NOW - 2 * INTERVAL, NOW),
    ping_sent_at=st.sampled_from([0.0, NOW - 2 * TIMEOUT, NOW - TIMEOUT, NOW - 1]),
    interval=st.sampled_from([0.0, INTERVAL]),
    timeout=st.sampled_from([0.0, TIMEOUT]),
)
def test_a_skipped_connection_is_one_whose_timers_would_do_nothing(
    backend, conn, deadline, seen, last_seen, ping_sent_at, interval, timeout
) -> None:
    ws = make(
        backend, conn=conn, deadline=deadline, seen=seen and conn != "none",
        last_seen=last_seen, ping_sent_at=ping_sent_at,
    )  # fmt: skip
    ws.options.ping_interval, ws.options.ping_timeout = interval or None, timeout or None
    due = load_backend(backend, PROTOCOL_MODULES).timers_due([ws], NOW, interval, timeout)
    before = snapshot(ws)
    aborted = []
    ws.transport.abort = lambda: aborted.append(True)
    ws.check_timers(NOW)
    if not due:
        assert snapshot(ws) == before and not aborted
