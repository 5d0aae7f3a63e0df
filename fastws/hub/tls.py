"""TLS for the hub: one server context from ``certfile``/``keyfile``.

The same port then speaks wss:// and https:// (the WebSocket endpoint, the
HTTP API, probes and /metrics all go through the same TLS listener). Each
worker loads the files itself, so a reload (SIGHUP) picks up renewed
certificates.
"""

from __future__ import annotations

import ssl

from fastws.hub.config import ConfigError, HubConfig


def server_context(config: HubConfig) -> ssl.SSLContext | None:
    """The server context for ``config``, or None when it has no certfile."""
    if not config.certfile:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(config.certfile, config.keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"certfile: cannot load {config.certfile!r}: {exc}") from None
    return context


__all__ = ["server_context"]
