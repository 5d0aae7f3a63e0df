"""permessage-deflate (RFC 7692): extension negotiation and per-message compression.

Sans-I/O: the handshake code calls the negotiation functions, the connection
calls ``PerMessageDeflate`` for each data message whose RSV1 bit is set (or
that it chooses to compress).

Memory per connection is zlib's, allocated in C where tracemalloc cannot see
it. ``bench/deflate_memory.py`` measures it as RSS growth over 1000 objects,
once the buffers are filled by traffic (zlib 1.2.13; docs/deflate.md has the
full table):

    window bits, memLevel    compressor   decompressor
    15, 8 (the defaults)     227 KiB      40 KiB
    15, 1                    135 KiB      40 KiB
    12, 8                    115 KiB      12 KiB
    12, 4                     30 KiB      12 KiB
    9, 1                       9 KiB       8 KiB

zlib documents deflate as ``(1 << (windowBits + 2)) + (1 << (memLevel + 9))``
bytes plus a few KiB of state, and inflate as ``1 << windowBits`` plus ~7 KiB.
Only touched pages count, so a compressor that has seen one small message
holds about half of that. A server with many mostly idle connections saves
most with ``server_no_context_takeover`` (its compressor then exists only while
a message is compressed) or with a smaller ``server_max_window_bits`` and
``mem_level``, at some cost in ratio.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from fastws.closecodes import INVALID_DATA, MESSAGE_TOO_BIG
from fastws.errors import HandshakeError, ProtocolError

EXTENSION_NAME = "permessage-deflate"
SYNC_TAIL = b"\x00\x00\xff\xff"  # what a Z_SYNC_FLUSH ends with; stripped on the wire (7.2.1)
EMPTY_MESSAGE = b"\x00"  # an empty stored block without its tail: a valid empty message (7.2.3.6)
BAD_RESPONSE = 502  # status of a HandshakeError about the server's answer (client side)

_WINDOW_BITS = {str(bits): bits for bits in range(8, 16)}  # "8".."15", no leading zeros


@dataclass(frozen=True)
class DeflateConfig:
    """What this side asks for (client) or agrees to (server).

    ``*_no_context_takeover``: the named side resets its LZ77 window after every
    message, so its compressor holds no memory between messages but compresses
    similar messages worse. ``*_max_window_bits`` (8..15): the named side's
    LZ77 window is at most ``2**bits`` bytes; smaller saves memory, costs ratio.
    A server configured with ``client_max_window_bits < 15`` declines offers
    that do not let it limit the client's window.

    ``level`` (0..9) trades CPU for size: 1 is the fastest with the largest
    output, 9 the slowest and smallest, 6 zlib's usual balance. ``mem_level``
    (1..9) sizes zlib's hash tables: lower saves memory (see the module
    docstring) and costs speed and ratio. Messages shorter than ``threshold``
    bytes are sent uncompressed: RSV1 is per message and tiny payloads do not
    shrink.
    """

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    client_max_window_bits: int = 15
    level: int = 6
    mem_level: int = 8
    threshold: int = 64

    def __post_init__(self) -> None:
        for name in ("server_max_window_bits", "client_max_window_bits"):
            bits = getattr(self, name)
            if not 8 <= bits <= 15:
                raise ValueError(f"{name} must be between 8 and 15, not {bits}")
        if not 0 <= self.level <= 9:
            raise ValueError(f"level must be between 0 and 9, not {self.level}")
        if not 1 <= self.mem_level <= 9:
            raise ValueError(f"mem_level must be between 1 and 9, not {self.mem_level}")
        if self.threshold < 0:
            raise ValueError(f"threshold must not be negative, not {self.threshold}")


def deflate_config(compression: object) -> DeflateConfig | None:
    """The ``compression`` option of serve/connect: True, False/None, or a DeflateConfig."""
    if compression is True:
        return DeflateConfig()
    if not compression:
        return None
    if isinstance(compression, DeflateConfig):
        return compression
    raise TypeError("compression must be True, False, None or a DeflateConfig")


@dataclass(frozen=True)
class DeflateParams:
    """The parameters in force on one connection once both sides agreed."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    client_max_window_bits: int = 15


# --- Sec-WebSocket-Extensions grammar (RFC 6455 section 9.1) -----------------

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_QUOTED = re.compile(r'"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\t\x20-\x7e\x80-\xff])*)"')
_OWS = re.compile(r"[ \t]*")
_ESCAPE = re.compile(r"\\(.)")

Extension = tuple[str, list[tuple[str, str | None]]]


def parse_extensions(values: list[str]) -> list[Extension]:
    """Parse ``Sec-WebSocket-Extensions`` header values into ``(name, params)``.

    Each value is a comma list of ``name; param; param=value`` where a value is
    a token or a quoted-string (whose unescaped text must itself be a token).
    Empty list elements are skipped as HTTP list rules ask. Names keep their
    case. Anything else raises ``HandshakeError(400)``.
    """
    extensions: list[Extension] = []
    for value in values:
        _parse_extension_list(value, extensions)
    return extensions


def _parse_extension_list(text: str, out: list[Extension]) -> None:
    pos = 0
    end = len(text)

    def fail(what: str) -> HandshakeError:
        return HandshakeError(
            400, f"malformed Sec-WebSocket-Extensions {text!r}: {what} at position {pos}"
        )

    def token() -> str:
        nonlocal pos
        match = _TOKEN.match(text, pos)
        if match is None:
            raise fail("expected a token")
        pos = match.end()
        return match.group()

    def skip_ows() -> None:
        nonlocal pos
        pos = _OWS.match(text, pos).end()  # type: ignore[union-attr]  # always matches

    while True:
        skip_ows()
        if pos == end:
            return
        if text[pos] == ",":  # an empty list element
            pos += 1
            continue
        name = token()
        params: list[tuple[str, str | None]] = []
        skip_ows()
        while pos < end and text[pos] == ";":
            pos += 1
            skip_ows()
            param = token()
            skip_ows()
            value: str | None = None
            if pos < end and text[pos] == "=":
                pos += 1
                skip_ows()
                if pos < end and text[pos] == '"':
                    match = _QUOTED.match(text, pos)
                    if match is None:
                        raise fail("unterminated or invalid quoted-string")
                    value = _ESCAPE.sub(r"\1", match.group(1))
                    if _TOKEN.fullmatch(value) is None:
                        raise fail("quoted value is not a token")
                    pos = match.end()
                else:
                    value = token()
                skip_ows()
            params.append((param, value))
        out.append((name, params))
        if pos == end:
            return
        if text[pos] != ",":
            raise fail("expected ',' or ';'")
        pos += 1


# --- negotiation (RFC 7692 sections 5 and 7.1) -------------------------------


def _read_params(params: list[tuple[str, str | None]]) -> dict[str, str | None] | None:
    """Params by lowercase name; None when one repeats (7.1: such an offer is declined)."""
    seen: dict[str, str | None] = {}
    for name, value in params:
        key = name.lower()
        if key in seen:
            return None
        seen[key] = value
    return seen


def server_negotiate(values: list[str], config: DeflateConfig) -> tuple[str, DeflateParams] | None:
    """Accept the first acceptable permessage-deflate offer of the client's headers.

    Returns the ``Sec-WebSocket-Extensions`` response value and the parameters
    in force, or None when no offer is acceptable (then the connection runs
    without compression; declining is not an error). An offer is declined when
    it has an unknown or repeated parameter or an invalid value (7.1), or when
    ``config.client_max_window_bits < 15`` and the offer does not carry
    ``client_max_window_bits`` (7.1.2.2 forbids answering with it then).
    """
    for name, params in parse_extensions(values):
        if name.lower() == EXTENSION_NAME:
            agreed = _accept_offer(params, config)
            if agreed is not None:
                return agreed
    return None


def _accept_offer(
    params: list[tuple[str, str | None]], config: DeflateConfig
) -> tuple[str, DeflateParams] | None:
    offered = _read_params(params)
    if offered is None:
        return None
    server_bits: int | None = None
    client_bits: int | None = None
    for key, value in offered.items():
        if key in ("server_no_context_takeover", "client_no_context_takeover"):
            if value is not None:
                return None
        elif key == "server_max_window_bits":
            server_bits = _WINDOW_BITS.get(value) if value is not None else None
            if server_bits is None:
                return None
        elif key == "client_max_window_bits":
            if value is not None:  # without a value it only says "you may limit me"
                client_bits = _WINDOW_BITS.get(value)
                if client_bits is None:
                    return None
        else:
            return None
    client_may_be_limited = "client_max_window_bits" in offered
    if config.client_max_window_bits < 15 and not client_may_be_limited:
        return None
    agreed = DeflateParams(
        # 7.1.1.1 / 7.1.1.2: a server may add either no_context_takeover on its own.
        server_no_context_takeover=(
            "server_no_context_takeover" in offered or config.server_no_context_takeover
        ),
        client_no_context_takeover=(
            "client_no_context_takeover" in offered or config.client_no_context_takeover
        ),
        # 7.1.2.1: same or smaller than offered; may be sent even when not offered.
        server_max_window_bits=min(server_bits or 15, config.server_max_window_bits),
        # 7.1.2.2: a value in the offer is the client's own promise.
        client_max_window_bits=min(client_bits or 15, config.client_max_window_bits),
    )
    response = [EXTENSION_NAME]
    if agreed.server_no_context_takeover:
        response.append("server_no_context_takeover")
    if agreed.client_no_context_takeover:
        response.append("client_no_context_takeover")
    if server_bits is not None or agreed.server_max_window_bits < 15:
        response.append(f"server_max_window_bits={agreed.server_max_window_bits}")
    if client_may_be_limited and agreed.client_max_window_bits < 15:
        response.append(f"client_max_window_bits={agreed.client_max_window_bits}")
    return "; ".join(response), agreed


def client_offer(config: DeflateConfig) -> str:
    """The ``Sec-WebSocket-Extensions`` value a client sends for ``config``.

    ``client_max_window_bits`` is always present (bare when 15) so that the
    server may limit our window if it wants to.
    """
    offer = [EXTENSION_NAME]
    if config.server_no_context_takeover:
        offer.append("server_no_context_takeover")
    if config.client_no_context_takeover:
        offer.append("client_no_context_takeover")
    if config.server_max_window_bits < 15:
        offer.append(f"server_max_window_bits={config.server_max_window_bits}")
    if config.client_max_window_bits < 15:
        offer.append(f"client_max_window_bits={config.client_max_window_bits}")
    else:
        offer.append("client_max_window_bits")
    return "; ".join(offer)


def client_accept(value: str, config: DeflateConfig) -> DeflateParams:
    """Check the server's answer to ``client_offer(config)``; the params in force.

    Raises ``HandshakeError(502)`` (an invalid response) when the answer is not
    exactly one permessage-deflate, has an unknown, repeated or invalid
    parameter, a window larger than we asked for, a ``client_max_window_bits``
    without a value, or leaves out a ``server_no_context_takeover`` or
    ``server_max_window_bits`` we asked for (leaving it out is not accepting).
    """

    def fail(why: str) -> HandshakeError:
        return HandshakeError(BAD_RESPONSE, f"invalid permessage-deflate response {value!r}: {why}")

    try:
        extensions = parse_extensions([value])
    except HandshakeError as exc:
        raise HandshakeError(BAD_RESPONSE, exc.reason) from None
    if len(extensions) != 1 or extensions[0][0].lower() != EXTENSION_NAME:
        raise fail("we offered only one permessage-deflate")
    answered = _read_params(extensions[0][1])
    if answered is None:
        raise fail("a parameter is repeated")
    server_bits: int | None = None
    client_bits: int | None = None
    for key, param_value in answered.items():
        if key in ("server_no_context_takeover", "client_no_context_takeover"):
            if param_value is not None:
                raise fail(f"{key} takes no value")
        elif key in ("server_max_window_bits", "client_max_window_bits"):
            bits = _WINDOW_BITS.get(param_value) if param_value is not None else None
            if bits is None:
                raise fail(f"{key} needs a value from 8 to 15")
            limit = getattr(config, key)
            if bits > limit:
                raise fail(f"{key}={bits} is larger than the {limit} we offered")
            if key == "server_max_window_bits":
                server_bits = bits
            else:
                client_bits = bits
        else:
            raise fail(f"unknown parameter {key}")
    server_no_context_takeover = "server_no_context_takeover" in answered
    if config.server_no_context_takeover and not server_no_context_takeover:
        raise fail("server_no_context_takeover was asked for and not accepted")
    if config.server_max_window_bits < 15 and server_bits is None:
        raise fail("server_max_window_bits was asked for and not accepted")
    return DeflateParams(
        server_no_context_takeover=server_no_context_takeover,
        client_no_context_takeover=(
            "client_no_context_takeover" in answered or config.client_no_context_takeover
        ),
        server_max_window_bits=server_bits or 15,
        client_max_window_bits=min(client_bits or 15, config.client_max_window_bits),
    )


# --- compression (RFC 7692 section 7.2) --------------------------------------


class PerMessageDeflate:
    """Compresses outgoing and inflates incoming messages of one connection.

    ``server`` says which side we are, so which half of ``params`` binds our
    compressor and which the peer's. zlib objects are created on first use;
    when a side has no context takeover its zlib object is dropped after each
    message, so an idle connection holds none.
    """

    __slots__ = (
        "_own_bits",
        "_own_reset",
        "_peer_bits",
        "_peer_reset",
        "_level",
        "_mem_level",
        "_threshold",
        "_compressor",
        "_decompressor",
        "_message_in",
        "_message_out",
    )

    def __init__(self, params: DeflateParams, *, server: bool, config: DeflateConfig) -> None:
        if server:
            own_bits, own_reset = params.server_max_window_bits, params.server_no_context_takeover
            peer_bits, peer_reset = params.client_max_window_bits, params.client_no_context_takeover
        else:
            own_bits, own_reset = params.client_max_window_bits, params.client_no_context_takeover
            peer_bits, peer_reset = params.server_max_window_bits, params.server_no_context_takeover
        self._own_bits = own_bits
        self._own_reset = own_reset
        # Inflating with a window larger than the peer's is always correct. 9 rather
        # than 8: zlib before 1.2.9 silently deflated with a 512-byte window when
        # asked for 256 bytes, and other deflaters may round up the same way; reading
        # their output costs us 256 bytes of window.
        self._peer_bits = max(peer_bits, 9)
        self._peer_reset = peer_reset
        self._level = config.level
        self._mem_level = config.mem_level
        self._threshold = config.threshold
        self._compressor: zlib._Compress | None = None
        self._decompressor: zlib._Decompress | None = None
        self._message_in = 0  # compressed bytes received in the current message
        self._message_out = 0  # bytes inflated from it so far

    def should_compress(self, size: int) -> bool:
        """Whether a message of ``size`` bytes should go out compressed (RSV1 set).

        False below the threshold, and always False when our window must be
        8 bits: zlib refuses raw deflate with an 8-bit window (since 1.2.9
        deflateInit2 returns Z_STREAM_ERROR for windowBits -8; older versions
        used 9 bits instead, which would break the agreement). A 9-bit zlib
        window happens to never emit distances over 250 bytes, but that is an
        internal detail of zlib, not a promise, so we do not rely on it.
        RFC 7692 sets RSV1 per message (section 6), so sending every message
        uncompressed is a valid way to honour ``*_max_window_bits=8``.
        """
        return self._own_bits > 8 and size >= self._threshold

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        """The payload of one whole compressed message (7.2.1).

        Compress, sync-flush, strip the trailing 00 00 ff ff. An output that
        would be empty (zlib emits nothing for an empty input right after a
        flush in some versions) becomes a single 0x00, the empty stored block
        RFC 7692 7.2.3.6 describes: an empty payload would leave the peer's
        inflater inside a half-read block.
        """
        if self._own_bits == 8:
            raise ValueError("cannot compress with an 8-bit window; check should_compress() first")
        compressor = self._compressor
        if compressor is None:
            compressor = zlib.compressobj(
                self._level, zlib.DEFLATED, -self._own_bits, self._mem_level
            )
            if not self._own_reset:
                self._compressor = compressor
        out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        if out.endswith(SYNC_TAIL):
            out = out[:-4]
        return out or EMPTY_MESSAGE

    def decompress(
        self, data: bytes | bytearray | memoryview, final: bool, max_size: int | None
    ) -> bytes:
        """Inflate one fragment of a compressed message; ``final`` on its last.

        Raises ``ProtocolError(1009)`` as soon as the message's inflated size
        would pass ``max_size`` (None: no limit), without inflating further, and
        ``ProtocolError(1007)`` on corrupt data. After either error the message
        is abandoned (see ``reset_message``).
        """
        decompressor = self._decompressor
        if decompressor is None:
            decompressor = self._decompressor = zlib.decompressobj(-self._peer_bits)
        self._message_in += len(data)
        try:
            out = self._inflate(decompressor, data, max_size)
            if final:
                # A message whose payload is empty carries no deflate block at all;
                # appending the tail alone would leave a half-read stored block.
                if self._message_in:
                    out += self._inflate(decompressor, SYNC_TAIL, max_size)
                if self._peer_reset or decompressor.eof:
                    # A block with BFINAL set ends the stream: the next message starts a new one.
                    self._decompressor = None
                self._message_in = self._message_out = 0
        except zlib.error:
            self.reset_message()
            raise ProtocolError(INVALID_DATA, "invalid compressed data") from None
        except ProtocolError:
            self.reset_message()
            raise
        return out

    def _inflate(
        self,
        decompressor: zlib._Decompress,
        data: bytes | bytearray | memoryview,
        max_size: int | None,
    ) -> bytes:
        if decompressor.eof:
            # After a block with BFINAL set nothing more is read: RFC 7692 7.2.3.4 even
            # shows a trailing empty block there. Skipping it keeps nothing buffered.
            return b""
        if max_size is None:
            out = decompressor.decompress(data)
        else:
            room = max_size - self._message_out
            # Ask for one byte more than fits: getting it proves the message is too big,
            # and zlib stops there, keeping the rest in unconsumed_tail (never inflated).
            out = decompressor.decompress(data, room + 1)
            if len(out) > room:
                raise ProtocolError(
                    MESSAGE_TOO_BIG, f"decompressed message exceeds the limit of {max_size} bytes"
                )
        self._message_out += len(out)
        return out

    def reset_message(self) -> None:
        """Abandon the message being inflated (after an error or an abort).

        The inflater is dropped with it, so with context takeover later
        messages can no longer be decoded: use it only when the connection is
        being failed.
        """
        self._decompressor = None
        self._message_in = self._message_out = 0
