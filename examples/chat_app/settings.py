"""Where the application keeps its data, and names both processes agree on.

The web application and the hub's hooks run in two processes and share one
directory (``CHAT_APP_DATA``, by default ``chat_app_data`` under the current
directory): the SQLite database, and the hub's API key, which the web application
writes on its first start and the hub reads (``api_key_file`` in hub.toml).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

DATA_ENV = "CHAT_APP_DATA"
DEFAULT_DATA = "chat_app_data"
SESSION_COOKIE = "chat_session"
LOBBY = "chat:lobby"
CHAT_PREFIX = "chat:"
LOGGED_OUT = (4601, "log in first")
"""The close code and reason of a connection refused for want of a session (4500-4999:
the client does not reconnect by itself; the page sends the user to the login form)."""


def data_dir(environ: Mapping[str, str] = os.environ) -> Path:
    path = Path(environ.get(DATA_ENV) or DEFAULT_DATA)
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_path(directory: Path) -> Path:
    return directory / "chat.sqlite3"


def hub_api_key(directory: Path) -> str:
    """The key of the hub's HTTP API: read, or made once (readable by its owner only)."""
    path = directory / "hub_api_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    key = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
    return key


def personal_channel(user: str) -> str:
    """The channel only ``user`` may subscribe to: the hub's user-limited channel
    ``personal:#user`` (namespace ``personal`` has ``allow_user_limited_channels``)."""
    return f"personal:#{user}"
