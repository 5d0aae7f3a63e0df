"""The master of a hub restarted right after its predecessor died waits for the port."""

from __future__ import annotations

import errno
import logging
import socket

import pytest

from fastws.hub.process import supervisor


def listening() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_a_port_in_use_is_tried_again_until_the_holder_lets_go(monkeypatch, caplog) -> None:
    holder = listening()
    port = holder.getsockname()[1]
    naps: list[float] = []

    def nap(seconds: float) -> None:  # the previous hub finishes dying meanwhile
        naps.append(seconds)
        if len(naps) == 2:
            holder.close()

    monkeypatch.setattr(supervisor.time, "sleep", nap)
    with caplog.at_level(logging.WARNING, logger="fastws.hub"):
        sock = supervisor.bind("127.0.0.1", port, wait=60)
    try:
        assert sock.getsockname()[1] == port
        assert len(naps) == 2
        warnings = [r.getMessage() for r in caplog.records if "in use" in r.getMessage()]
        assert warnings == [f"fastws hub: 127.0.0.1:{port} is in use, trying again for up to 60 s"]
    finally:
        sock.close()


def test_a_port_still_in_use_when_the_wait_is_over_fails() -> None:
    holder = listening()
    try:
        with pytest.raises(OSError) as failure:
            supervisor.bind("127.0.0.1", holder.getsockname()[1], wait=0)
        assert failure.value.errno == errno.EADDRINUSE
    finally:
        holder.close()


def test_other_bind_errors_are_not_waited_for(monkeypatch) -> None:
    def nap(seconds: float) -> None:
        raise AssertionError("waited for an error that does not go away")

    monkeypatch.setattr(supervisor.time, "sleep", nap)
    with pytest.raises(OSError) as failure:
        supervisor.bind("192.0.2.1", 0, wait=60)  # an address this host does not have
    assert failure.value.errno == errno.EADDRNOTAVAIL
