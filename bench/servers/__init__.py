"""Echo and broadcast servers under test, one small script per library.

Each is started as its own process (``python -m bench.servers.<name> --port 0``), prints
``ready <port>`` once listening, and serves until killed. ``--mode broadcast`` turns the echo
into the broadcast protocol: a text message ``broadcast N SIZE`` makes the server send N binary
messages of SIZE bytes to every other connection. ``--certfile``/``--keyfile`` switch on TLS.
"""
