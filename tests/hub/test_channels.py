"""Channel names and patterns."""

from __future__ import annotations

import pytest

from fastws.hub.channels import (
    MAX_CHANNEL_LENGTH,
    Patterns,
    channel_error,
    pattern_error,
    user_pattern_error,
)


@pytest.mark.parametrize(
    "name",
    ["a", "chat:lobby", "user#42", "dm:x#u1,u2", "$private", "a.b-c_d/e@f", "x" * MAX_CHANNEL_LENGTH],
)
def test_valid_names(name: str) -> None:
    assert channel_error(name) is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("x" * (MAX_CHANNEL_LENGTH + 1), "longer"),
        ("a b", "characters"),
        ("chat:*", "characters"),
        ("é", "characters"),
        ("a\n", "characters"),
        (3, "string"),
        (None, "string"),
    ],
)
def test_invalid_names(name: object, why: str) -> None:
    assert why in channel_error(name)


def test_pattern_rules() -> None:
    for pattern in ("*", "chat:*", "exact", "a:b:*"):
        assert pattern_error(pattern) is None
    # '*' matches whole segments only: never the rest of a name.
    for pattern in ("a*", "user:ali*", "a*b", "**", "a:*:b", "*:a", "a:**"):
        assert "whole segments" in pattern_error(pattern), pattern
    assert pattern_error("bad name:*") is not None
    assert pattern_error(["x"]) is not None
    assert user_pattern_error("*") is None and user_pattern_error("alice") is None
    assert "alone" in user_pattern_error("ali*")


def test_patterns_match_exact_names_and_prefixes() -> None:
    patterns = Patterns(["chat:*", "news", "user:42"])
    assert patterns.match("chat:lobby") and patterns.match("chat:a:b")
    assert not patterns.match("chatter:x")
    assert patterns.match("news") and not patterns.match("newsroom")
    assert not patterns.match("chat") and not patterns.match("user:421")
    assert not patterns.everything
    everything = Patterns(["*"])
    assert everything.everything and everything.match("anything")
    nothing = Patterns([])
    assert not nothing.match("a") and not nothing.match("")
