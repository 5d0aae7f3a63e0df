"""The NATS JetStream broker: ``broker.py`` runs it, ``records.py`` names what it keeps on NATS."""

from fastws.hub.broker.nats.broker import NatsBroker

__all__ = ["NatsBroker"]
