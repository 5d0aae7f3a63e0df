"""Secrets the tests hand to hubs, and the logs those hubs wrote, checked against each other.

Every hub process a test starts through ``tests.support`` records its log here
when it stops; at the end of the run ``tests/conftest.py`` looks for every
registered secret in all of them, so a secret that reaches any log line of any
test fails the run, whatever the test was about.
"""

from __future__ import annotations

SECRETS: set[str] = set()
LOGS: list[tuple[str, str]] = []  # (where, text)


def secret(value: str) -> str:
    """Register ``value`` as a secret no log may contain; returns it."""
    SECRETS.add(value)
    return value


def record(where: str, text: str) -> None:
    LOGS.append((where, text))


def leaked_lines(logs: list[tuple[str, str]] | None = None) -> list[str]:
    """The log lines, each with where it comes from, that contain a registered secret."""
    found = []
    for where, text in LOGS if logs is None else logs:
        for line in text.splitlines():
            if any(value in line for value in SECRETS):
                found.append(f"{where}: {line}")
    return found
