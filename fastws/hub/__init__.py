"""The real-time hub on top of fastws: channels, history and recovery, presence, private
messages, JWT auth and an HTTP API, over the protocol in docs/protocol.md.

Modules map to concepts: ``config`` (options), ``auth`` (tokens), ``channels``
(names and patterns), ``namespaces`` and ``permissions`` (who may do what),
``protocol`` and ``messages`` (the protocol's codes, encodings and shapes),
``broker`` (the interface and the memory, local and Redis
brokers), ``node`` (registry and fan-out), ``commands`` (every command, once),
``session`` (one connection), ``api`` (HTTP API), ``app`` (the server on one
port), ``process`` (a master and its workers), ``client`` (a Python client).
Names are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Hub": "fastws.hub.app",
    "run_hub": "fastws.hub.app",
    "HubConfig": "fastws.hub.config",
    "Namespace": "fastws.hub.namespaces",
    "ConfigError": "fastws.hub.config",
    "load_config": "fastws.hub.config",
    "Client": "fastws.hub.client",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fastws.hub' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
