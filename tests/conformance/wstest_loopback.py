"""Runs wstest with its fuzzing server listening on 127.0.0.1 only.

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


def listen_on_loopback(factory, contextFactory=None, backlog=50, interface=""):
    return websocket.listenWS(factory, contextFactory, backlog, "127.0.0.1")


wstest.fuzzing.listenWS = listen_on_loopback

if __name__ == "__main__":
    sys.exit(wstest.run())
