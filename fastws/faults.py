"""Why the codec refuses its input: the close code and reason of each fault.

Both codec backends report the same faults with the same words; the parsers
name a fault by one of these numbers and this module turns it into the error.
"""

from __future__ import annotations

from fastws import closecodes

OPCODE = 1
RSV1_UNNEGOTIATED = 2
RSV1_CONTROL = 3
RSV1_CONTINUATION = 4
RSV2 = 5
RSV3 = 6
FRAGMENTED_CONTROL = 7
CONTROL_TOO_LONG = 8
UNMASKED = 9
MASKED = 10
LENGTH_MSB = 11
TOO_BIG = 12

_REASONS = {
    OPCODE: "unknown opcode {value:#x}",
    RSV1_UNNEGOTIATED: "RSV1 set without a negotiated extension",
    RSV1_CONTROL: "RSV1 set on a control frame",
    RSV1_CONTINUATION: "RSV1 set on a continuation frame",
    RSV2: "RSV2 set without a negotiated extension",
    RSV3: "RSV3 set without a negotiated extension",
    FRAGMENTED_CONTROL: "fragmented control frame",
    CONTROL_TOO_LONG: "control frame payload over 125 bytes",
    UNMASKED: "unmasked frame from a client",
    MASKED: "masked frame from a server",
    LENGTH_MSB: "payload length with the most significant bit set",
    TOO_BIG: "frame payload of {value} bytes exceeds the limit of {max_size} bytes",
}

INVALID_UTF8 = "invalid UTF-8 in text message"
UNFINISHED_UTF8 = "text message ends inside a UTF-8 sequence"


def frame_fault(fault: int, value: int, max_size: int) -> tuple[int, str]:
    """The close code and reason for ``fault``; ``value`` is the opcode or the frame size."""
    code = closecodes.MESSAGE_TOO_BIG if fault == TOO_BIG else closecodes.PROTOCOL_ERROR
    return code, _REASONS[fault].format(value=value, max_size=max_size)
