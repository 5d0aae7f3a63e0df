"""The compiled connection against the reference: the same random byte streams and the same
application calls must give the same bytes out, the same events and the same close codes."""

from __future__ import annotations

import zlib
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastws.codec import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameParser,
    build_frame,
)
from fastws.deflate import DeflateConfig, DeflateParams, PerMessageDeflate
from tests.conftest import CONNECTION_MODULES, load_backend

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PARAMS = DeflateParams(False, False, 15, 15)

# Payloads that reach every branch: short and long, valid and broken UTF-8, compressible.
payloads = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=20).map(str.encode),
    st.sampled_from([b"\xff\xfe", b"\x80", "é".encode()[:1], b"a" * 300, b"\xf0\x9f\x98"]),
)
deflated = st.binary(max_size=300).map(
    lambda data: (c := zlib.compressobj(wbits=-15)).compress(data) + c.flush(zlib.Z_SYNC_FLUSH)[:-4]
)


@st.composite
def frames(draw: st.DrawFn, masked: bool) -> bytes:
    """One frame as a peer might send it, valid or not (reserved bits and opcodes, wrong mask)."""
    opcode = draw(
        st.sampled_from([OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, 3, 11])
    )
    control = opcode >= OP_CLOSE
    rsv1 = not control and draw(st.booleans())
    payload = draw(deflated if rsv1 else payloads)
    if opcode == OP_CLOSE and draw(st.booleans()):
        code = draw(st.sampled_from([1000, 1001, 1002, 1005, 1011, 3000, 999]))
        payload = code.to_bytes(2, "big") + payload
    fin = control or draw(st.booleans())
    mask = masked if draw(st.integers(0, 9)) else not masked
    frame = bytearray(
        build_frame(
            OP_BINARY if opcode in (3, 11) else opcode,
            payload[:125] if control else payload,
            fin=fin,
            rsv1=rsv1,
            mask=mask,
        )
    )
    frame[0] = (frame[0] & 0xF0) | opcode
    return bytes(frame)


# What the application does between reads.
calls = st.one_of(
    st.tuples(st.just("send"), st.sampled_from([OP_TEXT, OP_BINARY]), payloads),
    st.tuples(
        st.just("send_frame"),
        st.sampled_from([OP_TEXT, OP_BINARY, OP_CONTINUATION]),
        payloads,
        st.booleans(),
    ),
    st.tuples(st.just("ping"), payloads.map(lambda p: p[:125])),
    st.tuples(st.just("pong"), payloads.map(lambda p: p[:125])),
    st.tuples(st.just("send_prebuilt"), payloads.map(lambda p: build_frame(OP_BINARY, p))),
    st.tuples(st.just("close"), st.sampled_from([1000, 1001, 1005, 3000]), st.text(max_size=70)),
    st.tuples(st.just("fail"), st.sampled_from([1002, 1008, 1011]), st.text(max_size=10)),
)


@st.composite
def scripts(draw: st.DrawFn, client: bool) -> list[tuple[Any, ...]]:
    """Reads (a random cut of the frame stream, so frames split across reads) and calls."""
    stream = b"".join(draw(st.lists(frames(masked=not client), max_size=12)))
    if draw(st.booleans()):
        stream += draw(st.binary(max_size=20))  # trailing noise
    steps: list[tuple[Any, ...]] = []
    at = 0
    while at < len(stream):
        size = draw(st.integers(1, max(1, len(stream) - at)))
        steps.append(("feed", stream[at : at + size]))
        at += size
        # send_prebuilt is for the server side (its frame is unmasked)
        steps += [
            c for c in draw(st.lists(calls, max_size=2)) if not (client and c[0] == "send_prebuilt")
        ]
    steps.append(("eof",) if draw(st.booleans()) else ("feed", b""))
    return steps


def unmasked(out: bytes, client: bool) -> list[tuple[int, bool, bool, bytes]]:
    """A client's frames carry random masks: compare what they say, not their bytes."""
    frames: list[tuple[int, bool, bool, bytes]] = []
    parser = FrameParser(
        lambda *f: frames.append((*f[:3], bytes(f[3]))),
        client=not client,
        max_size=1 << 30,
        rsv1_allowed=True,
    )
    parser.feed(out)
    return frames


def run(
    module: ModuleType, steps: list[tuple[Any, ...]], client: bool, compressed: bool
) -> list[Any]:
    """Everything observable, in order: events, results of calls, bytes out, state."""
    seen: list[Any] = []
    deflate = (
        PerMessageDeflate(PARAMS, server=not client, config=DeflateConfig(threshold=8))
        if compressed
        else None
    )
    conn = module.Connection(
        client=client,
        on_message=lambda op, p: seen.append(("message", op, bytes(p))),
        on_close=lambda code, reason: seen.append(("close", code, reason)),
        on_pong=lambda p: seen.append(("pong", bytes(p))),
        max_message_size=200,
        deflate=deflate,
    )
    for step in steps:
        kind, *args = step
        try:
            if kind == "feed":
                buffer = conn.get_buffer(-1) if conn.state != 3 else None
                if buffer is not None:
                    buffer[: len(args[0])] = args[0]
                conn.buffer_updated(len(args[0]))
            elif kind == "eof":
                conn.receive_eof()
            else:
                getattr(conn, kind)(*args)
        except Exception as exc:  # the same refusal, word for word
            seen.append(("raised", type(exc).__name__, str(exc)))
        out = bytes(conn.out)
        conn.out.clear()
        seen.append(("out", unmasked(out, client) if client else out))
        seen.append(
            (
                "state",
                int(conn.state),
                conn.close_code,
                conn.close_reason,
                conn.close_sent,
                conn.close_received,
                conn.buffered,
            )
        )
    conn.release()
    return seen


@pytest.fixture(scope="module")
def backends() -> tuple[ModuleType, ModuleType]:
    return load_backend("python", CONNECTION_MODULES), load_backend("cython", CONNECTION_MODULES)


@pytest.mark.parametrize("client", [False, True], ids=["server", "client"])
@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "deflate"])
@SETTINGS
@given(data=st.data())
def test_both_backends_behave_the_same(backends, client: bool, compressed: bool, data) -> None:
    reference, compiled = backends
    steps = data.draw(scripts(client))
    assert run(compiled, steps, client, compressed) == run(reference, steps, client, compressed)
