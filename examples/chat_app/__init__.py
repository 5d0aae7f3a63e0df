"""A chat application with aiohttp and the fastws hub; README.md says how to run it.

``web`` is the aiohttp application (login by a signed cookie, the page, the wave
that reaches a user's personal channel through the hub's server API); ``realtime``
the hub's hooks, run inside the hub (``hooks = "examples.chat_app.realtime"``):
the connect hook authenticates from the cookie, the publish hook validates and
stores, ``history.older`` reads older messages. ``store`` is the SQLite database
both processes share, ``sessions`` the signed cookie, ``settings`` where things are.
"""
