"""The session cookie: ``name.expires.signature``, an HMAC-SHA256 of the rest.

The web application signs it at login; the hub's connect hook reads the same
cookie from the WebSocket upgrade request (browsers send a host's cookies to
every port of it) and checks it with the same key, kept in the database.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from http.cookies import CookieError, SimpleCookie

from examples.chat_app.settings import SESSION_COOKIE

MAX_AGE = 7 * 24 * 3600
USER_NAME = re.compile(r"[a-z0-9_-]{1,32}")
"""What a user name may be: it goes into channel names (``personal:#name``) and cookies."""


def _signature(payload: str, key: str) -> str:
    return hmac.new(key.encode(), payload.encode(), hashlib.sha256).hexdigest()


def sign(user: str, key: str, now: float | None = None) -> str:
    expires = int((time.time() if now is None else now) + MAX_AGE)
    payload = f"{user}.{expires}"
    return f"{payload}.{_signature(payload, key)}"


def user_of(value: str, key: str, now: float | None = None) -> str | None:
    """The user a cookie value names, when its signature holds and it has not expired."""
    user, _, rest = value.partition(".")
    expires, _, signature = rest.partition(".")
    if not USER_NAME.fullmatch(user) or not expires.isdigit():
        return None
    if not hmac.compare_digest(signature, _signature(f"{user}.{expires}", key)):
        return None
    if int(expires) < (time.time() if now is None else now):
        return None
    return user


def user_from_header(cookie_header: str, key: str) -> str | None:
    """The user of the session cookie in a ``Cookie`` header, or None."""
    cookies = SimpleCookie()
    try:
        cookies.load(cookie_header)
    except CookieError:
        return None
    morsel = cookies.get(SESSION_COOKIE)
    return user_of(morsel.value, key) if morsel is not None else None
