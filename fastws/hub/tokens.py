"""Tokens for operators: ``python -m fastws gentoken``, ``gensubtoken`` and ``checktoken``.

They use the keys the hub is configured with (flags, ``FASTWS_*`` variables, the
TOML file), so a token made here is one the hub accepts. Making tokens needs
``jwt_secret`` (HS256): a hub that knows only a public key cannot sign; the
backend that holds the private key does.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
import orjson

from fastws.hub.auth import Authenticator, TokenError
from fastws.hub.config import ConfigError, HubConfig

DEFAULT_TTL = 3600
GRANT_CLAIMS = ("channels", "publish", "history", "presence", "send")  # arrays of patterns


def _signing_claims(config: HubConfig, user: str, ttl: float) -> dict[str, Any]:
    if not config.jwt_secret:
        raise ConfigError(
            "signing tokens needs jwt_secret (or jwt_secret_file); with jwt_public_key, "
            "tokens are signed by whoever holds the private key"
        )
    if ttl <= 0:
        raise ConfigError(f"--ttl must be positive, not {ttl:g}")
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user, "iat": now, "exp": now + int(ttl)}
    if config.jwt_audience is not None:
        claims["aud"] = config.jwt_audience
    if config.jwt_issuer is not None:
        claims["iss"] = config.jwt_issuer
    return claims


def _info(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        info = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"--info must be a JSON object: {exc}") from None
    if not isinstance(info, dict):
        raise ConfigError("--info must be a JSON object")
    return info


def connection_token(
    config: HubConfig,
    user: str,
    ttl: float = DEFAULT_TTL,
    grants: dict[str, list[str]] | None = None,
    info: str | None = None,
) -> str:
    """A connection token for ``user`` valid ``ttl`` seconds, signed with jwt_secret;
    ``grants`` maps claims of GRANT_CLAIMS to their patterns."""
    claims = _signing_claims(config, user, ttl)
    for name, patterns in (grants or {}).items():
        if name not in GRANT_CLAIMS:
            raise ConfigError(f"no grant claim {name!r}; the grants are {', '.join(GRANT_CLAIMS)}")
        if patterns:
            claims[name] = patterns
    parsed = _info(info)
    if parsed is not None:
        claims["info"] = parsed
    return jwt.encode(claims, config.jwt_secret, algorithm="HS256")


def subscription_token(
    config: HubConfig, user: str, channel: str, ttl: float = DEFAULT_TTL, info: str | None = None
) -> str:
    """A subscription token: claims ``sub``, ``channel``, ``exp`` and optional ``info``."""
    claims = _signing_claims(config, user, ttl)
    claims["channel"] = channel
    parsed = _info(info)
    if parsed is not None:
        claims["info"] = parsed
    return jwt.encode(claims, config.jwt_secret, algorithm="HS256")


def check_token(config: HubConfig, token: str) -> str:
    """What the hub would make of ``token``: a line for a valid one; TokenError otherwise."""
    Authenticator(config).authenticate(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    expires = claims.get("exp")
    if isinstance(expires, int | float):
        left = f"expires in {expires - time.time():.0f} s"
    else:
        left = "never expires"
    return f"valid for user {claims['sub']!r}, {left}; claims {orjson.dumps(claims).decode()}"


__all__ = [
    "GRANT_CLAIMS",
    "TokenError",
    "check_token",
    "connection_token",
    "subscription_token",
]
