"""permessage-deflate: header grammar, negotiation both ways, compression."""

from __future__ import annotations

import itertools
import random
import tracemalloc
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastws.deflate import (
    DeflateConfig,
    DeflateParams,
    PerMessageDeflate,
    client_accept,
    client_offer,
    parse_extensions,
    server_negotiate,
)
from fastws.errors import HandshakeError, ProtocolError

TAIL = b"\x00\x00\xff\xff"
TEXT = b"".join(b"%d: the quick brown fox jumps over the lazy dog\n" % i for i in range(100))


# --- config -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"server_max_window_bits": 7},
        {"client_max_window_bits": 16},
        {"level": 10},
        {"level": -2},
        {"mem_level": 0},
        {"mem_level": 10},
        {"threshold": -1},
    ],
)
def test_config_rejects_out_of_range(kwargs):
    with pytest.raises(ValueError):
        DeflateConfig(**kwargs)


# --- parse_extensions ---------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["permessage-deflate"], [("permessage-deflate", [])]),
        (
            ["permessage-deflate; client_max_window_bits; server_max_window_bits=10"],
            [
                (
                    "permessage-deflate",
                    [("client_max_window_bits", None), ("server_max_window_bits", "10")],
                )
            ],
        ),
        (
            ['foo;x="10", bar ;  y = 3 ;z'],
            [("foo", [("x", "10")]), ("bar", [("y", "3"), ("z", None)])],
        ),
        (['a; b="c\\d"'], [("a", [("b", "cd")])]),  # quoted-pair unescaped
        (["a", "b; c=1"], [("a", []), ("b", [("c", "1")])]),  # several headers
        ([" , a ,, b , "], [("a", []), ("b", [])]),  # empty list elements
        (
            ["Permessage-Deflate; Server_No_Context_Takeover"],
            [("Permessage-Deflate", [("Server_No_Context_Takeover", None)])],
        ),
        ([""], []),
        ([], []),
    ],
)
def test_parse_extensions(values, expected):
    assert parse_extensions(values) == expected


@pytest.mark.parametrize(
    "value",
    [
        "permessage-deflate;",
        "permessage-deflate; =1",
        "permessage-deflate; a=",
        "permessage-deflate; a=1 2",
        'permessage-deflate; a="1',  # unterminated
        'permessage-deflate; a="1 2"',  # unquoted value is no token
        'permessage-deflate; a=""',
        "permessage-deflate a",
        "permessage deflate",
        "per/message",
        ";a",
        "a; b=(c)",
        "a;;b",
        "a=1",
    ],
)
def test_parse_extensions_malformed_is_400(value):
    with pytest.raises(HandshakeError) as info:
        parse_extensions([value])
    assert info.value.status == 400


# --- server_negotiate ---------------------------------------------------------

DEFAULT = DeflateConfig()


@pytest.mark.parametrize(
    ("offer", "response", "params"),
    [
        ("permessage-deflate", "permessage-deflate", DeflateParams()),
        ("permessage-deflate; client_max_window_bits", "permessage-deflate", DeflateParams()),
        (
            "permessage-deflate; client_max_window_bits=10",
            "permessage-deflate; client_max_window_bits=10",
            DeflateParams(client_max_window_bits=10),
        ),
        (
            "permessage-deflate; server_max_window_bits=12",
            "permessage-deflate; server_max_window_bits=12",
            DeflateParams(server_max_window_bits=12),
        ),
        (
            "permessage-deflate; server_max_window_bits=15",
            "permessage-deflate; server_max_window_bits=15",
            DeflateParams(),
        ),
        (
            "permessage-deflate; server_max_window_bits=8",
            "permessage-deflate; server_max_window_bits=8",
            DeflateParams(server_max_window_bits=8),
        ),
        (
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            DeflateParams(server_no_context_takeover=True, client_no_context_takeover=True),
        ),
        (
            'permessage-deflate; server_max_window_bits="9"',
            "permessage-deflate; server_max_window_bits=9",
            DeflateParams(server_max_window_bits=9),
        ),
        (
            "PerMessage-Deflate; Client_Max_Window_Bits=9",
            "permessage-deflate; client_max_window_bits=9",
            DeflateParams(client_max_window_bits=9),
        ),
    ],
)
def test_server_negotiate_single_offer(offer, response, params):
    assert server_negotiate([offer], DEFAULT) == (response, params)


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; x-unknown",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover=true",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=08",
        "permessage-deflate; server_max_window_bits=1e1",
        "permessage-deflate; client_max_window_bits=0",
        "permessage-deflate; client_max_window_bits=-9",
        "x-webkit-deflate-frame",
    ],
)
def test_server_declines_bad_offer(offer):
    assert server_negotiate([offer], DEFAULT) is None


def test_server_takes_first_acceptable_offer():
    offers = [
        "x-foo, permessage-deflate; server_max_window_bits=99",
        "permessage-deflate; client_max_window_bits; server_max_window_bits=10, permessage-deflate",
    ]
    assert server_negotiate(offers, DEFAULT) == (
        "permessage-deflate; server_max_window_bits=10",
        DeflateParams(server_max_window_bits=10),
    )


def test_server_config_adds_its_own_limits():
    config = DeflateConfig(
        server_no_context_takeover=True,
        client_no_context_takeover=True,
        server_max_window_bits=11,
        client_max_window_bits=10,
    )
    response, params = server_negotiate(["permessage-deflate; client_max_window_bits"], config)
    assert response == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=11; client_max_window_bits=10"
    )
    assert params == DeflateParams(True, True, 11, 10)
    # the smaller of offer and config wins, both ways
    _, params = server_negotiate(
        ["permessage-deflate; server_max_window_bits=9; client_max_window_bits=12"], config
    )
    assert (params.server_max_window_bits, params.client_max_window_bits) == (9, 10)
    _, params = server_negotiate(
        ["permessage-deflate; server_max_window_bits=13; client_max_window_bits=8"], config
    )
    assert (params.server_max_window_bits, params.client_max_window_bits) == (11, 8)


def test_server_limiting_client_window_declines_offer_without_the_param():
    config = DeflateConfig(client_max_window_bits=10)
    # RFC 7692 7.1.2.2: no client_max_window_bits in the offer, none in the response
    assert server_negotiate(["permessage-deflate"], config) is None
    agreed = server_negotiate(
        ["permessage-deflate, permessage-deflate; client_max_window_bits"], config
    )
    assert agreed == (
        "permessage-deflate; client_max_window_bits=10",
        DeflateParams(client_max_window_bits=10),
    )


def test_server_never_answers_client_max_window_bits_unoffered():
    for bits in range(8, 16):
        config = DeflateConfig(server_max_window_bits=bits)
        response, _ = server_negotiate(["permessage-deflate"], config)
        assert "client_max_window_bits" not in response


def test_server_negotiate_malformed_header_is_400():
    with pytest.raises(HandshakeError) as info:
        server_negotiate(["permessage-deflate; a=="], DEFAULT)
    assert info.value.status == 400


# --- client_offer / client_accept ---------------------------------------------


def test_client_offer():
    assert client_offer(DEFAULT) == "permessage-deflate; client_max_window_bits"
    config = DeflateConfig(True, True, 10, 9)
    assert client_offer(config) == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=10; client_max_window_bits=9"
    )


@pytest.mark.parametrize(
    ("response", "config"),
    [
        ("permessage-deflate, permessage-deflate", DEFAULT),
        ("x-other", DEFAULT),
        ("permessage-deflate; x-unknown", DEFAULT),
        ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", DEFAULT),
        ("permessage-deflate; server_no_context_takeover=1", DEFAULT),
        ("permessage-deflate; client_no_context_takeover=1", DEFAULT),
        ("permessage-deflate; server_max_window_bits", DEFAULT),
        ("permessage-deflate; server_max_window_bits=16", DEFAULT),
        ("permessage-deflate; server_max_window_bits=010", DEFAULT),
        ("permessage-deflate; client_max_window_bits", DEFAULT),  # a response needs the value
        ("permessage-deflate; client_max_window_bits=7", DEFAULT),
        ("permessage-deflate; client_max_window_bits=11", DeflateConfig(client_max_window_bits=10)),
        ("permessage-deflate; server_max_window_bits=11", DeflateConfig(server_max_window_bits=10)),
        ("permessage-deflate", DeflateConfig(server_max_window_bits=10)),  # request ignored
        ("permessage-deflate", DeflateConfig(server_no_context_takeover=True)),  # ignored
        ("permessage-deflate; =", DEFAULT),
    ],
)
def test_client_rejects_bad_response(response, config):
    with pytest.raises(HandshakeError) as info:
        client_accept(response, config)
    assert info.value.status == 502


@pytest.mark.parametrize(
    ("response", "config", "params"),
    [
        ("permessage-deflate", DEFAULT, DeflateParams()),
        (
            "permessage-deflate; server_no_context_takeover",  # allowed unasked (7.1.1.1)
            DEFAULT,
            DeflateParams(server_no_context_takeover=True),
        ),
        (
            "permessage-deflate; client_no_context_takeover",
            DEFAULT,
            DeflateParams(client_no_context_takeover=True),
        ),
        (
            "permessage-deflate",
            DeflateConfig(client_no_context_takeover=True),
            DeflateParams(client_no_context_takeover=True),
        ),
        (
            "permessage-deflate; server_max_window_bits=9",  # allowed unasked (7.1.2.1)
            DEFAULT,
            DeflateParams(server_max_window_bits=9),
        ),
        (
            "permessage-deflate; client_max_window_bits=12",
            DEFAULT,
            DeflateParams(client_max_window_bits=12),
        ),
        (
            "permessage-deflate",
            DeflateConfig(client_max_window_bits=10),
            DeflateParams(client_max_window_bits=10),
        ),
        (
            'Permessage-Deflate; Server_Max_Window_Bits="8"',
            DEFAULT,
            DeflateParams(server_max_window_bits=8),
        ),
    ],
)
def test_client_accepts_good_response(response, config, params):
    assert client_accept(response, config) == params


# --- negotiation round trips --------------------------------------------------

FLAGS = (False, True)


def configs(bits_choices):
    for snct, cnct, sbits, cbits in itertools.product(FLAGS, FLAGS, bits_choices, bits_choices):
        yield DeflateConfig(snct, cnct, sbits, cbits)


def negotiate(client: DeflateConfig, server: DeflateConfig) -> DeflateParams:
    agreed = server_negotiate([client_offer(client)], server)
    assert agreed is not None, "our own offer was declined"
    response, server_params = agreed
    client_params = client_accept(response, client)
    assert client_params == server_params
    return client_params


def test_negotiation_round_trip_all_combinations():
    count = 0
    for client in configs((8, 9, 12, 15)):
        for server in configs((8, 9, 12, 15)):
            params = negotiate(client, server)
            count += 1
            # every side gets at least what it asked for, and the windows are the smaller ones
            assert params.server_no_context_takeover == (
                client.server_no_context_takeover or server.server_no_context_takeover
            )
            assert params.client_no_context_takeover == (
                client.client_no_context_takeover or server.client_no_context_takeover
            )
            assert params.server_max_window_bits == min(
                client.server_max_window_bits, server.server_max_window_bits
            )
            assert params.client_max_window_bits == min(
                client.client_max_window_bits, server.client_max_window_bits
            )
    assert count == 64 * 64


# --- compression --------------------------------------------------------------


def pair(params: DeflateParams, config: DeflateConfig = DEFAULT):
    server = PerMessageDeflate(params, server=True, config=config)
    client = PerMessageDeflate(params, server=False, config=config)
    return server, client


def send(sender: PerMessageDeflate, receiver: PerMessageDeflate, message: bytes, cuts=()) -> bytes:
    """Compress on one side, inflate on the other in fragments cut at ``cuts``."""
    payload = sender.compress(message)
    bounds = sorted({0, len(payload), *(c % (len(payload) + 1) for c in cuts)})
    pieces = [payload[a:b] for a, b in zip(bounds, bounds[1:], strict=False)] or [b""]
    out = b"".join(
        receiver.decompress(piece, i == len(pieces) - 1, 1 << 24) for i, piece in enumerate(pieces)
    )
    return out


def test_compress_strips_the_tail_and_zlib_reads_it_back():
    server, _ = pair(DeflateParams())
    payload = server.compress(TEXT)
    assert not payload.endswith(TAIL)
    assert len(payload) < len(TEXT) // 4
    assert zlib.decompressobj(-15).decompress(payload + TAIL) == TEXT


def test_empty_and_one_byte_messages():
    server, client = pair(DeflateParams())
    assert server.compress(b"") == b"\x00"
    for message in [b"", b"a", b"", b"", TEXT, b"", b"b"]:
        assert send(server, client, message) == message
        assert send(client, server, message) == message


def test_empty_payload_with_rsv1_is_an_empty_message_and_keeps_the_context():
    server, client = pair(DeflateParams())
    assert send(server, client, TEXT) == TEXT
    assert client.decompress(b"", True, 100) == b""
    assert send(server, client, TEXT) == TEXT  # the context survived


def test_empty_payload_split_in_empty_fragments():
    _, client = pair(DeflateParams())
    assert client.decompress(b"", False, 100) == b""
    assert client.decompress(b"", True, 100) == b""
    assert client.decompress(zlib_payload(b"after"), True, 100) == b"after"


def zlib_payload(message: bytes, bits: int = 15) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -bits)
    return (compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def test_context_takeover_shrinks_repeated_messages():
    server, client = pair(DeflateParams())
    first = server.compress(TEXT)
    second = server.compress(TEXT)
    assert len(second) < len(first) // 4
    assert client.decompress(first, True, None) == TEXT
    assert client.decompress(second, True, None) == TEXT


@pytest.mark.parametrize("server_side", [True, False])
def test_no_context_takeover_resets_own_compressor(server_side):
    params = DeflateParams(
        server_no_context_takeover=server_side, client_no_context_takeover=not server_side
    )
    server, client = pair(params)
    sender = server if server_side else client
    first = sender.compress(TEXT)
    assert sender.compress(TEXT) == first
    # a fresh zlib inflater reads every message: no reference to older ones
    assert zlib.decompressobj(-15).decompress(first + TAIL) == TEXT


def test_decompressor_resets_when_the_peer_has_no_context_takeover():
    # The server keeps its context (it was told it may), but the client believes the
    # server resets: the client's fresh inflater cannot follow the back-references.
    honest = PerMessageDeflate(DeflateParams(), server=True, config=DEFAULT)
    client = PerMessageDeflate(
        DeflateParams(server_no_context_takeover=True), server=False, config=DEFAULT
    )
    assert client.decompress(honest.compress(TEXT), True, None) == TEXT
    with pytest.raises(ProtocolError) as info:
        client.decompress(honest.compress(TEXT), True, None)
    assert info.value.code == 1007


def test_peer_final_block_starts_a_new_stream():
    _, client = pair(DeflateParams())
    for message in [TEXT, b"second", TEXT]:
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        payload = compressor.compress(message) + compressor.flush(zlib.Z_FINISH)  # BFINAL=1
        assert client.decompress(payload, True, None) == message


def test_data_after_final_block_is_ignored():
    _, client = pair(DeflateParams())
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    payload = compressor.compress(b"x") + compressor.flush(zlib.Z_FINISH)
    assert client.decompress(payload, False, None) == b"x"
    assert client.decompress(b"anything" * 1000, False, None) == b""
    assert client.decompress(b"more", True, None) == b""
    assert client.decompress(zlib_payload(b"next"), True, None) == b"next"


# RFC 7692 section 7.2.3: the example payloads, each the message "Hello"
RFC_ONE_BLOCK = bytes.fromhex("f2 48 cd c9 c9 07 00")  # 7.2.3.1
RFC_SHARED_WINDOW = bytes.fromhex("f2 00 11 00 00")  # 7.2.3.2, right after 7.2.3.1
RFC_STORED = bytes.fromhex("00 05 00 fa ff 48 65 6c 6c 6f 00")  # 7.2.3.3
RFC_BFINAL = bytes.fromhex("f3 48 cd c9 c9 07 00 00")  # 7.2.3.4
RFC_TWO_BLOCKS = bytes.fromhex("f2 48 05 00 00 00 ff ff ca c9 c9 07 00")  # 7.2.3.5


def test_rfc7692_examples_compress():
    server, _ = pair(DeflateParams())
    assert server.compress(b"Hello") == RFC_ONE_BLOCK
    assert server.compress(b"Hello") == RFC_SHARED_WINDOW


@pytest.mark.parametrize(
    "payloads",
    [
        [RFC_ONE_BLOCK, RFC_SHARED_WINDOW],
        [RFC_STORED],
        [RFC_BFINAL, RFC_BFINAL, RFC_ONE_BLOCK],
        [RFC_TWO_BLOCKS],
        [RFC_STORED, RFC_ONE_BLOCK, RFC_TWO_BLOCKS, RFC_BFINAL, RFC_STORED],
    ],
)
def test_rfc7692_examples_decompress(payloads):
    _, client = pair(DeflateParams())
    for payload in payloads:
        assert client.decompress(payload, True, 5) == b"Hello"
    # and split into one-byte fragments
    _, client = pair(DeflateParams())
    for payload in payloads:
        pieces = [payload[i : i + 1] for i in range(len(payload))]
        out = b"".join(client.decompress(p, i == len(pieces) - 1, 5) for i, p in enumerate(pieces))
        assert out == b"Hello"


@pytest.mark.parametrize(
    "payload", [b"\xff\xff\xff\xff", b"\x07", b"\x00\x05\x00\x00\x00abcde", b"\x02\x01"]
)
def test_corrupt_data_is_1007(payload):
    _, client = pair(DeflateParams())
    with pytest.raises(ProtocolError) as info:
        client.decompress(payload, True, None)
    assert info.value == ProtocolError(1007, "invalid compressed data")
    # the next message starts clean
    assert client.decompress(zlib_payload(b"ok"), True, None) == b"ok"


def test_should_compress_threshold_and_8_bit_window():
    server, client = pair(DeflateParams(server_max_window_bits=8), DeflateConfig(threshold=10))
    assert not server.should_compress(10_000)  # zlib cannot deflate with an 8-bit window
    with pytest.raises(ValueError):
        server.compress(TEXT)
    assert client.should_compress(10)
    assert not client.should_compress(9)
    assert PerMessageDeflate(
        DeflateParams(), server=True, config=DeflateConfig(threshold=0)
    ).should_compress(0)


def test_8_bit_client_window_reads_what_zlib_makes_of_it():
    # zlib cannot deflate raw with 8 bits; a peer rounds up to 9, which we read.
    server = PerMessageDeflate(DeflateParams(client_max_window_bits=8), server=True, config=DEFAULT)
    data = bytes(random.Random(1).getrandbits(8) for _ in range(400)) * 10
    assert server.decompress(zlib_payload(data, bits=9), True, None) == data


@pytest.mark.parametrize("bits", range(9, 16))
def test_window_bits_are_honoured(bits):
    # A peer inflating with exactly the negotiated window reads what we send.
    params = DeflateParams(server_max_window_bits=bits, client_max_window_bits=bits)
    server, client = pair(params)
    data = bytes(random.Random(bits).getrandbits(8) for _ in range(3000)) * 20
    strict = zlib.decompressobj(-bits)
    assert strict.decompress(server.compress(data) + TAIL) == data
    assert strict.decompress(server.compress(data) + TAIL) == data
    assert send(client, server, data) == data


# --- Autobahn-like offers (case 13 style) -------------------------------------


class ZlibPeer:
    """A client written straight on zlib with the windows it asked for."""

    def __init__(self, params: DeflateParams) -> None:
        self.params = params
        # zlib cannot deflate raw with 8 bits; like old zlib, a peer may use 9.
        self.own_bits = max(params.client_max_window_bits, 9)
        self.compressor = None
        self.decompressor = None

    def compress(self, message: bytes) -> bytes:
        if self.compressor is None or self.params.client_no_context_takeover:
            self.compressor = zlib.compressobj(6, zlib.DEFLATED, -self.own_bits)
        out = self.compressor.compress(message) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
        return out[:-4]

    def decompress(self, payload: bytes) -> bytes:
        if self.decompressor is None or self.params.server_no_context_takeover:
            # exactly the server's window: a bigger distance would be an error
            self.decompressor = zlib.decompressobj(-self.params.server_max_window_bits)
        return self.decompressor.decompress(payload + TAIL)


def autobahn_offers():
    for no_context in FLAGS:
        for bits in range(8, 16):
            yield [
                f"permessage-deflate; server_max_window_bits={bits}"
                + ("; server_no_context_takeover" if no_context else "")
                + "; client_max_window_bits"
            ]
            yield [
                f"permessage-deflate; client_max_window_bits={bits}"
                + ("; client_no_context_takeover" if no_context else "")
            ]
            yield [
                f"permessage-deflate; client_no_context_takeover; client_max_window_bits={bits}; "
                f"server_no_context_takeover; server_max_window_bits={bits}"
            ]
    # several offers in preference order, over one or two headers
    yield [
        "permessage-deflate; server_max_window_bits=99, permessage-deflate; server_max_window_bits=9"
    ]
    yield ["permessage-deflate; foo", "permessage-deflate; client_no_context_takeover"]


@pytest.mark.parametrize("offer", list(autobahn_offers()), ids=str)
def test_autobahn_like_offers(offer):
    agreed = server_negotiate(offer, DEFAULT)
    assert agreed is not None
    response, params = agreed
    # what the client asked for is in force and said in the response
    requested = {
        name.lower(): value for _, ps in parse_extensions(offer[-1:]) for name, value in ps
    }
    if "server_max_window_bits" in requested:
        assert params.server_max_window_bits <= int(requested["server_max_window_bits"])
        assert f"server_max_window_bits={params.server_max_window_bits}" in response
    if requested.get("client_max_window_bits"):
        assert params.client_max_window_bits <= int(requested["client_max_window_bits"])
    for flag in ("server_no_context_takeover", "client_no_context_takeover"):
        if flag in requested:
            assert getattr(params, flag) and flag in response

    server = PerMessageDeflate(params, server=True, config=DeflateConfig(threshold=0))
    peer = ZlibPeer(params)
    rng = random.Random(7)
    for i in range(20):
        message = TEXT[: rng.randrange(len(TEXT))] + bytes(
            rng.getrandbits(8) for _ in range(i * 10)
        )
        assert server.decompress(peer.compress(message), True, 1 << 20) == message
        if server.should_compress(len(message)):
            assert peer.decompress(server.compress(message)) == message
        else:
            assert params.server_max_window_bits == 8  # uncompressed is the 8-bit fallback


# --- round trips with random fragmentation ------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    messages=st.lists(
        st.one_of(
            st.binary(max_size=2000),
            st.sampled_from([TEXT, TEXT[:100], b"", b"a", b"\x00" * 5000]),
        ),
        max_size=12,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=5),
    server_reset=st.booleans(),
    client_reset=st.booleans(),
    bits=st.sampled_from([9, 10, 12, 15]),
    level=st.sampled_from([1, 6, 9]),
)
def test_round_trip_fragmented(messages, cuts, server_reset, client_reset, bits, level):
    params = DeflateParams(server_reset, client_reset, bits, bits)
    server, client = pair(params, DeflateConfig(level=level))
    for message in messages:
        assert send(server, client, message, cuts) == message
        assert send(client, server, message, cuts) == message


# --- limits: deflate bombs ----------------------------------------------------


def zeros_bomb(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    out = [compressor.compress(chunk) for _ in range(size >> 20)]
    out.append(compressor.flush(zlib.Z_SYNC_FLUSH))
    return b"".join(out)[:-4]


@pytest.fixture(scope="module")
def bomb() -> bytes:
    payload = zeros_bomb(100 << 20)  # 100 MiB of zeros
    assert len(payload) < 200_000
    return payload


@pytest.mark.parametrize("fragment", [None, 1000])
def test_deflate_bomb_raises_1009_with_bounded_memory(bomb, fragment):
    limit = 1 << 20
    _, client = pair(DeflateParams())
    pieces = (
        [bomb]
        if fragment is None
        else [bomb[i : i + fragment] for i in range(0, len(bomb), fragment)]
    )
    tracemalloc.start()
    try:
        with pytest.raises(ProtocolError) as info:
            for i, piece in enumerate(pieces):
                client.decompress(piece, i == len(pieces) - 1, limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value == ProtocolError(
        1009, f"decompressed message exceeds the limit of {limit} bytes"
    )
    assert peak < 4 * limit, f"inflating peaked at {peak} bytes of Python memory"
    # the connection is to be failed, but the object is left consistent
    assert client.decompress(zlib_payload(b"x"), True, limit) == b"x"


def test_limit_is_exact():
    data = bytes(range(256)) * 40
    for limit, ok in [(len(data), True), (len(data) - 1, False)]:
        server, client = pair(DeflateParams())
        payload = server.compress(data)
        if ok:
            assert client.decompress(payload, True, limit) == data
        else:
            with pytest.raises(ProtocolError) as info:
                client.decompress(payload, True, limit)
            assert info.value.code == 1009


def test_limit_counts_the_whole_message_across_fragments():
    data = random.Random(3).randbytes(10_000)  # incompressible: each half inflates to ~5000
    server, client = pair(DeflateParams())
    payload = server.compress(data)
    half = len(payload) // 2
    first = client.decompress(payload[:half], False, 9_999)
    assert 0 < len(first) < 9_999
    with pytest.raises(ProtocolError) as info:
        client.decompress(payload[half:], True, 9_999)
    assert info.value.code == 1009


def test_limit_is_per_message():
    server, client = pair(DeflateParams())
    for _ in range(5):
        assert client.decompress(server.compress(b"y" * 5000), True, 5000) == b"y" * 5000


def test_reset_message_abandons_the_message():
    server, client = pair(DeflateParams(server_no_context_takeover=True))
    payload = server.compress(TEXT)
    client.decompress(payload[:10], False, None)
    client.reset_message()
    assert client.decompress(server.compress(TEXT), True, None) == TEXT
