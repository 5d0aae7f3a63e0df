"""The opening handshake: request/response reading, server checks, client checks."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto import events as wsevents
from wsproto.extensions import PerMessageDeflate as WsprotoDeflate

from fastws.deflate import DeflateConfig, DeflateParams, client_offer
from fastws.errors import HandshakeError
from fastws.handshake import (
    Accepted,
    Headers,
    RequestReader,
    Response,
    ResponseReader,
    accept_key,
    client_check,
    client_request,
    error_response,
    header_tokens,
    http_response,
    make_key,
    response_101,
    server_handshake,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

BASE_HEADERS = [
    ("Host", "example.com"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", KEY),
    ("Sec-WebSocket-Version", "13"),
]


def head(
    headers: list[tuple[str, str]] | None = None,
    *,
    method: str = "GET",
    target: str = "/chat",
    version: str = "HTTP/1.1",
    drop: tuple[str, ...] = (),
    extra: list[tuple[str, str]] = (),  # type: ignore[assignment]
) -> bytes:
    fields = [(n, v) for n, v in (headers or BASE_HEADERS) if n not in drop] + list(extra)
    lines = [f"{method} {target} {version}"] + [f"{n}: {v}" for n, v in fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read(data: bytes):
    reader = RequestReader()
    request = reader.feed(data)
    assert request is not None
    return request


def handshake_status(data: bytes, **kwargs) -> int:
    with pytest.raises(HandshakeError) as info:
        server_handshake(read(data), **kwargs)
    return info.value.status


# --- Headers ------------------------------------------------------------------


def test_headers_are_case_insensitive_and_keep_order():
    headers = Headers([("A", "1"), ("b", "2")])
    headers.add("a", "3")
    assert headers.get("a") == "1"
    assert headers.get("B") == "2"
    assert headers.get("missing") is None
    assert headers.get("missing", "x") == "x"
    assert headers.get_all("A") == ["1", "3"]
    assert headers.get_all("nope") == []
    assert "a" in headers and "B" in headers and "c" not in headers
    assert headers.items() == [("A", "1"), ("b", "2"), ("a", "3")]
    assert len(headers) == 3
    assert list(headers) == ["A", "b", "a"]


def test_header_tokens_splits_comma_lists_over_repeated_headers():
    headers = Headers([("Connection", "keep-alive, Upgrade"), ("connection", " , close ,")])
    assert header_tokens(headers, "CONNECTION") == ["keep-alive", "upgrade", "close"]


# --- accept key ---------------------------------------------------------------


def test_accept_key_rfc6455_example():
    assert accept_key(KEY) == ACCEPT


def test_make_key_is_random_16_bytes():
    keys = {make_key() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(base64.b64decode(k, validate=True)) == 16 for k in keys)


# --- RequestReader ------------------------------------------------------------


def test_reader_parses_request():
    request = read(head(target="/chat%20room/%C3%A9?a=1&a=2&b=&c=%2F"))
    assert request.method == "GET"
    assert request.target == "/chat%20room/%C3%A9?a=1&a=2&b=&c=%2F"
    assert request.path == "/chat room/é"
    assert request.query == {"a": ["1", "2"], "b": [""], "c": ["/"]}
    assert request.headers.get("sec-websocket-key") == KEY


def test_reader_strips_whitespace_around_values():
    request = read(
        head(BASE_HEADERS[:3] + [("Sec-WebSocket-Key", f" \t{KEY} \t")] + BASE_HEADERS[4:])
    )
    assert request.headers.get("Sec-WebSocket-Key") == KEY
    server_handshake(request)


def test_reader_absolute_form_target():
    request = read(head(target="http://example.com/p?q=1"))
    assert request.path == "/p"
    assert request.query == {"q": ["1"]}


def test_reader_rejects_path_that_is_not_utf8():
    with pytest.raises(HandshakeError) as info:
        RequestReader().feed(head(target="/%ff"))
    assert info.value.status == 400


def test_reader_rejects_asterisk_target():
    with pytest.raises(HandshakeError) as info:
        RequestReader().feed(head(target="*"))
    assert info.value.status == 400


@pytest.mark.parametrize("step", [1, 2, 7, 100])
def test_reader_incremental(step):
    data = head() + b"\x81\x85frame"
    reader = RequestReader()
    results = [reader.feed(data[i : i + step]) for i in range(0, len(data), step)]
    done = [i for i, r in enumerate(results) if r is not None]
    assert done, "the request never completed"
    assert all(r is None for r in results[: done[0]])
    assert results[done[0]].path == "/chat"
    assert reader.leftover == b"\x81\x85frame"


def test_reader_leftover_pipelined_frames():
    frames = bytes([0x81, 0x82, 1, 2, 3, 4, 5, 6]) * 3
    reader = RequestReader()
    assert reader.feed(head() + frames) is not None
    assert reader.leftover == frames


def test_reader_feed_after_completion_goes_to_leftover():
    reader = RequestReader()
    first = reader.feed(head() + b"ab")
    assert reader.feed(b"cd") is first
    assert reader.leftover == b"abcd"


def test_reader_leftover_of_request_that_is_no_upgrade():
    data = head(drop=("Upgrade", "Connection")) + b"GARBAGE"
    reader = RequestReader()
    request = reader.feed(data)
    assert request is not None
    assert reader.leftover == b"GARBAGE"


def test_reader_empty_leftover():
    reader = RequestReader()
    reader.feed(head())
    assert reader.leftover == b""


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\nHost: a\n\n",  # bare LF
        b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n",
        b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
    ],
)
def test_reader_malformed_is_400(data):
    with pytest.raises(HandshakeError) as info:
        RequestReader().feed(data)
    assert info.value.status == 400


def test_reader_malformed_detected_before_head_ends():
    with pytest.raises(HandshakeError) as info:
        RequestReader().feed(b"\x16\x03\x01\x02\x00")  # a TLS ClientHello on a plain port
    assert info.value.status == 400


@pytest.mark.parametrize("version", ["HTTP/1.0", "HTTP/2.0", "HTTP/0.9"])
def test_reader_http_version_is_505(version):
    with pytest.raises(HandshakeError) as info:
        RequestReader().feed(head(version=version))
    assert info.value.status == 505


def test_reader_head_too_large_is_431():
    big = head(extra=[("X-Filler", "a" * 20000)])
    with pytest.raises(HandshakeError) as info:
        RequestReader().feed(big)
    assert info.value.status == 431
    assert "too large" in info.value.reason


def test_reader_head_too_large_incremental_never_buffers_past_limit():
    reader = RequestReader(max_size=1000)
    reader.feed(b"GET / HTTP/1.1\r\nX-Filler: ")
    with pytest.raises(HandshakeError) as info:
        for _ in range(100):
            reader.feed(b"a" * 100)
    assert info.value.status == 431
    assert len(reader._fed) <= 1000


def test_reader_head_exactly_max_size_passes():
    data = head()
    reader = RequestReader(max_size=len(data))
    assert reader.feed(data + b"frames") is not None
    assert reader.leftover == b"frames"
    with pytest.raises(HandshakeError) as info:
        RequestReader(max_size=len(data) - 1).feed(data)
    assert info.value.status == 431


# --- server_handshake ---------------------------------------------------------


def test_server_handshake_accepts_minimal_request():
    accepted = server_handshake(read(head()))
    assert accepted == Accepted(subprotocol=None, extensions=None, deflate=None)


@pytest.mark.parametrize("method", ["POST", "PUT", "HEAD", "OPTIONS"])
def test_method_not_get_is_405(method):
    assert handshake_status(head(method=method)) == 405


def test_missing_host_is_400():
    assert handshake_status(head(drop=("Host",))) == 400


def test_repeated_host_is_400():
    assert handshake_status(head(extra=[("Host", "other")])) == 400


@pytest.mark.parametrize("upgrade", [None, "h2c", "websocketx", "web socket"])
def test_upgrade_without_websocket_is_426(upgrade):
    headers = [(n, v) for n, v in BASE_HEADERS if n != "Upgrade"]
    if upgrade is not None:
        headers.append(("Upgrade", upgrade))
    assert handshake_status(head(headers)) == 426


@pytest.mark.parametrize("upgrade", ["websocket", "WebSocket", "WEBSOCKET", "h2c, websocket"])
def test_upgrade_token_any_case_and_list(upgrade):
    headers = [(n, v) for n, v in BASE_HEADERS if n != "Upgrade"] + [("Upgrade", upgrade)]
    assert server_handshake(read(head(headers))) == Accepted()


@pytest.mark.parametrize("connection", [None, "keep-alive", "upgraded", "close"])
def test_connection_without_upgrade_is_400(connection):
    headers = [(n, v) for n, v in BASE_HEADERS if n != "Connection"]
    if connection is not None:
        headers.append(("Connection", connection))
    assert handshake_status(head(headers)) == 400


@pytest.mark.parametrize(
    "connection",
    [["upgrade"], ["UPGRADE"], ["keep-alive, Upgrade"], ["keep-alive", "Upgrade"], ["a,upgrade,b"]],
)
def test_connection_token_any_case_and_list(connection):
    headers = [(n, v) for n, v in BASE_HEADERS if n != "Connection"]
    headers += [("Connection", c) for c in connection]
    assert server_handshake(read(head(headers))) == Accepted()


@pytest.mark.parametrize("version", [None, "8", "12", "14", "13, 8", "013"])
def test_wrong_version_is_426(version):
    headers = [(n, v) for n, v in BASE_HEADERS if n != "Sec-WebSocket-Version"]
    if version is not None:
        headers.append(("Sec-WebSocket-Version", version))
    assert handshake_status(head(headers)) == 426


def test_repeated_version_is_426():
    assert handshake_status(head(extra=[("Sec-WebSocket-Version", "13")])) == 426


@pytest.mark.parametrize(
    "key",
    [
        None,
        "",
        "not base64!",
        base64.b64encode(b"x" * 15).decode(),
        base64.b64encode(b"x" * 17).decode(),
        "dGhlIHNhbXBsZSBub25jZQ",  # padding missing
        "dGhlIHNhbXBsZSBub25jZR==",  # non-canonical: stray low bits
    ],
)
def test_bad_key_is_400(key):
    headers = [(n, v) for n, v in BASE_HEADERS if n != "Sec-WebSocket-Key"]
    if key is not None:
        headers.append(("Sec-WebSocket-Key", key))
    assert handshake_status(head(headers)) == 400


def test_repeated_key_is_400():
    assert handshake_status(head(extra=[("Sec-WebSocket-Key", make_key())])) == 400


def test_origin_checks():
    allowed = {"https://good.example"}
    request = read(head(extra=[("Origin", "https://good.example")]))
    server_handshake(request, origins=allowed)
    assert (
        handshake_status(head(extra=[("Origin", "https://evil.example")]), origins=allowed) == 403
    )
    assert handshake_status(head(), origins=allowed) == 403  # no Origin at all
    server_handshake(read(head()), origins={None, "https://good.example"})
    server_handshake(read(head(extra=[("Origin", "https://evil.example")])))  # origins=None


def test_status_order_method_first():
    data = head(method="POST", drop=("Host", "Upgrade", "Sec-WebSocket-Key"))
    assert handshake_status(data) == 405


# --- subprotocols -------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "server", "chosen"),
    [
        (["chat, superchat"], ["superchat", "chat"], "superchat"),
        (["chat", "superchat"], ["superchat", "chat"], "superchat"),
        (["chat,superchat"], ["chat", "superchat"], "chat"),
        (["a, b"], ["c"], None),
        ([], ["chat"], None),
        (["chat"], [], None),
        (["Chat"], ["chat"], None),  # subprotocol names are case-sensitive
    ],
)
def test_subprotocol_server_preference(offered, server, chosen):
    request = read(head(extra=[("Sec-WebSocket-Protocol", v) for v in offered]))
    accepted = server_handshake(request, subprotocols=server)
    assert accepted.subprotocol == chosen
    response = response_101(request, accepted)
    assert (b"Sec-WebSocket-Protocol" in response) == (chosen is not None)


# --- extensions on the server -------------------------------------------------


def test_deflate_offer_ignored_without_config():
    request = read(head(extra=[("Sec-WebSocket-Extensions", "permessage-deflate")]))
    assert server_handshake(request).extensions is None


def test_deflate_negotiated_with_config():
    offer = "x-unknown, permessage-deflate; client_max_window_bits"
    request = read(head(extra=[("Sec-WebSocket-Extensions", offer)]))
    accepted = server_handshake(request, deflate=DeflateConfig())
    assert accepted.extensions == "permessage-deflate"
    assert accepted.deflate == DeflateParams()
    assert b"\r\nSec-WebSocket-Extensions: permessage-deflate\r\n" in response_101(
        request, accepted
    )


def test_malformed_extensions_is_400():
    data = head(extra=[("Sec-WebSocket-Extensions", "permessage-deflate; =")])
    assert handshake_status(data, deflate=DeflateConfig()) == 400


# --- responses ----------------------------------------------------------------


def test_response_101_layout():
    request = read(head())
    out = response_101(request, Accepted("chat", None, None), extra_headers=[("X-A", "1")])
    assert out == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + ACCEPT.encode() + b"\r\n"
        b"Sec-WebSocket-Protocol: chat\r\n"
        b"X-A: 1\r\n"
        b"\r\n"
    )


@pytest.mark.parametrize(
    "header", [("X-A", "1\r\nInjected: yes"), ("Bad Name", "1"), ("X-A", "nul\x00")]
)
def test_response_101_refuses_header_injection(header):
    with pytest.raises(ValueError):
        response_101(read(head()), Accepted(), extra_headers=[header])


def parse_response(data: bytes) -> tuple[Response, bytes]:
    reader = ResponseReader()
    response = reader.feed(data)
    assert response is not None
    return response, reader.leftover


def test_http_response():
    out = http_response(404, "not here", headers=[("X-A", "b")])
    response, body = parse_response(out)
    assert response.status == 404
    assert response.reason == "Not Found"
    assert response.headers.get("Content-Length") == str(len(b"not here"))
    assert response.headers.get("Connection") == "close"
    assert response.headers.get("Content-Type") == "text/plain; charset=utf-8"
    assert response.headers.get("X-A") == "b"
    assert body == b"not here"


def test_http_response_keep_alive_and_bytes_body():
    out = http_response(200, b"\x00\x01", content_type="application/octet-stream", close=False)
    response, body = parse_response(out)
    assert "Connection" not in response.headers
    assert response.headers.get("Content-Type") == "application/octet-stream"
    assert body == b"\x00\x01"


@pytest.mark.parametrize("status", [400, 403, 405, 426, 431, 505])
def test_error_response_for_every_status(status):
    out = error_response(HandshakeError(status, "what\r\nwent wrong"))
    response, body = parse_response(out)
    assert response.status == status
    assert body == b"what went wrong\n"
    assert response.headers.get("Content-Length") == str(len(body))
    assert "close" in header_tokens(response.headers, "Connection")
    assert (response.headers.get("Allow") == "GET") == (status == 405)
    assert (response.headers.get("Sec-WebSocket-Version") == "13") == (status == 426)
    if status == 426:
        assert response.headers.get("Upgrade") == "websocket"
        assert "upgrade" in header_tokens(response.headers, "Connection")


def test_error_response_of_a_failed_handshake():
    with pytest.raises(HandshakeError) as info:
        server_handshake(read(head(extra=[("Sec-WebSocket-Version", "8")])))
    response, _ = parse_response(error_response(info.value))
    assert response.status == 426
    assert response.headers.get("Sec-WebSocket-Version") == "13"


# --- client side --------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "secure", "expected"),
    [
        ("example.com", 80, False, "example.com"),
        ("example.com", 443, True, "example.com"),
        ("example.com", 443, False, "example.com:443"),
        ("example.com", 80, True, "example.com:80"),
        ("127.0.0.1", 8765, False, "127.0.0.1:8765"),
        ("::1", 8765, False, "[::1]:8765"),
        ("[::1]", 80, False, "[::1]"),
        ("bücher.example", 80, False, "xn--bcher-kva.example"),
    ],
)
def test_client_request_host(host, port, secure, expected):
    data = client_request(host, port, "/", KEY, secure=secure)
    request = read(data)
    assert request.headers.get_all("Host") == [expected]


def test_client_request_is_accepted_by_our_server():
    data = client_request(
        "127.0.0.1",
        9001,
        "/path?x=1",
        KEY,
        secure=False,
        subprotocols=["a", "b"],
        extensions="permessage-deflate; client_max_window_bits",
        headers=[("Authorization", "Bearer t")],
        origin="http://127.0.0.1",
    )
    request = read(data)
    assert request.path == "/path" and request.query == {"x": ["1"]}
    assert request.headers.get("Authorization") == "Bearer t"
    assert request.headers.get("Origin") == "http://127.0.0.1"
    accepted = server_handshake(
        request, subprotocols=["b"], deflate=DeflateConfig(), origins={"http://127.0.0.1"}
    )
    assert accepted.subprotocol == "b"
    response, leftover = parse_response(response_101(request, accepted) + b"\x81\x00")
    assert leftover == b"\x81\x00"
    checked = client_check(response, KEY, subprotocols=["a", "b"], deflate=DeflateConfig())
    assert checked == accepted


@pytest.mark.parametrize("resource", ["", "path", "/a b", "/\r\nX: y", "/é"])
def test_client_request_refuses_bad_resource(resource):
    with pytest.raises(ValueError):
        client_request("h", 80, resource, KEY, secure=False)


def response_head(*fields: tuple[str, str], status: str = "101 Switching Protocols") -> bytes:
    lines = [f"HTTP/1.1 {status}"] + [f"{n}: {v}" for n, v in fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


GOOD_101 = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", ACCEPT)]


def check(*fields: tuple[str, str], **kwargs) -> Accepted:
    response, _ = parse_response(response_head(*fields))
    return client_check(response, KEY, **kwargs)


def check_status(*fields: tuple[str, str], **kwargs) -> int:
    with pytest.raises(HandshakeError) as info:
        check(*fields, **kwargs)
    return info.value.status


def test_client_check_accepts_good_101():
    assert check(*GOOD_101) == Accepted()


def test_client_check_status_not_101_keeps_the_servers_status():
    response, leftover = parse_response(
        response_head(("Content-Length", "9"), status="403 Forbidden") + b"forbidden"
    )
    assert leftover == b"forbidden"
    with pytest.raises(HandshakeError) as info:
        client_check(response, KEY)
    assert info.value.status == 403
    assert "403 Forbidden" in info.value.reason


@pytest.mark.parametrize(
    "fields",
    [
        [("Connection", "Upgrade"), ("Sec-WebSocket-Accept", ACCEPT)],
        [("Upgrade", "h2c"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", ACCEPT)],
        [("Upgrade", "websocket"), ("Sec-WebSocket-Accept", ACCEPT)],
        [("Upgrade", "websocket"), ("Connection", "keep-alive")],
        [("Upgrade", "websocket"), ("Connection", "Upgrade")],
        [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", "x")],
        GOOD_101 + [("Sec-WebSocket-Accept", ACCEPT)],
    ],
)
def test_client_check_bad_upgrade_connection_accept(fields):
    assert check_status(*fields) == 502


def test_client_check_case_and_lists():
    assert check(
        ("upgrade", "WebSocket"),
        ("connection", "keep-alive, UPGRADE"),
        ("sec-websocket-accept", ACCEPT),
    ) == Accepted()


def test_client_check_subprotocols():
    assert (
        check(*GOOD_101, ("Sec-WebSocket-Protocol", "b"), subprotocols=["a", "b"]).subprotocol
        == "b"
    )
    assert check_status(*GOOD_101, ("Sec-WebSocket-Protocol", "c"), subprotocols=["a"]) == 502
    assert check_status(*GOOD_101, ("Sec-WebSocket-Protocol", "a")) == 502  # none offered
    assert (
        check_status(*GOOD_101, ("Sec-WebSocket-Protocol", "a, b"), subprotocols=["a", "b"]) == 502
    )
    repeated = [("Sec-WebSocket-Protocol", "a"), ("Sec-WebSocket-Protocol", "a")]
    assert check_status(*GOOD_101, *repeated, subprotocols=["a"]) == 502


def test_client_check_extensions():
    ext = ("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=10")
    accepted = check(*GOOD_101, ext, deflate=DeflateConfig())
    assert accepted.deflate == DeflateParams(server_max_window_bits=10)
    assert accepted.extensions == "permessage-deflate; server_max_window_bits=10"
    assert check_status(*GOOD_101, ext) == 502  # not offered
    bad = ("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=16")
    assert check_status(*GOOD_101, bad, deflate=DeflateConfig()) == 502
    other = ("Sec-WebSocket-Extensions", "x-webkit-deflate-frame")
    assert check_status(*GOOD_101, other, deflate=DeflateConfig()) == 502
    assert check(*GOOD_101, deflate=DeflateConfig()).deflate is None  # declined: fine


def test_response_reader_leftover_and_increments():
    data = response_head(*GOOD_101) + b"\x81\x02hi"
    reader = ResponseReader()
    results = [reader.feed(data[i : i + 3]) for i in range(0, len(data), 3)]
    assert results[-1] is not None and results[-1].status == 101
    assert reader.leftover == b"\x81\x02hi"


def test_response_reader_101_without_upgrade_still_reads():
    reader = ResponseReader()
    response = reader.feed(response_head() + b"rest")
    assert response is not None and response.status == 101
    assert reader.leftover == b"rest"
    with pytest.raises(HandshakeError):
        client_check(response, KEY)


def test_response_reader_errors_are_502():
    with pytest.raises(HandshakeError) as info:
        ResponseReader().feed(b"NOT HTTP\r\n\r\n")
    assert info.value.status == 502
    with pytest.raises(HandshakeError) as info:
        ResponseReader(max_size=100).feed(response_head(("X", "y" * 200)))
    assert info.value.status == 502


# --- interoperability with an independent implementation ----------------------


def test_wsproto_client_against_our_server():
    client = WSConnection(ConnectionType.CLIENT)
    data = client.send(
        wsevents.Request(
            host="localhost",
            target="/ws?a=b",
            subprotocols=["x", "y"],
            extensions=[WsprotoDeflate()],
        )
    )
    request = read(data)
    accepted = server_handshake(request, subprotocols=["y"], deflate=DeflateConfig())
    assert accepted.deflate is not None
    client.receive_data(response_101(request, accepted))
    event = next(client.events())
    assert isinstance(event, wsevents.AcceptConnection)
    assert event.subprotocol == "y"
    assert [e.name for e in event.extensions] == ["permessage-deflate"]


def test_our_client_against_wsproto_server():
    server = WSConnection(ConnectionType.SERVER)
    key = make_key()
    config = DeflateConfig()
    server.receive_data(
        client_request(
            "localhost",
            80,
            "/",
            key,
            secure=False,
            subprotocols=["p"],
            extensions=client_offer(config),
        )
    )
    event = next(server.events())
    assert isinstance(event, wsevents.Request)
    reply = server.send(wsevents.AcceptConnection(subprotocol="p", extensions=[WsprotoDeflate()]))
    response, _ = parse_response(reply)
    accepted = client_check(response, key, subprotocols=["p"], deflate=config)
    assert accepted.subprotocol == "p"
    assert accepted.deflate is not None


# --- properties ---------------------------------------------------------------


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=50))
def test_reader_never_crashes_on_junk(junk, step):
    reader = RequestReader(max_size=256)
    try:
        for i in range(0, len(junk), step):
            reader.feed(junk[i : i + step])
    except HandshakeError as exc:
        assert exc.status in (400, 431, 505)


@given(st.binary(max_size=200), st.lists(st.integers(min_value=0, max_value=400), max_size=4))
def test_reader_leftover_is_exactly_what_follows_the_head(tail, cuts):
    data = head() + tail
    bounds = sorted({0, len(data), *(min(c, len(data)) for c in cuts)})
    reader = RequestReader()
    request = None
    for start, end in zip(bounds, bounds[1:], strict=False):
        request = reader.feed(data[start:end]) or request
    assert request is not None
    assert reader.leftover == tail
