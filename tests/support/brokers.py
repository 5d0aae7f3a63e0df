"""A recording sink for broker tests: what a broker delivered, in order, as plain tuples."""

from __future__ import annotations


class Sink:
    """Records what a broker delivers."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_publication(self, channel, publication):
        self.events.append(("pub", channel, publication.offset, publication.data))

    def on_join(self, channel, info):
        self.events.append(("join", channel, info.client))

    def on_leave(self, channel, info):
        self.events.append(("leave", channel, info.client))

    def on_user_message(self, user, sender, data):
        self.events.append(("message", user, sender, data))

    def on_disconnect_user(self, user, code, reason):
        self.events.append(("disconnect", user, code, reason))
