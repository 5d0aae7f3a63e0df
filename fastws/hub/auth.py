"""Connection tokens: JWTs checked with PyJWT, turned into what a connection may do.

Claims read from a token:

- ``sub``: the user id (required; may be "" for an anonymous user);
- ``channels``: patterns of the channels the user may subscribe to;
- ``publish``: patterns of the channels the user may publish to;
- ``history``: patterns of the channels whose history the user may read;
- ``presence``: patterns of the channels whose presence the user may read;
- ``send``: patterns of the users the user may send private messages to;
- ``subs``: channels the server subscribes the connection to when it connects;
- ``info``: an object shown to others in presence, join and leave;
- ``exp``, ``nbf``: checked with ``leeway`` seconds of clock skew; ``aud`` and
  ``iss`` when the hub is configured with an audience or issuer. ``exp``,
  ``nbf`` and ``iat`` must be numbers when present.

Every string of a token (claims, keys, header) must be valid Unicode text: a
lone surrogate makes the token invalid (4500), as a bad signature does.

A missing claim grants nothing by itself (the namespace may still allow the
action, ``fastws.hub.permissions``), except in insecure development mode
(``insecure = true``), where everything is allowed. That mode also accepts
connections without a token and issues tokens signed with the configured
secret, or else a random one that lives as long as the process (``dev_token``).
Without a key and without insecure mode there is no Authenticator: the
configuration is refused.

A subscription token is a JWT checked with the same keys whose ``sub`` is the
connection's user and whose ``channel`` is the channel it grants; it may carry
``exp`` and an ``info`` that replaces the connection's in that channel.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from fastws.hub.channels import Patterns, channel_error, pattern_error, user_pattern_error
from fastws.hub.config import ConfigError, HubConfig
from fastws.hub.protocol import codes

logger = logging.getLogger("fastws.hub")

DEV_TOKEN_LIFETIME = 24 * 3600
TIME_CLAIMS = ("exp", "nbf", "iat")


class TokenError(codes.HubError):
    """The token is missing, invalid or expired; ``disconnect`` says how to close."""

    def __init__(self, disconnect: codes.Disconnect, message: str) -> None:
        super().__init__(codes.UNAUTHORIZED, message)
        self.disconnect = disconnect


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who a connection is and what it may do (None: the claim was absent)."""

    user: str
    channels: Patterns | None = None
    publish: Patterns | None = None
    history: Patterns | None = None
    presence: Patterns | None = None
    send: Patterns | None = None
    info: bytes | None = None  # the 'info' claim, JSON-encoded once
    expires_at: float | None = None  # time.time() seconds
    subs: tuple[str, ...] = ()  # channels the server subscribes the connection to at connect


@dataclass(frozen=True, slots=True)
class SubscriptionGrant:
    """What a subscription token grants: one channel, until ``expires_at``."""

    channel: str
    info: bytes | None = None  # replaces the connection's info in this channel
    expires_at: float | None = None


def _patterns(claims: dict[str, Any], name: str) -> Patterns | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        raise TokenError(codes.INVALID_TOKEN, f"the {name!r} claim must be an array of patterns")
    for pattern in value:
        error = pattern_error(pattern)
        if error:
            raise TokenError(codes.INVALID_TOKEN, f"the {name!r} claim: {error}")
    return Patterns(value)


def _user_patterns(claims: dict[str, Any]) -> Patterns | None:
    value = claims.get("send")
    if value is None:
        return None
    if not isinstance(value, list):
        raise TokenError(codes.INVALID_TOKEN, "the 'send' claim must be an array of user patterns")
    for pattern in value:
        error = user_pattern_error(pattern)
        if error:
            raise TokenError(codes.INVALID_TOKEN, f"the 'send' claim: {error}")
    return Patterns(value)


def _info(claims: dict[str, Any]) -> bytes | None:
    info = claims.get("info")
    if info is not None and not isinstance(info, dict):
        raise TokenError(codes.INVALID_TOKEN, "the 'info' claim must be an object")
    return orjson.dumps(info) if info is not None else None


class Authenticator:
    """Checks connection tokens against the configured keys."""

    def __init__(self, config: HubConfig) -> None:
        self.audience = config.jwt_audience
        self.issuer = config.jwt_issuer
        self.leeway = config.jwt_leeway
        self.insecure = config.insecure
        self.secret = config.jwt_secret
        self._keys: dict[str, Any] = {}
        if config.jwt_secret:
            self._keys["HS256"] = config.jwt_secret
        if config.jwt_public_key:
            key = _load_public_key(config.jwt_public_key)
            self._keys["RS256" if isinstance(key, rsa.RSAPublicKey) else "ES256"] = key
        if not self._keys and not self.insecure and not config.has_connect_hook:
            raise ConfigError(
                "no token key: set jwt_secret or jwt_public_key, a connect hook, or insecure"
            )
        self.dev_secret: str | None = None
        if self.insecure:
            self.dev_secret = config.jwt_secret or os.urandom(32).hex()
            self._keys["HS256"] = self.dev_secret

    def use_dev_secret(self, secret: str) -> None:
        """Sign development tokens with ``secret`` (shared by the workers of one master,
        so that a token from one worker is accepted by the others); a configured
        secret stays the one that signs."""
        if self.insecure and not self.secret:
            self.dev_secret = secret
            self._keys["HS256"] = secret

    def dev_token(self, user: str) -> str:
        """A token for ``user`` that this process accepts (insecure mode only)."""
        if self.dev_secret is None:
            raise RuntimeError("development tokens exist only in insecure mode")
        claims = {"sub": user, "exp": int(time.time()) + DEV_TOKEN_LIFETIME}
        return jwt.encode(claims, self.dev_secret, algorithm="HS256")

    def authenticate(self, token: str | None) -> Credentials:
        """The credentials a token grants; raises TokenError (4500 or 4501)."""
        if token is None or token == "":
            if self.insecure:
                return Credentials(user="")
            raise TokenError(codes.INVALID_TOKEN, "a token is required")
        return self._credentials(self._claims(token))

    def authorize_subscription(self, token: Any, user: str, channel: str) -> SubscriptionGrant:
        """What a subscription token grants ``user`` on ``channel``; raises TokenError."""
        if not isinstance(token, str) or not token:
            raise TokenError(codes.INVALID_TOKEN, "the subscription token must be a string")
        claims = self._claims(token)
        if claims["sub"] != user:
            raise TokenError(
                codes.INVALID_TOKEN, "the subscription token's 'sub' is not the connection's user"
            )
        if claims.get("channel") != channel:
            raise TokenError(
                codes.INVALID_TOKEN, f"the subscription token's 'channel' is not {channel!r}"
            )
        return SubscriptionGrant(channel, _info(claims), self._expiry(claims))

    def _claims(self, token: Any) -> dict[str, Any]:
        """The claims of a token verified with the configured keys; raises TokenError."""
        if not isinstance(token, str):
            raise TokenError(codes.INVALID_TOKEN, "the token must be a string")
        if not self._keys:
            raise TokenError(codes.INVALID_TOKEN, "tokens are not accepted: no token key is set")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise TokenError(codes.INVALID_TOKEN, f"malformed token: {exc}") from None
        if not _valid_text(header):
            raise TokenError(codes.INVALID_TOKEN, "the token holds a string that is not valid text")
        algorithm = header.get("alg")
        key = self._keys.get(algorithm) if isinstance(algorithm, str) else None
        if key is None:
            accepted = ", ".join(sorted(self._keys))
            raise TokenError(
                codes.INVALID_TOKEN, f"token algorithm {algorithm!r} is not accepted ({accepted})"
            )
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["sub"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            # PyJWT also reads numeric strings; those are refused, not taken as expired.
            check_claims(jwt.decode(token, options={"verify_signature": False}))
            raise TokenError(codes.TOKEN_EXPIRED, "token expired") from None
        except jwt.InvalidTokenError as exc:
            raise TokenError(codes.INVALID_TOKEN, f"invalid token: {exc}") from None
        except ValueError:  # a payload that is not UTF-8 JSON
            raise TokenError(codes.INVALID_TOKEN, "invalid token: the payload is not JSON") from None
        check_claims(claims)
        return claims

    def _expiry(self, claims: dict[str, Any]) -> float | None:
        expires = claims.get("exp")
        return float(expires) + self.leeway if isinstance(expires, int | float) else None

    def _credentials(self, claims: dict[str, Any]) -> Credentials:
        user = claims["sub"]
        if not isinstance(user, str):
            raise TokenError(codes.INVALID_TOKEN, "the 'sub' claim must be a string")
        return Credentials(
            user=user,
            channels=_patterns(claims, "channels"),
            publish=_patterns(claims, "publish"),
            history=_patterns(claims, "history"),
            presence=_patterns(claims, "presence"),
            send=_user_patterns(claims),
            info=_info(claims),
            expires_at=self._expiry(claims),
            subs=_subs(claims),
        )


def _subs(claims: dict[str, Any]) -> tuple[str, ...]:
    value = claims.get("subs")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise TokenError(codes.INVALID_TOKEN, "the 'subs' claim must be an array of channels")
    for channel in value:
        error = channel_error(channel)
        if error is not None:
            raise TokenError(codes.INVALID_TOKEN, f"the 'subs' claim: {error}")
    return tuple(dict.fromkeys(value))


def check_claims(claims: dict[str, Any]) -> None:
    """Refuse time claims that are not numbers and strings that are not valid text."""
    for name in TIME_CLAIMS:
        value = claims.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise TokenError(codes.INVALID_TOKEN, f"the {name!r} claim must be a number")
    if not _valid_text(claims):
        raise TokenError(codes.INVALID_TOKEN, "the token holds a string that is not valid text")


def _valid_text(value: Any) -> bool:
    """No lone surrogate in any string of ``value`` (keys included)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_valid_text(k) and _valid_text(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_valid_text(item) for item in value)
    return True


def _load_public_key(path: str) -> Any:
    try:
        with open(path, "rb") as file:
            key = load_pem_public_key(file.read())
    except OSError as exc:
        raise ConfigError(f"jwt_public_key: cannot read {path!r}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError(f"jwt_public_key: {path!r} is not a PEM public key: {exc}") from None
    if isinstance(key, rsa.RSAPublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise ConfigError(
        f"jwt_public_key: {path!r} holds neither an RSA key nor an EC P-256 key (RS256, ES256)"
    )


__all__ = ["Authenticator", "Credentials", "SubscriptionGrant", "TokenError"]
