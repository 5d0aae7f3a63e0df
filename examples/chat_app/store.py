"""The chat's SQLite database: users, messages, and the key that signs sessions.

Plain ``sqlite3`` with one short-lived connection per call, so any thread may call
(the hooks run calls in a worker thread with ``asyncio.to_thread``, keeping the
hub's loop free) and two processes share the file (write-ahead logging lets
readers and the writer pass each other).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SCHEMA = """
create table if not exists users (
    name text primary key,
    salt blob not null,
    hash blob not null
);
create table if not exists messages (
    id integer primary key autoincrement,
    channel text not null,
    user text not null,
    text text not null,
    at real not null
);
create index if not exists messages_by_channel on messages (channel, id);
create table if not exists keys (
    name text primary key,
    value text not null
);
"""
PASSWORD_ITERATIONS = 100_000  # PBKDF2-SHA256: about 50 ms a login


class Store:
    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        with self._db() as db:
            db.execute("pragma journal_mode = wal")
            db.executescript(SCHEMA)

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=5.0)
        db.row_factory = sqlite3.Row
        try:
            with db:  # commit, or roll back on error
                yield db
        finally:
            db.close()

    def key(self, name: str) -> str:
        """A secret made on first use and kept, the same for every process."""
        with self._db() as db:
            db.execute(
                "insert or ignore into keys (name, value) values (?, ?)",
                (name, secrets.token_urlsafe(32)),
            )
            return db.execute("select value from keys where name = ?", (name,)).fetchone()[0]

    # -- users ----------------------------------------------------------------------------

    def log_in(self, name: str, password: str) -> bool:
        """Is ``password`` the user's? A name seen for the first time is signed up with it."""
        salt = secrets.token_bytes(16)
        with self._db() as db:
            db.execute(
                "insert or ignore into users (name, salt, hash) values (?, ?, ?)",
                (name, salt, _hash(password, salt)),
            )
            row = db.execute("select salt, hash from users where name = ?", (name,)).fetchone()
        return hmac.compare_digest(_hash(password, row["salt"]), row["hash"])

    def user_exists(self, name: str) -> bool:
        with self._db() as db:
            return db.execute("select 1 from users where name = ?", (name,)).fetchone() is not None

    # -- messages -------------------------------------------------------------------------

    def add_message(self, channel: str, user: str, text: str) -> dict[str, Any]:
        at = time.time()
        with self._db() as db:
            cursor = db.execute(
                "insert into messages (channel, user, text, at) values (?, ?, ?, ?)",
                (channel, user, text, at),
            )
        return {"id": cursor.lastrowid, "user": user, "text": text, "at": at}

    def older(self, channel: str, before: int | None, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` messages of ``channel`` before the id ``before`` (None: the
        newest), oldest first."""
        with self._db() as db:
            rows = db.execute(
                "select id, user, text, at from messages where channel = ? and id < ? "
                "order by id desc limit ?",
                (channel, before if before is not None else 2**63 - 1, limit),
            ).fetchall()
        return [dict(row) for row in reversed(rows)]


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, PASSWORD_ITERATIONS)
