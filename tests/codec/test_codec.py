"""The codec contract: every test here runs against both backends (``codec`` fixture)
and the two must agree byte for byte and error for error."""

from __future__ import annotations

import itertools
import random
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastws import _codec_py as reference
from fastws import closecodes
from fastws.buffers import BufferPool
from fastws.errors import ProtocolError

KEY = bytes([0x37, 0xFA, 0x21, 0x3D])  # the RFC 6455 section 5.7 masking key
OPCODES = (0x0, 0x1, 0x2, 0x8, 0x9, 0xA)
UNKNOWN_OPCODES = (0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF)

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --------------------------------------------------------------------------- helpers


class RecordingPool(BufferPool):
    """A private pool that knows which buffers are out and how many were taken."""

    def __init__(self) -> None:
        super().__init__()
        self.held: dict[int, int] = {}
        self.acquired = 0

    def acquire(self, size: int) -> bytearray:
        buf = super().acquire(size)
        self.held[id(buf)] = len(buf)
        self.acquired += 1
        return buf

    def release(self, buf: bytearray) -> None:
        assert self.held.pop(id(buf)) == len(buf), "a buffer was resized or released twice"
        super().release(buf)

    @property
    def held_bytes(self) -> int:
        return sum(self.held.values())


def make_parser(codec: ModuleType, **options):
    """A parser that records ``(opcode, fin, rsv1, payload bytes)`` tuples."""
    frames: list[tuple[int, bool, bool, bytes]] = []

    def on_frame(opcode: int, fin: bool, rsv1: bool, payload: memoryview) -> None:
        assert type(payload) is memoryview
        frames.append((opcode, fin, rsv1, bytes(payload)))

    return codec.FrameParser(on_frame, **options), frames


def write_through_buffer(parser, data: bytes) -> None:
    """Deliver ``data`` the asyncio.BufferedProtocol way: get_buffer, copy, buffer_updated."""
    pos = 0
    while pos < len(data):
        view = parser.get_buffer(-1)
        assert len(view) > 0, "get_buffer returned an empty view"
        n = min(len(view), len(data) - pos)
        view[:n] = data[pos : pos + n]
        parser.buffer_updated(n)
        pos += n


def deliver(parser, data: bytes, path: str) -> None:
    if path == "feed":
        parser.feed(data)
    else:
        write_through_buffer(parser, data)


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def header(b0: int, b1: int, extended: bytes = b"", key: bytes | None = None) -> bytes:
    return bytes((b0, b1)) + extended + (key or b"")


def payload_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


# --------------------------------------------------------------------------- RFC 6455 5.7

HELLO = bytes.fromhex("810548656c6c6f")
HELLO_MASKED = bytes.fromhex("818537fa213d7f9f4d5158")
HEL = bytes.fromhex("010348656c")
LO = bytes.fromhex("80026c6f")
PING_HELLO = bytes.fromhex("890548656c6c6f")
PONG_HELLO_MASKED = bytes.fromhex("8a8537fa213d7f9f4d5158")
BINARY_256 = bytes.fromhex("827e0100") + payload_bytes(256, 1)
BINARY_64K = bytes.fromhex("827f0000000000010000") + payload_bytes(65536, 2)

# (name, wire bytes, parsed by a client?, frames, build_frame arguments per frame)
RFC_VECTORS = [
    ("text-unmasked", HELLO, True, [(0x1, True, False, b"Hello")], [{}]),
    ("text-masked", HELLO_MASKED, False, [(0x1, True, False, b"Hello")], [{"mask_key": KEY}]),
    (
        "fragmented",
        HEL + LO,
        True,
        [(0x1, False, False, b"Hel"), (0x0, True, False, b"lo")],
        [{}, {}],
    ),
    ("ping-unmasked", PING_HELLO, True, [(0x9, True, False, b"Hello")], [{}]),
    ("pong-masked", PONG_HELLO_MASKED, False, [(0xA, True, False, b"Hello")], [{"mask_key": KEY}]),
    ("binary-256", BINARY_256, True, [(0x2, True, False, BINARY_256[4:])], [{}]),
    ("binary-64k", BINARY_64K, True, [(0x2, True, False, BINARY_64K[10:])], [{}]),
]


@pytest.mark.parametrize("path", ["feed", "buffer"])
@pytest.mark.parametrize("split", ["whole", "bytewise"])
@pytest.mark.parametrize("vector", RFC_VECTORS, ids=[v[0] for v in RFC_VECTORS])
def test_rfc_examples_parse(codec, vector, split, path):
    _, wire, client, expected, _ = vector
    if split == "bytewise" and len(wire) > 300:
        wire_pieces = pieces(wire, list(range(1, 12)) + [len(wire) - 1])
    elif split == "bytewise":
        wire_pieces = [wire[i : i + 1] for i in range(len(wire))]
    else:
        wire_pieces = [wire]
    parser, frames = make_parser(codec, client=client)
    for piece in wire_pieces:
        deliver(parser, piece, path)
    assert frames == expected
    assert parser.buffered == 0


@pytest.mark.parametrize("vector", RFC_VECTORS, ids=[v[0] for v in RFC_VECTORS])
def test_rfc_examples_build(codec, vector):
    _, wire, _, frames, build_args = vector
    built = b"".join(
        codec.build_frame(opcode, payload, fin, rsv1, **args)
        for (opcode, fin, rsv1, payload), args in zip(frames, build_args, strict=True)
    )
    assert built == wire
    out = bytearray(b"already queued")
    for (opcode, fin, rsv1, payload), args in zip(frames, build_args, strict=True):
        codec.write_frame(out, opcode, payload, fin, rsv1, **args)
    assert out == b"already queued" + wire


def test_rfc_masked_example_with_explicit_mask_flag(codec):
    assert codec.build_frame(codec.OP_TEXT, b"Hello", mask=True, mask_key=KEY) == HELLO_MASKED


def test_opcode_constants(codec):
    assert (codec.OP_CONTINUATION, codec.OP_TEXT, codec.OP_BINARY) == (0, 1, 2)
    assert (codec.OP_CLOSE, codec.OP_PING, codec.OP_PONG) == (8, 9, 10)


# --------------------------------------------------------------------------- building


@pytest.mark.parametrize(
    ("size", "length_bytes"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (125, b"\x7d"),
        (126, b"\x7e\x00\x7e"),
        (127, b"\x7e\x00\x7f"),
        (65535, b"\x7e\xff\xff"),
        (65536, b"\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
        (70000, b"\x7f\x00\x00\x00\x00\x00\x01\x11\x70"),
    ],
)
def test_build_uses_minimal_length_encoding(codec, size, length_bytes):
    payload = payload_bytes(size, size)
    plain = codec.build_frame(codec.OP_BINARY, payload)
    assert plain == b"\x82" + length_bytes + payload
    masked = codec.build_frame(codec.OP_BINARY, payload, mask_key=KEY)
    masked_length = bytes((length_bytes[0] | 0x80,)) + length_bytes[1:]
    expected_body = bytes(b ^ KEY[i % 4] for i, b in enumerate(payload))
    assert masked == b"\x82" + masked_length + KEY + expected_body


def test_build_first_byte_bits(codec):
    assert codec.build_frame(codec.OP_TEXT, b"", fin=False)[0] == 0x01
    assert codec.build_frame(codec.OP_TEXT, b"", rsv1=True)[0] == 0xC1
    assert codec.build_frame(codec.OP_CONTINUATION, b"", fin=True)[0] == 0x80
    assert codec.build_frame(codec.OP_BINARY, b"", fin=False, rsv1=True)[0] == 0x42
    assert codec.build_frame(codec.OP_CLOSE, b"\x03\xe8") == b"\x88\x02\x03\xe8"
    assert codec.build_frame(codec.OP_PONG, b"x" * 125)[:2] == b"\x8a\x7d"


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_build_accepts_every_buffer_type(codec, kind):
    payload = payload_bytes(300, 7)
    expected = codec.build_frame(codec.OP_BINARY, payload, mask_key=KEY)
    assert codec.build_frame(codec.OP_BINARY, kind(payload), mask_key=KEY) == expected
    assert codec.build_frame(codec.OP_BINARY, payload, mask_key=kind(KEY)) == expected
    out = bytearray()
    codec.write_frame(out, codec.OP_BINARY, kind(payload), mask_key=KEY)
    assert out == expected


def test_build_with_random_mask(codec):
    frames = [codec.build_frame(codec.OP_TEXT, b"Hello", mask=True) for _ in range(200)]
    keys = {frame[2:6] for frame in frames}
    assert len(keys) > 190  # 4 random bytes: collisions are very rare
    for frame in frames[:20]:
        assert frame[:2] == b"\x81\x85"
        parser, got = make_parser(codec)
        parser.feed(frame)
        assert got == [(0x1, True, False, b"Hello")]


def test_build_leaves_payload_untouched(codec):
    payload = bytearray(b"payload")
    codec.build_frame(codec.OP_BINARY, payload, mask_key=KEY)
    out = bytearray()
    codec.write_frame(out, codec.OP_BINARY, memoryview(payload), mask_key=KEY)
    assert payload == b"payload"


def test_random_mask(codec):
    keys = [codec.random_mask() for _ in range(3000)]  # crosses refills of any chunk size
    assert all(type(k) is bytes and len(k) == 4 for k in keys)
    assert len(set(keys)) > 2990


@pytest.mark.parametrize(
    ("opcode", "payload", "options"),
    [
        *[(op, b"", {}) for op in UNKNOWN_OPCODES],
        (0x10, b"", {}),
        (0x8, b"x" * 126, {}),
        (0x9, b"x" * 126, {}),
        (0xA, b"x" * 1000, {}),
        (0x9, b"", {"fin": False}),
        (0x8, b"", {"fin": False}),
        (0x9, b"", {"rsv1": True}),
        (0xA, b"", {"rsv1": True}),
        (0x1, b"abc", {"mask_key": b"abc"}),
        (0x1, b"abc", {"mask_key": b"abcde"}),
        (0x1, b"abc", {"mask_key": b"", "mask": True}),
    ],
)
def test_build_rejects(codec, opcode, payload, options):
    with pytest.raises(ValueError):
        codec.build_frame(opcode, payload, **options)
    out = bytearray(b"keep")
    with pytest.raises(ValueError):
        codec.write_frame(out, opcode, payload, **options)
    assert out == b"keep"


def test_build_frame_returns_bytes(codec):
    assert type(codec.build_frame(codec.OP_TEXT, b"x")) is bytes
    assert type(codec.build_frame(codec.OP_TEXT, b"x", mask=True)) is bytes


# --------------------------------------------------------------------------- apply_mask


def reference_mask(data: bytes, key: bytes, offset: int = 0) -> bytes:
    return bytes(b ^ key[(i + offset) % 4] for i, b in enumerate(data))


def test_apply_mask_every_length_and_offset(codec):
    keys = [KEY, b"\x00\x00\x00\x00", b"\xff\x01\x80\x7f"]
    for length in range(71):
        data = payload_bytes(length, length)
        for offset in range(4):
            for key in keys:
                buf = bytearray(data)
                codec.apply_mask(buf, key, offset)
                assert buf == reference_mask(data, key, offset), (length, offset, key)
                codec.apply_mask(buf, key, offset)
                assert buf == data


def test_apply_mask_default_offset_and_large_offsets(codec):
    data = payload_bytes(33, 3)
    buf = bytearray(data)
    codec.apply_mask(buf, KEY)
    assert buf == reference_mask(data, KEY)
    for offset in (4, 5, 6, 7, 1001, 10**6 + 3):
        buf = bytearray(data)
        codec.apply_mask(buf, KEY, offset)
        assert buf == reference_mask(data, KEY, offset % 4), offset


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_apply_mask_key_types(codec, kind):
    buf = bytearray(b"Hello")
    codec.apply_mask(buf, kind(KEY))
    assert buf == HELLO_MASKED[6:]


def test_apply_mask_in_chunks_matches_one_shot(codec):
    rng = random.Random(5)
    for _ in range(200):
        data = rng.randbytes(rng.randrange(0, 300))
        cuts = sorted(rng.randrange(0, len(data) + 1) for _ in range(rng.randrange(0, 6)))
        whole = bytearray(data)
        codec.apply_mask(whole, KEY)
        chunked = bytearray(data)
        view = memoryview(chunked)
        done = 0
        for a, b in itertools.pairwise([0, *cuts, len(data)]):
            codec.apply_mask(view[a:b], KEY, done)
            done += b - a
        assert chunked == whole


def test_apply_mask_on_odd_memoryview_slices(codec):
    data = payload_bytes(200, 9)
    for start in range(0, 9):
        for length in (0, 1, 3, 7, 8, 15, 16, 17, 63, 64, 65, 150):
            buf = bytearray(data)
            codec.apply_mask(memoryview(buf)[start : start + length], KEY, start)
            expected = (
                data[:start]
                + reference_mask(data[start : start + length], KEY, start)
                + data[start + length :]
            )
            assert buf == expected, (start, length)


def test_apply_mask_large_buffer(codec):
    data = payload_bytes(1 << 20, 11)
    buf = bytearray(data)
    codec.apply_mask(buf, KEY, 3)
    assert buf[:1000] == reference_mask(data[:1000], KEY, 3)
    assert buf[-999:] == reference_mask(data[-999:], KEY, (len(data) - 999 + 3) % 4)
    codec.apply_mask(buf, KEY, 3)
    assert buf == data


@pytest.mark.parametrize("key", [b"", b"abc", b"abcde", bytearray(8)])
def test_apply_mask_rejects_bad_key(codec, key):
    with pytest.raises(ValueError, match="mask key must be 4 bytes"):
        codec.apply_mask(bytearray(b"data"), key)


def test_apply_mask_rejects_read_only_buffers(codec):
    with pytest.raises(TypeError):
        codec.apply_mask(b"data", KEY)
    with pytest.raises(TypeError):
        codec.apply_mask(memoryview(b"data"), KEY)
    with pytest.raises(TypeError):
        codec.apply_mask(memoryview(bytearray(b"data")).toreadonly(), KEY)


def test_strided_views_are_refused(codec):
    strided = memoryview(bytearray(HELLO_MASKED * 2))[::2]
    with pytest.raises(TypeError):
        codec.apply_mask(strided, KEY)
    with pytest.raises(TypeError):
        codec.build_frame(codec.OP_BINARY, strided)
    with pytest.raises(TypeError):
        codec.FrameParser(lambda *args: None).feed(strided)
    with pytest.raises(TypeError):
        codec.Utf8Validator().feed(strided)
    with pytest.raises(TypeError):
        codec.validate_utf8(strided)


# --------------------------------------------------------------------------- parser: valid input


@pytest.mark.parametrize("path", ["feed", "buffer"])
def test_payload_is_an_unmasked_view_into_the_pooled_buffer(codec, path):
    pool = RecordingPool()
    seen = []

    def on_frame(opcode, fin, rsv1, payload):
        assert type(payload) is memoryview
        assert payload.format == "B" and payload.ndim == 1 and payload.nbytes == len(payload)
        # zero-copy: it points into the receive buffer, the shared or a pooled one
        assert payload.obj is codec._shared_read_buffer() or id(payload.obj) in pool.held
        seen.append(bytes(payload))

    parser = codec.FrameParser(on_frame, pool=pool)
    payloads = [b"", b"abcdefghij", payload_bytes(70000, 3)]
    frames = b"".join(codec.build_frame(0x2, data, mask_key=KEY) for data in payloads)
    deliver(parser, frames, path)
    assert seen == payloads


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_feed_accepts_every_buffer_type(codec, kind):
    parser, frames = make_parser(codec)
    parser.feed(kind(HELLO_MASKED + PONG_HELLO_MASKED))
    assert frames == [(0x1, True, False, b"Hello"), (0xA, True, False, b"Hello")]


@pytest.mark.parametrize("client", [False, True])
@pytest.mark.parametrize("size", [0, 5, 300])
@pytest.mark.parametrize("width", [16, 64])
def test_non_minimal_lengths_are_accepted(codec, client, size, width):
    payload = payload_bytes(size, size)
    mask_bit = 0 if client else 0x80
    if width == 16:
        length = bytes((mask_bit | 126,)) + size.to_bytes(2, "big")
    else:
        length = bytes((mask_bit | 127,)) + size.to_bytes(8, "big")
    body = payload if client else reference_mask(payload, KEY)
    wire = b"\x82" + length + (b"" if client else KEY) + body
    parser, frames = make_parser(codec, client=client)
    parser.feed(wire)
    assert frames == [(0x2, True, False, payload)]


@pytest.mark.parametrize("client", [False, True])
def test_empty_frames(codec, client):
    parser, frames = make_parser(codec, client=client)
    mask = {} if client else {"mask_key": KEY}
    wire = b"".join(
        codec.build_frame(op, b"", fin=op != 0x1, **mask) for op in (0x1, 0x0, 0x9, 0xA, 0x8, 0x2)
    )
    assert len(wire) == 6 * (2 if client else 6)
    for byte in wire:
        parser.feed(bytes((byte,)))
    assert frames == [
        (0x1, False, False, b""),
        (0x0, True, False, b""),
        (0x9, True, False, b""),
        (0xA, True, False, b""),
        (0x8, True, False, b""),
        (0x2, True, False, b""),
    ]
    assert parser.buffered == 0


def test_control_frame_of_125_bytes(codec):
    parser, frames = make_parser(codec)
    parser.feed(codec.build_frame(codec.OP_PING, b"p" * 125, mask_key=KEY))
    assert frames == [(0x9, True, False, b"p" * 125)]


def test_rsv1_reported_when_allowed(codec):
    parser, frames = make_parser(codec, rsv1_allowed=True)
    parser.feed(
        codec.build_frame(0x1, b"a", fin=False, rsv1=True, mask_key=KEY)
        + codec.build_frame(0x0, b"b", mask_key=KEY)
        + codec.build_frame(0x2, b"c", rsv1=True, mask_key=KEY)
    )
    assert frames == [(0x1, False, True, b"a"), (0x0, True, False, b"b"), (0x2, True, True, b"c")]


@pytest.mark.parametrize("path", ["feed", "buffer"])
def test_max_size_boundary(codec, path):
    for limit in (0, 1, 125, 126, 65535, 65536, 100000):
        parser, frames = make_parser(codec, max_size=limit)
        deliver(parser, codec.build_frame(0x2, b"m" * limit, mask_key=KEY), path)
        assert frames == [(0x2, True, False, b"m" * limit)]
        with pytest.raises(ProtocolError) as info:
            deliver(parser, codec.build_frame(0x2, b"m" * (limit + 1), mask_key=KEY), path)
        assert (info.value.code, info.value.reason) == (
            1009,
            f"frame payload of {limit + 1} bytes exceeds the limit of {limit} bytes",
        )


def test_limits_may_change_between_feeds(codec):
    parser, frames = make_parser(codec, max_size=10)
    parser.max_size = 20
    assert parser.max_size == 20
    parser.feed(codec.build_frame(0x2, b"x" * 20, mask_key=KEY))
    parser.rsv1_allowed = True
    assert parser.rsv1_allowed
    parser.feed(codec.build_frame(0x1, b"z", rsv1=True, mask_key=KEY))
    parser.max_size = 5
    with pytest.raises(ProtocolError) as info:
        parser.feed(codec.build_frame(0x2, b"x" * 6, mask_key=KEY))
    assert info.value.code == 1009
    assert frames == [(0x2, True, False, b"x" * 20), (0x1, True, True, b"z")]

    parser, frames = make_parser(codec, rsv1_allowed=True)
    parser.rsv1_allowed = False
    with pytest.raises(ProtocolError) as info:
        parser.feed(codec.build_frame(0x1, b"z", rsv1=True, mask_key=KEY))
    assert info.value.reason == "RSV1 set without a negotiated extension"


def test_limits_changed_by_the_callback_apply_to_the_next_frame(codec):
    def on_frame(opcode, fin, rsv1, payload):
        parser.max_size = 3
        parser.rsv1_allowed = True

    parser = codec.FrameParser(on_frame, max_size=10)
    with pytest.raises(ProtocolError) as info:
        parser.feed(HELLO_MASKED + HELLO_MASKED)
    assert (info.value.code, info.value.reason) == (
        1009,
        "frame payload of 5 bytes exceeds the limit of 3 bytes",
    )
    parser = codec.FrameParser(on_frame)
    parser.feed(HELLO_MASKED + codec.build_frame(0x1, b"z", rsv1=True, mask_key=KEY))
    assert parser.buffered == 0


@pytest.mark.parametrize("path", ["feed", "buffer"])
def test_buffered_counts_pending_bytes(codec, path):
    parser, frames = make_parser(codec)
    first = codec.build_frame(0x2, b"a" * 300, mask_key=KEY)
    second = codec.build_frame(0x1, b"b" * 10, mask_key=KEY)
    assert parser.buffered == 0
    deliver(parser, first[:1], path)
    assert parser.buffered == 1
    deliver(parser, first[1:100], path)
    assert parser.buffered == 100
    deliver(parser, first[100:] + second[:7], path)
    assert parser.buffered == 7
    assert frames == [(0x2, True, False, b"a" * 300)]
    deliver(parser, second[7:], path)
    assert parser.buffered == 0
    assert frames[1:] == [(0x1, True, False, b"b" * 10)]


# --------------------------------------------------------------------------- parser: errors


def masked_header(b0: int, b1: int, extended: bytes = b"") -> bytes:
    return header(b0, b1 | 0x80, extended, KEY)


# (id, parser options, wire, index of the byte that makes it invalid, code, reason)
ERROR_CASES = [
    *[
        (f"opcode-{op:x}", {}, masked_header(0x80 | op, 0), 0, 1002, f"unknown opcode {op:#x}")
        for op in UNKNOWN_OPCODES
    ],
    (
        "rsv1-text",
        {},
        masked_header(0xC1, 1) + b"x",
        0,
        1002,
        "RSV1 set without a negotiated extension",
    ),
    ("rsv1-ping", {}, masked_header(0xC9, 0), 0, 1002, "RSV1 set without a negotiated extension"),
    ("rsv1-cont", {}, masked_header(0xC0, 0), 0, 1002, "RSV1 set without a negotiated extension"),
    *[
        (
            f"rsv1-control-{op:x}",
            {"rsv1_allowed": True},
            masked_header(0xC0 | op, 0),
            0,
            1002,
            "RSV1 set on a control frame",
        )
        for op in (0x8, 0x9, 0xA)
    ],
    (
        "rsv1-continuation",
        {"rsv1_allowed": True},
        masked_header(0xC0, 0),
        0,
        1002,
        "RSV1 set on a continuation frame",
    ),
    (
        "rsv1-continuation-unfinished",
        {"rsv1_allowed": True},
        masked_header(0x40, 0),
        0,
        1002,
        "RSV1 set on a continuation frame",
    ),
    ("rsv2", {}, masked_header(0xA1, 0), 0, 1002, "RSV2 set without a negotiated extension"),
    (
        "rsv2-allowed-rsv1",
        {"rsv1_allowed": True},
        masked_header(0xA2, 0),
        0,
        1002,
        "RSV2 set without a negotiated extension",
    ),
    ("rsv3", {}, masked_header(0x91, 0), 0, 1002, "RSV3 set without a negotiated extension"),
    *[
        (
            f"fragmented-control-{op:x}",
            {},
            masked_header(op, 0),
            0,
            1002,
            "fragmented control frame",
        )
        for op in (0x8, 0x9, 0xA)
    ],
    (
        "control-126",
        {},
        masked_header(0x89, 126, b"\x00\x7e"),
        1,
        1002,
        "control frame payload over 125 bytes",
    ),
    (
        "control-127",
        {},
        masked_header(0x8A, 127, bytes(7) + b"\x7e"),
        1,
        1002,
        "control frame payload over 125 bytes",
    ),
    (
        "control-126-client",
        {"client": True},
        header(0x88, 126, b"\x00\x7e"),
        1,
        1002,
        "control frame payload over 125 bytes",
    ),
    (
        "unmasked-from-client",
        {},
        header(0x81, 5) + b"Hello",
        1,
        1002,
        "unmasked frame from a client",
    ),
    ("unmasked-empty-from-client", {}, header(0x82, 0), 1, 1002, "unmasked frame from a client"),
    ("masked-from-server", {"client": True}, HELLO_MASKED, 1, 1002, "masked frame from a server"),
    (
        "length-top-bit",
        {},
        masked_header(0x82, 127, b"\x80" + bytes(6) + b"\x01"),
        9,
        1002,
        "payload length with the most significant bit set",
    ),
    (
        "length-top-bit-client",
        {"client": True},
        header(0x82, 127, b"\xff" * 8),
        9,
        1002,
        "payload length with the most significant bit set",
    ),
    (
        "too-big-7",
        {"max_size": 4},
        masked_header(0x82, 5) + b"12345",
        1,
        1009,
        "frame payload of 5 bytes exceeds the limit of 4 bytes",
    ),
    (
        "too-big-zero-limit",
        {"max_size": 0},
        masked_header(0x89, 1) + b"1",
        1,
        1009,
        "frame payload of 1 bytes exceeds the limit of 0 bytes",
    ),
    (
        "too-big-16",
        {"max_size": 1000},
        masked_header(0x81, 126, (1001).to_bytes(2, "big")) + b"x" * 1001,
        3,
        1009,
        "frame payload of 1001 bytes exceeds the limit of 1000 bytes",
    ),
    (
        "too-big-64",
        {},
        masked_header(0x82, 127, (1048577).to_bytes(8, "big")) + b"x" * 100,
        9,
        1009,
        "frame payload of 1048577 bytes exceeds the limit of 1048576 bytes",
    ),
    (
        "too-big-64-client",
        {"client": True, "max_size": 65535},
        header(0x02, 127, (65536).to_bytes(8, "big")) + b"x" * 100,
        9,
        1009,
        "frame payload of 65536 bytes exceeds the limit of 65535 bytes",
    ),
    # several faults at once: the first in check order wins
    ("order-opcode-before-rsv", {}, masked_header(0xF3, 0), 0, 1002, "unknown opcode 0x3"),
    (
        "order-rsv1-before-rsv2",
        {},
        masked_header(0xE1, 0),
        0,
        1002,
        "RSV1 set without a negotiated extension",
    ),
    (
        "order-rsv1-control-before-rsv2-and-fin",
        {"rsv1_allowed": True},
        masked_header(0x79, 0),
        0,
        1002,
        "RSV1 set on a control frame",
    ),
    (
        "order-rsv2-before-rsv3",
        {},
        masked_header(0xB1, 0),
        0,
        1002,
        "RSV2 set without a negotiated extension",
    ),
    (
        "order-rsv3-before-fin",
        {},
        masked_header(0x19, 0),
        0,
        1002,
        "RSV3 set without a negotiated extension",
    ),
    (
        "order-fin-before-length",
        {},
        masked_header(0x09, 126, b"\x00\xff"),
        0,
        1002,
        "fragmented control frame",
    ),
    (
        "order-control-length-before-mask",
        {},
        header(0x89, 126, b"\x00\xff"),
        1,
        1002,
        "control frame payload over 125 bytes",
    ),
    (
        "order-mask-before-size",
        {"max_size": 1},
        header(0x82, 5) + b"Hello",
        1,
        1002,
        "unmasked frame from a client",
    ),
    (
        "order-mask-before-size-client",
        {"client": True, "max_size": 1},
        HELLO_MASKED,
        1,
        1002,
        "masked frame from a server",
    ),
    (
        "order-top-bit-before-size",
        {"max_size": 10},
        masked_header(0x82, 127, b"\x80" + bytes(7)),
        9,
        1002,
        "payload length with the most significant bit set",
    ),
]


@pytest.mark.parametrize("path", ["feed", "buffer"])
@pytest.mark.parametrize("case", ERROR_CASES, ids=[case[0] for case in ERROR_CASES])
def test_error_fed_whole(codec, case, path):
    _, options, wire, _, code, reason = case
    pool = RecordingPool()
    parser, frames = make_parser(codec, pool=pool, **options)
    with pytest.raises(ProtocolError) as info:
        deliver(parser, wire, path)
    assert (info.value.code, info.value.reason) == (code, reason)
    assert frames == []
    assert_failed_for_good(codec, parser, pool, code, reason)


@pytest.mark.parametrize("path", ["feed", "buffer"])
@pytest.mark.parametrize("case", ERROR_CASES, ids=[case[0] for case in ERROR_CASES])
def test_error_raised_at_the_first_bad_byte(codec, case, path):
    """Fed one byte at a time, the error comes with the byte that carries the bad
    field, before any later header byte or payload byte is needed."""
    _, options, wire, bad_index, code, reason = case
    pool = RecordingPool()
    parser, frames = make_parser(codec, pool=pool, **options)
    for index in range(bad_index):
        deliver(parser, wire[index : index + 1], path)
        assert parser.buffered == index + 1
    with pytest.raises(ProtocolError) as info:
        deliver(parser, wire[bad_index : bad_index + 1], path)
    assert (info.value.code, info.value.reason) == (code, reason)
    assert frames == []
    assert_failed_for_good(codec, parser, pool, code, reason)


def assert_failed_for_good(codec, parser, pool: RecordingPool, code: int, reason: str) -> None:
    """A failed parser holds no buffer and raises the same error on every later call."""
    assert parser.buffered == 0
    assert pool.in_use == 0 and pool.held == {}
    good = codec.build_frame(0x1, b"ok", mask_key=KEY)
    attempts = [
        lambda: parser.feed(good),
        lambda: parser.feed(b""),
        lambda: parser.buffer_updated(1),
        lambda: parser.get_buffer(-1),
    ]
    for attempt in attempts:
        with pytest.raises(ProtocolError) as info:
            attempt()
        assert (info.value.code, info.value.reason) == (code, reason)
        assert pool.in_use == 0
    parser.release()  # cleanup is always allowed, but does not heal the parser
    assert parser.buffered == 0
    with pytest.raises(ProtocolError) as info:
        parser.feed(good)
    assert (info.value.code, info.value.reason) == (code, reason)
    assert pool.in_use == 0


@pytest.mark.parametrize("path", ["feed", "buffer"])
def test_frames_before_an_error_are_delivered(codec, path):
    parser, frames = make_parser(codec)
    wire = HELLO_MASKED + PONG_HELLO_MASKED + masked_header(0x83, 0) + HELLO_MASKED
    with pytest.raises(ProtocolError) as info:
        deliver(parser, wire, path)
    assert info.value.reason == "unknown opcode 0x3"
    assert frames == [(0x1, True, False, b"Hello"), (0xA, True, False, b"Hello")]
    assert parser.buffered == 0


def test_error_before_payload_arrives(codec):
    """Only the header of an over-limit frame is needed to reject it."""
    pool = RecordingPool()
    parser, _ = make_parser(codec, max_size=1000, pool=pool)
    with pytest.raises(ProtocolError) as info:
        parser.feed(masked_header(0x82, 127, (1 << 40).to_bytes(8, "big")))
    assert info.value.code == 1009
    assert pool.in_use == 0

    parser, _ = make_parser(codec, max_size=1000, pool=pool)
    view = parser.get_buffer(-1)
    view[:4] = b"\x82\xfe\x03\xe9"
    with pytest.raises(ProtocolError) as info:
        parser.buffer_updated(4)
    assert info.value.reason == "frame payload of 1001 bytes exceeds the limit of 1000 bytes"
    assert pool.in_use == 0


# --------------------------------------------------------------------------- parser: callback


class Boom(Exception):
    pass


@pytest.mark.parametrize("exc_type", [Boom, ProtocolError])
@pytest.mark.parametrize("path", ["feed", "buffer"])
def test_callback_exception_leaves_parser_usable(codec, path, exc_type):
    """The frame is consumed before on_frame runs: after it raises, parsing
    resumes with the following frame (and the parser is not failed)."""
    seen = []

    def on_frame(opcode, fin, rsv1, payload):
        seen.append(bytes(payload))
        if bytes(payload) == b"bad":
            raise Boom("callback failed") if exc_type is Boom else ProtocolError(1007, "bad")

    pool = RecordingPool()
    parser = codec.FrameParser(on_frame, pool=pool)
    a = codec.build_frame(0x1, b"bad", mask_key=KEY)
    b = codec.build_frame(0x1, b"next", mask_key=KEY)
    c = codec.build_frame(0x2, b"after", mask_key=KEY)
    d = codec.build_frame(0x2, b"last", mask_key=KEY)
    with pytest.raises(exc_type):
        deliver(parser, a + b + c[:3], path)
    assert seen == [b"bad"]
    assert parser.buffered == len(b) + 3
    deliver(parser, c[3:] + d, path)
    assert seen == [b"bad", b"next", b"after", b"last"]
    assert parser.buffered == 0
    assert pool.in_use == 0

    with pytest.raises(exc_type):  # the last frame raising leaves nothing pending
        deliver(parser, a, path)
    assert parser.buffered == 0
    assert pool.in_use == 0


def test_callback_return_value_is_ignored(codec):
    parser = codec.FrameParser(lambda *args: "ignored")
    parser.feed(HELLO_MASKED * 3)
    assert parser.buffered == 0


@pytest.mark.parametrize("path", ["feed", "buffer"])
def test_release_from_inside_the_callback(codec, path):
    """A connection that closes on a frame may release the parser right there:
    the rest is dropped and the buffer is back in the pool."""
    pool = RecordingPool()
    seen = []

    def on_frame(opcode, fin, rsv1, payload):
        seen.append(opcode)
        if opcode == 0x8:
            parser.release()

    parser = codec.FrameParser(on_frame, pool=pool)
    close = codec.build_frame(0x8, b"\x03\xe8", mask_key=KEY)
    deliver(parser, HELLO_MASKED + close + HELLO_MASKED + HELLO_MASKED[:4], path)
    assert seen == [0x1, 0x8]
    assert parser.buffered == 0
    assert pool.in_use == 0
    deliver(parser, HELLO_MASKED, path)
    assert seen == [0x1, 0x8, 0x1]
    assert pool.in_use == 0


# --------------------------------------------------------------------------- parser: buffers


@pytest.mark.parametrize("path", ["feed", "buffer"])
def test_idle_parser_holds_no_buffer(codec, path):
    pool = RecordingPool()
    parser, frames = make_parser(codec, pool=pool)
    deliver(parser, HELLO_MASKED * 100, path)
    assert len(frames) == 100
    assert pool.in_use == 0 and pool.held == {}
    big = codec.build_frame(0x2, payload_bytes(300000, 4), mask_key=KEY)
    deliver(parser, big, path)
    assert frames[-1] == (0x2, True, False, payload_bytes(300000, 4))
    assert pool.in_use == 0 and pool.held == {}


def test_fresh_parser_reads_into_the_shared_64k_buffer(codec):
    pool = RecordingPool()
    parser, frames = make_parser(codec, pool=pool)
    view = parser.get_buffer(-1)
    assert len(view) == 65536
    assert not view.readonly
    assert view.obj is codec._shared_read_buffer()
    assert pool.in_use == 0  # complete frames never touch the pool
    view[: len(HELLO_MASKED)] = HELLO_MASKED
    parser.buffer_updated(len(HELLO_MASKED))
    assert frames == [(0x1, True, False, b"Hello")]
    assert pool.in_use == 0 and parser.buffered == 0


def test_a_partial_frame_leaves_the_shared_buffer_for_a_pooled_one(codec):
    pool = RecordingPool()
    parser, frames = make_parser(codec, pool=pool)
    view = parser.get_buffer(-1)
    view[:3] = HELLO_MASKED[:3]
    parser.buffer_updated(3)
    assert pool.in_use == 1 and parser.buffered == 3  # the shared buffer is free again
    other, other_frames = make_parser(codec, pool=pool)
    other.feed(HELLO_MASKED)
    assert other_frames == [(0x1, True, False, b"Hello")]
    parser.feed(HELLO_MASKED[3:])
    assert frames == [(0x1, True, False, b"Hello")]
    assert pool.in_use == 0


def test_a_parser_fed_from_a_callback_does_not_use_the_busy_shared_buffer(codec):
    pool = RecordingPool()
    inner, inner_frames = make_parser(codec, pool=pool)
    seen = []

    def on_frame(opcode, fin, rsv1, payload):
        inner.feed(HELLO_MASKED)  # must not overwrite the frames still to come
        seen.append(bytes(payload))

    outer = codec.FrameParser(on_frame, pool=pool)
    two = codec.build_frame(0x2, b"one", mask_key=KEY) + codec.build_frame(0x2, b"two", mask_key=KEY)
    view = outer.get_buffer(-1)
    view[: len(two)] = two
    outer.buffer_updated(len(two))
    assert seen == [b"one", b"two"]
    assert inner_frames == [(0x1, True, False, b"Hello")] * 2
    assert pool.in_use == 0


@pytest.mark.parametrize("path", ["feed", "buffer"])
def test_waiting_parser_keeps_only_a_small_buffer(codec, path):
    """After a big read that ends inside a small frame, only the smallest size
    class stays held (many idle-ish connections must stay cheap)."""
    pool = RecordingPool()
    parser, frames = make_parser(codec, pool=pool)
    frame = codec.build_frame(0x2, b"x" * 100, mask_key=KEY)
    stream = frame * 600  # about 64 KiB
    deliver(parser, stream + frame[:50], path)
    assert len(frames) == 600
    assert parser.buffered == 50
    assert pool.in_use == 1
    assert pool.held_bytes == BufferPool.size_class(0)
    deliver(parser, frame[50:], path)
    assert len(frames) == 601 and frames[-1] == frames[0]
    assert pool.in_use == 0

    deliver(parser, frame[:1], path)  # a lone header byte
    assert pool.held_bytes == BufferPool.size_class(0)
    parser.release()
    assert pool.in_use == 0


def test_large_frame_is_read_straight_into_place(codec):
    """Once a big frame's header is known, one get_buffer view covers the whole
    rest of it, and no further buffer is taken while it arrives."""
    pool = RecordingPool()
    parser, frames = make_parser(codec, pool=pool)
    payload = payload_bytes(1 << 20, 12)
    frame = codec.build_frame(0x2, payload, mask_key=KEY)
    small = HELLO_MASKED * 10
    write_through_buffer(parser, small + frame[:100])
    assert parser.buffered == 100
    view = parser.get_buffer(-1)
    assert len(view) >= len(frame) - 100
    taken = pool.acquired
    pos = 100
    for size in (1, 999, 65536, 300000, 65536):
        view = parser.get_buffer(-1)
        assert len(view) >= len(frame) - pos
        view[:size] = frame[pos : pos + size]
        parser.buffer_updated(size)
        pos += size
        assert parser.buffered == pos
    write_through_buffer(parser, frame[pos:])
    assert pool.acquired == taken
    assert frames[-1] == (0x2, True, False, payload)
    assert len(frames) == 11
    assert pool.in_use == 0


@pytest.mark.parametrize("path", ["feed", "buffer"])
def test_release_drops_pending_bytes(codec, path):
    pool = RecordingPool()
    parser, frames = make_parser(codec, pool=pool)
    deliver(parser, HELLO_MASKED + PONG_HELLO_MASKED[:7], path)
    assert parser.buffered == 7
    parser.release()
    assert parser.buffered == 0
    assert pool.in_use == 0
    parser.release()  # twice is harmless
    deliver(parser, HELLO_MASKED, path)  # a clean start: the dropped bytes are gone
    assert frames == [(0x1, True, False, b"Hello")] * 2
    assert pool.in_use == 0


def test_default_pool_is_shared(codec):
    from fastws.buffers import default_pool

    parser, _ = make_parser(codec)
    before = default_pool.in_use
    parser.feed(HELLO_MASKED[:3])
    assert default_pool.in_use == before + 1
    parser.release()
    assert default_pool.in_use == before


# --------------------------------------------------------------------------- parser: properties


@st.composite
def frame_specs(draw):
    opcode = draw(st.sampled_from(OPCODES))
    if opcode >= 8:
        fin, rsv1 = True, False
        size = draw(st.sampled_from([0, 1, 125]) | st.integers(0, 125))
    else:
        fin = draw(st.booleans())
        rsv1 = opcode != 0 and draw(st.booleans())
        size = draw(st.sampled_from([0, 1, 125, 126, 127, 65535, 65536]) | st.integers(0, 400))
    return opcode, fin, rsv1, payload_bytes(size, draw(st.integers(0, 1000)))


@st.composite
def framed_streams(draw, client: bool):
    """(frame specs, built frames, build options); server-bound frames are masked."""
    specs = draw(st.lists(frame_specs(), min_size=1, max_size=6))
    frames, build_options = [], []
    for opcode, fin, rsv1, payload in specs:
        if client:
            options = {}
        elif draw(st.booleans()):
            options = {"mask": True}
        else:
            options = {"mask_key": draw(st.binary(min_size=4, max_size=4))}
        frames.append(reference.build_frame(opcode, payload, fin, rsv1, **options))
        build_options.append(options)
    return specs, frames, build_options


@SETTINGS
@given(data=st.data(), client=st.booleans(), path=st.sampled_from(["feed", "buffer"]))
def test_round_trip_random_frames_random_splits(codec, data, client, path):
    specs, frames, build_options = data.draw(framed_streams(client))
    for (opcode, fin, rsv1, payload), wire, options in zip(
        specs, frames, build_options, strict=True
    ):
        if "mask" not in options:  # a random key cannot be compared
            assert codec.build_frame(opcode, payload, fin, rsv1, **options) == wire
    stream = b"".join(frames)
    ends = list(itertools.accumulate(len(f) for f in frames))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    pool = RecordingPool()
    parser, got = make_parser(codec, client=client, rsv1_allowed=True, max_size=65536, pool=pool)
    fed = 0
    for piece in pieces(stream, cuts):
        deliver(parser, piece, path)
        fed += len(piece)
        done = max([0] + [end for end in ends if end <= fed])
        assert parser.buffered == fed - done
        assert parser.buffered <= 14 + parser.max_size
        assert len(got) == sum(1 for end in ends if end <= fed)
    assert got == specs
    assert pool.in_use == 0


@SETTINGS
@given(spec=frame_specs(), key=st.binary(min_size=4, max_size=4))
def test_build_matches_reference_masking(codec, spec, key):
    opcode, fin, rsv1, payload = spec
    built = codec.build_frame(opcode, payload, fin, rsv1, mask_key=key)
    plain = codec.build_frame(opcode, payload, fin, rsv1)
    head = len(plain) - len(payload)
    assert built[:head] == bytes((plain[0], plain[1] | 0x80)) + plain[2:head]
    assert built[head : head + 4] == key
    assert built[head + 4 :] == reference_mask(payload, key)
    assert plain[head:] == payload


@st.composite
def hostile_streams(draw):
    """Built frames, then bit flips, truncation, junk or pure noise."""
    client = draw(st.booleans())
    _, frames, _ = draw(framed_streams(client))
    stream = bytearray(b"".join(frames)[:3000])
    kind = draw(st.sampled_from(["flip", "truncate", "junk", "noise", "clean"]))
    if kind == "flip" and stream:
        for _ in range(draw(st.integers(1, 4))):
            pos = draw(st.integers(0, min(len(stream) - 1, 40)))
            stream[pos] ^= 1 << draw(st.integers(0, 7))
    elif kind == "truncate":
        del stream[draw(st.integers(0, len(stream))) :]
    elif kind == "junk":
        pos = draw(st.integers(0, len(stream)))
        stream[pos:pos] = draw(st.binary(min_size=1, max_size=20))
    elif kind == "noise":
        stream = bytearray(draw(st.binary(max_size=200)))
    options = {
        "client": client,
        "max_size": draw(st.sampled_from([0, 5, 125, 126, 65535, 65536, 1 << 20])),
        "rsv1_allowed": draw(st.booleans()),
    }
    cuts = draw(st.lists(st.integers(0, len(stream)), max_size=8))
    return bytes(stream), options, cuts


def run_stream(codec, stream: bytes, options: dict, cuts: list[int], path: str):
    """Feed a stream; return (frames, error as (code, reason) or None, buffered after each piece)."""
    pool = RecordingPool()
    parser, frames = make_parser(codec, pool=pool, **options)
    buffered = []
    error = None
    for piece in pieces(stream, cuts):
        try:
            deliver(parser, piece, path)
        except ProtocolError as exc:  # anything else fails the test
            error = (exc.code, exc.reason)
            assert pool.in_use == 0
            break
        buffered.append(parser.buffered)
        assert parser.buffered <= 14 + options["max_size"]
    else:
        if parser.buffered == 0:
            assert pool.in_use == 0
    parser.release()
    assert pool.in_use == 0
    return frames, error, buffered


@SETTINGS
@given(case=hostile_streams(), path=st.sampled_from(["feed", "buffer"]))
def test_hostile_streams_raise_only_protocol_errors(codec, case, path):
    stream, options, cuts = case
    frames, error, _ = run_stream(codec, stream, options, cuts, path)
    # splitting never changes the outcome
    assert run_stream(codec, stream, options, [], "feed")[:2] == (frames, error)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=hostile_streams(), path=st.sampled_from(["feed", "buffer"]))
def test_cython_matches_the_reference_on_hostile_streams(both_codecs, case, path):
    """Differential: same bytes, same chunks -> same frames, same error, same buffering."""
    reference, compiled = both_codecs
    stream, options, cuts = case
    assert run_stream(compiled, stream, options, cuts, path) == run_stream(
        reference, stream, options, cuts, path
    )


@settings(max_examples=200, deadline=None)
@given(spec=frame_specs(), key=st.binary(min_size=4, max_size=4), offset=st.integers(0, 1000))
def test_cython_matches_the_reference_building_and_masking(both_codecs, spec, key, offset):
    reference, compiled = both_codecs
    opcode, fin, rsv1, payload = spec
    for options in ({}, {"mask_key": key}):
        assert compiled.build_frame(opcode, payload, fin, rsv1, **options) == reference.build_frame(
            opcode, payload, fin, rsv1, **options
        )
    a, b = bytearray(payload), bytearray(payload)
    reference.apply_mask(a, key, offset)
    compiled.apply_mask(b, key, offset)
    assert a == b


# --------------------------------------------------------------------------- UTF-8


_COMPLETIONS = [
    bytes(tail)
    for size in (1, 2, 3)
    for tail in itertools.product((0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF), repeat=size)
]


def is_valid_prefix(data: bytes) -> bool:
    """Reference: can ``data`` be continued into valid UTF-8? (Brute force.)"""
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        if exc.start < len(data) - 3:
            return False
    for tail in _COMPLETIONS:
        try:
            (data + tail).decode("utf-8")
            return True
        except UnicodeDecodeError:
            pass
    return False


def first_invalid_index(data: bytes) -> int | None:
    for index in range(len(data)):
        if not is_valid_prefix(data[: index + 1]):
            return index
    return None


VALID_UTF8 = [
    b"",
    b"Hello",
    "κόσμε".encode(),
    "héllo wörld".encode(),
    "€".encode(),
    "𝄞".encode(),
    "\u0080".encode(),
    "\u07ff".encode(),
    "\u0800".encode(),
    "\ud7ff".encode(),
    "\ue000".encode(),
    "\uffff".encode(),
    "\U00010000".encode(),
    "\U0010ffff".encode(),
    b"\x00\x7f",
    ("ascii " * 50 + "ünïcödé " * 50 + "中文 " * 50 + "😀" * 50).encode(),
]

# (bytes, index of the first byte that makes it invalid)
INVALID_UTF8 = [
    (b"\x80", 0),
    (b"\xbf", 0),
    (b"a\x80b", 1),
    (b"\xc0\x80", 0),
    (b"\xc1\xbf", 0),
    (b"\xe0\x80\x80", 1),
    (b"\xe0\x9f\xbf", 1),
    (b"\xed\xa0\x80", 1),
    (b"\xed\xbf\xbf", 1),
    (b"\xf0\x80\x80\x80", 1),
    (b"\xf0\x8f\xbf\xbf", 1),
    (b"\xf4\x90\x80\x80", 1),
    (b"\xf4\xbf\xbf\xbf", 1),
    (b"\xf5\x80\x80\x80", 0),
    (b"\xf8\x88\x80\x80\x80", 0),
    (b"\xfe", 0),
    (b"\xff", 0),
    (b"\xc2\x41", 1),
    (b"\xc2\xc2", 1),
    (b"\xe2\x82\x41", 2),
    (b"\xe2\x28\xa1", 1),
    (b"\xf0\x9d\x84\x41", 3),
    (b"\xf0\x9d\x41", 2),
    (b"a\xc3(", 2),
    (b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", 12),
    (b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80", 12),
    (b"Hello\xc0\x80", 5),
    ("€".encode() + b"\x80", 3),
]

TRUNCATED_UTF8 = [
    b"\xc2",
    b"\xe2\x82",
    b"\xf0\x9d\x84",
    b"ok\xe0\xa0",
    b"\xed\x9f",
    b"\xf4\x8f\xbf",
]


def test_utf8_reference_agrees_with_vectors():
    for data, index in INVALID_UTF8:
        assert first_invalid_index(data) == index, data
    for data in VALID_UTF8 + TRUNCATED_UTF8:
        assert first_invalid_index(data) is None, data


@pytest.mark.parametrize("data", VALID_UTF8, ids=range(len(VALID_UTF8)))
def test_utf8_valid(codec, data):
    assert codec.validate_utf8(data) is True
    validator = codec.Utf8Validator()
    validator.feed(data, final=True)
    for split in range(len(data) + 1):
        validator.feed(data[:split])
        validator.feed(memoryview(data)[split:], final=True)
    for byte in data:
        validator.feed(bytes((byte,)))
    validator.feed(b"", final=True)


@pytest.mark.parametrize(("data", "bad_index"), INVALID_UTF8, ids=range(len(INVALID_UTF8)))
def test_utf8_invalid_fails_at_the_first_bad_byte(codec, data, bad_index):
    assert codec.validate_utf8(data) is False
    for final in (False, True):
        with pytest.raises(ProtocolError) as info:
            codec.Utf8Validator().feed(data, final=final)
        assert (info.value.code, info.value.reason) == (1007, "invalid UTF-8 in text message")
    validator = codec.Utf8Validator()
    for index, byte in enumerate(data):
        if index < bad_index:
            validator.feed(bytes((byte,)))
            continue
        with pytest.raises(ProtocolError) as info:
            validator.feed(bytes((byte,)))
        assert (info.value.code, info.value.reason) == (1007, "invalid UTF-8 in text message")
        break
    for split in range(bad_index + 1):  # every two-piece split: fails in the piece holding it
        validator = codec.Utf8Validator()
        validator.feed(data[:split])
        with pytest.raises(ProtocolError):
            validator.feed(data[split:])


@pytest.mark.parametrize("data", TRUNCATED_UTF8, ids=range(len(TRUNCATED_UTF8)))
def test_utf8_truncated_at_the_end(codec, data):
    assert codec.validate_utf8(data) is False
    validator = codec.Utf8Validator()
    validator.feed(data)  # could still be completed
    with pytest.raises(ProtocolError) as info:
        validator.feed(b"", final=True)
    assert (info.value.code, info.value.reason) == (
        1007,
        "text message ends inside a UTF-8 sequence",
    )
    with pytest.raises(ProtocolError) as info:
        codec.Utf8Validator().feed(data, final=True)
    assert (info.value.code, info.value.reason) == (
        1007,
        "text message ends inside a UTF-8 sequence",
    )


def test_utf8_validator_resets(codec):
    validator = codec.Utf8Validator()
    validator.feed(b"\xe2\x82")
    validator.reset()
    with pytest.raises(ProtocolError):
        validator.feed(b"\xac")  # a lone continuation byte once the state is gone

    validator = codec.Utf8Validator()
    validator.feed(b"abc", final=True)
    validator.feed(b"\xe2\x82")
    validator.feed(b"\xac", final=True)
    with pytest.raises(ProtocolError):
        validator.feed(b"\xac")  # final=True reset the state: nothing left to continue

    validator = codec.Utf8Validator()
    with pytest.raises(ProtocolError):
        validator.feed(b"\xe2\x82", final=True)
    with pytest.raises(ProtocolError):
        validator.feed(b"\xac")  # reset even when final=True found the message cut short


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_utf8_accepts_every_buffer_type(codec, kind):
    data = "€𝄞".encode()
    assert codec.validate_utf8(kind(data)) is True
    assert codec.validate_utf8(kind(data[:-1])) is False
    validator = codec.Utf8Validator()
    validator.feed(kind(data[:2]))
    validator.feed(kind(data[2:5]))
    validator.feed(kind(data[5:]), final=True)


utf8_inputs = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=30).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.tuples(st.text(max_size=20), st.binary(max_size=4), st.text(max_size=5)).map(
        lambda t: (
            t[0].encode("utf-8", "surrogatepass") + t[1] + t[2].encode("utf-8", "surrogatepass")
        )
    ),
)


@settings(max_examples=300, deadline=None)
@given(data=utf8_inputs, cuts=st.lists(st.integers(0, 60), max_size=6))
def test_utf8_matches_python_decoder(codec, data, cuts):
    try:
        data.decode("utf-8")
        valid = True
    except UnicodeDecodeError:
        valid = False
    assert codec.validate_utf8(data) is valid
    bad_index = first_invalid_index(data)
    chunks = pieces(data, [min(c, len(data)) for c in cuts])
    validator = codec.Utf8Validator()
    fed = 0
    error = None
    for number, chunk in enumerate(chunks):
        final = number == len(chunks) - 1
        try:
            validator.feed(chunk, final=final)
        except ProtocolError as exc:
            error = exc
            break
        fed += len(chunk)
    if valid:
        assert error is None
    elif bad_index is not None:
        # it fails in the very chunk that holds the first bad byte
        assert error is not None and error.reason == "invalid UTF-8 in text message"
        assert fed <= bad_index < fed + len(chunks[number])
    else:
        assert error is not None and error.reason == "text message ends inside a UTF-8 sequence"
        assert number == len(chunks) - 1


# --------------------------------------------------------------------------- close payloads


def test_close_empty_means_no_status(codec):
    assert codec.parse_close(b"") == (1005, "")
    assert codec.build_close(1005) == b""
    with pytest.raises(ValueError):
        codec.build_close(1005, "why")


def test_close_one_byte(codec):
    with pytest.raises(ProtocolError) as info:
        codec.parse_close(b"\x03")
    assert info.value.code == 1002


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_close_code_not_allowed(codec, code):
    with pytest.raises(ProtocolError) as info:
        codec.parse_close(code.to_bytes(2, "big") + b"reason")
    assert info.value.code == 1002
    if code not in (1005,):
        with pytest.raises(ValueError):
            codec.build_close(code)


@pytest.mark.parametrize(
    "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999]
)
def test_close_code_allowed(codec, code):
    for reason in ("", "bye", "déjà vu", "x" * 123):
        payload = codec.build_close(code, reason)
        assert payload == code.to_bytes(2, "big") + reason.encode()
        assert codec.parse_close(payload) == (code, reason)
        assert codec.parse_close(bytearray(payload)) == (code, reason)
        assert codec.parse_close(memoryview(payload)) == (code, reason)


def test_close_reason_limits(codec):
    with pytest.raises(ValueError):
        codec.build_close(1000, "x" * 124)
    with pytest.raises(ValueError):
        codec.build_close(1000, "é" * 62)  # 124 bytes in UTF-8
    assert len(codec.build_close(1000, "é" * 61 + "x")) == 125


@pytest.mark.parametrize("reason", [b"\xff", b"ok\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82"])
def test_close_reason_not_utf8(codec, reason):
    with pytest.raises(ProtocolError) as info:
        codec.parse_close(b"\x03\xe8" + reason)
    assert info.value.code == 1007


def test_python_codec_shares_close_helpers():
    assert reference.parse_close is closecodes.parse_close
    assert reference.build_close is closecodes.build_close
