"""TLS to Redis (``rediss...`` URLs): one set of settings for every connection the
broker opens, redis-py's pools and its own pub/sub connections alike.

The server's certificate is always verified (against ``ca_file``, or the
system's CAs), and so is, unless turned off, that it names the host the broker
reached it at. A client certificate is sent when the server asks for one.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RedisTLS:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    check_hostname: bool = True

    def context(self) -> ssl.SSLContext:
        """For the broker's own connections (``pubsub.py``)."""
        context = ssl.create_default_context(cafile=self.ca_file)
        context.check_hostname = self.check_hostname
        if self.cert_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def connection_options(self) -> dict[str, Any]:
        """The same, as redis-py's connection keyword arguments."""
        return {
            "ssl_ca_certs": self.ca_file,
            "ssl_certfile": self.cert_file,
            "ssl_keyfile": self.key_file,
            "ssl_cert_reqs": "required",
            "ssl_check_hostname": self.check_hostname,
        }


__all__ = ["RedisTLS"]
