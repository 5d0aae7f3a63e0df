"""Codec micro-benchmarks, fastws side by side with other Python WebSocket codecs.

``pytest bench/test_codec_bench.py --benchmark-only`` runs them; ``python -m bench.codec_report``
runs them and prints frames/s and the ratios that matter. Each group compares the same work:

- unmask: XOR a payload with a 4-byte key. fastws masks a bytearray in place; websockets'
  ``speedups.apply_mask`` and wsaccel's ``XorMaskerSimple.process`` return new bytes.
- parse: 1,000 masked binary frames (a client's stream, as a server sees it) in one chunk, out
  as each library delivers them: fastws calls ``on_frame`` with a memoryview, websockets'
  sans-I/O ``Protocol`` queues ``Frame`` events, wsproto's ``FrameProtocol`` yields ``Frame``\\ s.
- build: 1,000 unmasked binary frames (what a server sends).
- utf8: validate a text payload.

A missing library fails the benchmark: comparisons are the point of this file.
"""

from __future__ import annotations

import os
from functools import partial

import pytest
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side, State
from websockets.speedups import apply_mask as websockets_apply_mask
from wsaccel.utf8validator import Utf8Validator as WsaccelUtf8Validator
from wsaccel.xormask import XorMaskerSimple
from wsproto.frame_protocol import FrameProtocol

from fastws import _codec as cython_codec
from fastws import _codec_py as python_codec

FRAMES_PER_ROUND = 1000
KEY = os.urandom(4)
SIZES = {"64 B": 64, "1 KiB": 1024, "64 KiB": 65536, "1 MiB": 1 << 20}
FRAME_SIZES = {"64 B": 64, "1 KiB": 1024}


def _label(size: int) -> str:
    return next(label for label, n in SIZES.items() if n == size)


# --------------------------------------------------------------------------- unmask

UNMASK_IMPLS = ["fastws-cython", "websockets", "wsaccel", "fastws-python"]


def _unmasker(impl: str, size: int):
    """One call that unmasks ``size`` bytes (partial: no Python frame of our own)."""
    data = bytearray(os.urandom(size))
    frozen = bytes(data)
    if impl == "fastws-cython":
        return partial(cython_codec.apply_mask, data, KEY)
    if impl == "fastws-python":
        return partial(python_codec.apply_mask, data, KEY)
    if impl == "websockets":
        return partial(websockets_apply_mask, frozen, KEY)
    if impl == "wsaccel":  # a masker per frame: every frame has its own key
        return lambda: XorMaskerSimple(KEY).process(frozen)
    raise AssertionError(impl)


@pytest.mark.parametrize("size", list(SIZES.values()), ids=list(SIZES))
@pytest.mark.parametrize("impl", UNMASK_IMPLS)
def test_unmask(benchmark, impl: str, size: int) -> None:
    benchmark.group = f"unmask {_label(size)}"
    benchmark.extra_info.update(kind="unmask", impl=impl, label=_label(size), size=size, frames=1)
    benchmark(_unmasker(impl, size))


# --------------------------------------------------------------------------- parse

PARSE_IMPLS = ["fastws-cython", "fastws-python", "websockets", "wsproto"]


def _client_stream(size: int) -> bytes:
    """FRAMES_PER_ROUND masked binary frames, as a client sends them."""
    payload = os.urandom(size)
    return b"".join(
        cython_codec.build_frame(cython_codec.OP_BINARY, payload, mask=True)
        for _ in range(FRAMES_PER_ROUND)
    )


def _parser(impl: str, stream: bytes):
    """A function that parses ``stream`` and returns how many frames came out."""
    if impl in ("fastws-cython", "fastws-python"):
        codec = cython_codec if impl == "fastws-cython" else python_codec

        def on_frame(opcode: int, fin: bool, rsv1: bool, payload: memoryview) -> None:
            pass  # the parser alone: an application's own work is not the codec's

        parser = codec.FrameParser(on_frame)

        def parse() -> int:
            parser.feed(stream)
            return FRAMES_PER_ROUND

        return parse
    if impl == "websockets":
        protocol = Protocol(Side.SERVER, state=State.OPEN, max_size=None)

        def parse() -> int:
            protocol.receive_data(stream)
            return len(protocol.events_received())

        return parse
    if impl == "wsproto":
        protocol = FrameProtocol(client=False, extensions=[])

        def parse() -> int:
            protocol.receive_bytes(stream)
            return sum(1 for _ in protocol.received_frames())

        return parse
    raise AssertionError(impl)


def _count_fastws_frames(codec, stream: bytes) -> int:
    frames = []
    codec.FrameParser(lambda *frame: frames.append(bytes(frame[3]))).feed(stream)
    return len(frames)


@pytest.mark.parametrize("size", list(FRAME_SIZES.values()), ids=list(FRAME_SIZES))
@pytest.mark.parametrize("impl", PARSE_IMPLS)
def test_parse(benchmark, impl: str, size: int) -> None:
    stream = _client_stream(size)
    parse = _parser(impl, stream)
    assert parse() == FRAMES_PER_ROUND
    if impl.startswith("fastws"):
        codec = cython_codec if impl == "fastws-cython" else python_codec
        assert _count_fastws_frames(codec, stream) == FRAMES_PER_ROUND
    benchmark.group = f"parse {_label(size)} x{FRAMES_PER_ROUND}"
    benchmark.extra_info.update(
        kind="parse", impl=impl, label=_label(size), size=size, frames=FRAMES_PER_ROUND
    )
    benchmark(parse)


# --------------------------------------------------------------------------- build

BUILD_IMPLS = [
    "fastws-cython",
    "fastws-cython write_frame",
    "fastws-python",
    "websockets",
    "wsproto",
]


def _builder(impl: str, size: int):
    """A function that builds FRAMES_PER_ROUND unmasked binary frames."""
    payload = os.urandom(size)
    rounds = range(FRAMES_PER_ROUND)
    if impl in ("fastws-cython", "fastws-python"):
        build_frame = (cython_codec if impl == "fastws-cython" else python_codec).build_frame
        return lambda: [build_frame(2, payload) for _ in rounds]
    if impl == "fastws-cython write_frame":  # coalesced into one send buffer
        write_frame = cython_codec.write_frame

        def build() -> bytearray:
            out = bytearray()
            for _ in rounds:
                write_frame(out, 2, payload)
            return out

        return build
    if impl == "websockets":
        return lambda: [Frame(Opcode.BINARY, payload).serialize(mask=False) for _ in rounds]
    if impl == "wsproto":
        protocol = FrameProtocol(client=False, extensions=[])
        return lambda: [protocol.send_data(payload, fin=True) for _ in rounds]
    raise AssertionError(impl)


@pytest.mark.parametrize("size", list(FRAME_SIZES.values()), ids=list(FRAME_SIZES))
@pytest.mark.parametrize("impl", BUILD_IMPLS)
def test_build(benchmark, impl: str, size: int) -> None:
    build = _builder(impl, size)
    expected = cython_codec.build_frame(2, os.urandom(size))
    built = build()
    total = sum(map(len, built)) if isinstance(built, list) else len(built)
    assert total == FRAMES_PER_ROUND * len(expected)
    benchmark.group = f"build {_label(size)} x{FRAMES_PER_ROUND}"
    benchmark.extra_info.update(
        kind="build", impl=impl, label=_label(size), size=size, frames=FRAMES_PER_ROUND
    )
    benchmark(build)


# --------------------------------------------------------------------------- UTF-8

UTF8_IMPLS = ["fastws-cython", "bytes.decode", "wsaccel", "fastws-python"]
TEXTS = {
    "ascii 64 KiB": b"The quick brown fox jumps over the lazy dog. " * 1456,  # 65,520 B
    "mixed 64 KiB": "Grüße, 世界! Привет 🙂 ".encode() * 1872,  # 65,520 B, 1-4 byte sequences
}


def _validator(impl: str, text: bytes):
    if impl in ("fastws-cython", "fastws-python"):
        validate = (cython_codec if impl == "fastws-cython" else python_codec).validate_utf8
        return lambda: validate(text)
    if impl == "bytes.decode":  # what websockets does for a text message
        return lambda: text.decode()
    if impl == "wsaccel":
        return lambda: WsaccelUtf8Validator().validate(text)[0]
    raise AssertionError(impl)


@pytest.mark.parametrize("name", list(TEXTS))
@pytest.mark.parametrize("impl", UTF8_IMPLS)
def test_utf8(benchmark, impl: str, name: str) -> None:
    text = TEXTS[name]
    assert _validator(impl, text)()
    benchmark.group = f"utf8 {name}"
    benchmark.extra_info.update(kind="utf8", impl=impl, label=name, size=len(text), frames=1)
    benchmark(_validator(impl, text))
