"""Runs wstest with its fuzzing server listening on 127.0.0.1 only, and with its
compression cases made cheaper to run without changing what they check.

wstest binds every interface and has no option to change that; the conformance
runs must stay on the loopback interface. This file runs under the Python 2.7
of the Autobahn virtualenv, so it keeps to syntax valid in Python 2 and 3.
"""

import os
import sys

# This directory holds autobahn.py, which would shadow the real autobahn package.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != HERE]

from autobahn.twisted import websocket  # noqa: E402
from autobahntestsuite import wstest  # noqa: E402 - imports fuzzing after choosing the reactor
from autobahntestsuite.case import case12_x_x  # noqa: E402


def listen_on_loopback(factory, contextFactory=None, backlog=50, interface=""):
    return websocket.listenWS(factory, contextFactory, backlog, "127.0.0.1")


class WholeMessage:
    """Stands in for SHA-1 in the compression cases (12 and 13), which compare each echo
    with the message sent by their SHA-1 digests. Its digest is the message itself, so the
    echo is compared byte for byte instead: a stricter check, and a fast one, where this
    Python 2's built-in SHA-1 (it has no OpenSSL) took a large share of a run's time."""

    def __init__(self):
        self.parts = []

    def update(self, data):
        self.parts.append(data)

    def digest(self):
        return b"".join(self.parts)


class WholeMessageHashlib:
    sha1 = WholeMessage


class DecodedOnce(str):
    """The file a compression case cuts its messages from, decoded once: wstest decodes
    the whole file (194 kB for the text cases) again for every message it sends."""

    def decode(self, *args):
        decoded = self.__dict__.setdefault("decoded", {})
        if args not in decoded:
            decoded[args] = str.decode(self, *args)
        return decoded[args]


def decoding_once(init):
    def init_then_keep_decoded(self):
        init(self)
        self.testData = DecodedOnce(self.testData)

    return init_then_keep_decoded


wstest.fuzzing.listenWS = listen_on_loopback
case12_x_x.hashlib = WholeMessageHashlib
for compression_case in case12_x_x.Case12_X_X + case12_x_x.Case13_X_X:
    compression_case.init = decoding_once(compression_case.init)

if __name__ == "__main__":
    sys.exit(wstest.run())
