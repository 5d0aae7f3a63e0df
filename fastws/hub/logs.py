"""Log lines: plain text for people, or one JSON object per line for log collectors.

Records may carry structured fields through ``extra`` (``conn``, ``user``,
``code``, ``reason``...): the JSON format puts each in its own key, the plain
format relies on the message already saying them. Every record of a process
also carries its role (``process``: ``hub``, ``master`` or ``worker N``), so
the interleaved lines of a master and its workers can be told apart.
"""

from __future__ import annotations

import logging
import os
import sys
import time

import orjson

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(message)s"
PLAIN_FORMAT_ROLE = "%(asctime)s %(levelname)s [%(role)s] %(message)s"

FIELDS = ("conn", "user", "peer", "code", "reason", "worker", "exit")
"""Structured fields copied into JSON lines when a record has them."""


class _Role(logging.Filter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def filter(self, record: logging.LogRecord) -> bool:
        record.role = self.role
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, role, pid and fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "role": getattr(record, "role", "hub"),
            "pid": record.process or os.getpid(),
        }
        for name in FIELDS:
            if hasattr(record, name):  # kept even when null: a disconnect always says who
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def setup_logging(level: str, fmt: str = "plain", role: str = "hub") -> None:
    """Configure the root logger once per process (later calls replace the handler)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT if role == "hub" else PLAIN_FORMAT_ROLE))
    handler.addFilter(_Role(role))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


__all__ = ["JsonFormatter", "setup_logging"]
