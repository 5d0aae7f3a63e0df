"""Hooks over HTTP: each event POSTed as JSON to its endpoint, for backends in any language.

The request is the context's fields and the event's (``{"client", "user",
"headers", "remote_addr", "protocol", "info", "meta", "channel", "data"...}``;
notifications add ``"event"``); the answer, with status 200, is one of
``{"result": {...}}`` or a refusal, ``{"error": {"code", "message"}}``, with
``"disconnect": {"code", "reason"}`` when the connection must close too (see
docs/hooks.md). The POST carries the connection's chosen headers as HTTP headers too,
so a backend's own session or auth middleware reads them as from the browser, and the
operator's static headers over them (``proxy_static_headers``: how the backend knows
the hub). Anything else
(another status, no answer in time, a refused connection) is a failure; failures
in a row open the endpoint's circuit breaker, and while it is open calls fail at
once instead of waiting for a backend known to be down.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

import orjson

from fastws.hub.broker.circuit import CLOSED, CircuitBreaker
from fastws.hub.hooks.contract import NOTIFICATIONS, HookContext, HookFailed, Refuse
from fastws.hub.hooks.http import Endpoint, HttpError
from fastws.hub.httpheaders import forwardable

FAILURE_THRESHOLD = 3  # failures in a row that open an endpoint's circuit
COOLDOWN = 1.0  # seconds before the first probe of an open circuit
MAX_COOLDOWN = 30.0


class ProxyEndpoint:
    """One endpoint with its circuit breaker."""

    def __init__(self, url: str) -> None:
        self.http = Endpoint(url)
        self.breaker = CircuitBreaker(FAILURE_THRESHOLD, COOLDOWN, MAX_COOLDOWN, closed=True)

    async def post(self, request: dict[str, Any], headers: dict[str, str]) -> Any:
        """The endpoint's answer to ``request`` sent with ``headers``: a result, or
        ``Refuse``; else HookFailed."""
        breaker = self.breaker
        if breaker.state != CLOSED and not breaker.try_probe():
            raise HookFailed(
                f"{self.http.url} is failing; next try in {breaker.retry_in():.1f} s"
            )
        try:
            status, body = await self.http.post(orjson.dumps(request), headers)
            if status != 200:
                raise HookFailed(f"{self.http.url} answered HTTP {status}")
            try:
                answer = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise HookFailed(f"{self.http.url} answered something that is not JSON") from None
        except HttpError as exc:
            breaker.failure()
            raise HookFailed(f"{self.http.url}: {exc}") from None
        except HookFailed:
            breaker.failure()
            raise
        except BaseException:  # cancelled: the hub's timeout, the backend is too slow
            breaker.failure()
            raise
        breaker.success()
        return _outcome(self.http.url, answer)

    def close(self) -> None:
        self.http.close()


def _outcome(url: str, answer: Any) -> Any:
    """The result of an answer, or the Refuse it says; HookFailed when it is malformed."""
    if not isinstance(answer, dict) or not (
        set(answer) <= {"result"} or set(answer) <= {"error", "disconnect"}
    ):
        raise HookFailed(f"{url} must answer an object with result, or error and/or disconnect")
    if not answer or "result" in answer:
        return answer.get("result")
    error = answer.get("error", {})
    disconnect = answer.get("disconnect")
    if not isinstance(error, dict) or not (disconnect is None or isinstance(disconnect, dict)):
        raise HookFailed(f"{url}: error and disconnect must be objects")
    message = error.get("message", "refused by the application")
    code = error.get("code", 403)
    if not isinstance(message, str) or type(code) is not int:
        raise HookFailed(f"{url}: error needs an integer code and a string message")
    if disconnect is not None:
        reason = disconnect.get("reason", message)
        close = disconnect.get("code")
        if not isinstance(reason, str) or type(close) is not int:
            raise HookFailed(f"{url}: disconnect needs an integer code and a string reason")
        raise Refuse(message, code, (close, reason))
    raise Refuse(message, code)


class ProxyHooks:
    """The events that have an endpoint, each POSTed there with the connection's chosen
    headers and then ``static`` (which win over a chosen header of the same name). The
    notify endpoint gets the notifications among ``notify_events`` only: the others are
    not hooked, so the node does not tell them at all."""

    def __init__(
        self,
        endpoints: dict[str, str],
        notify: str | None,
        static: dict[str, str],
        notify_events: Iterable[str] = tuple(NOTIFICATIONS),
    ):
        self.endpoints = {event: ProxyEndpoint(url) for event, url in endpoints.items()}
        self.notify = ProxyEndpoint(notify) if notify else None
        self.notify_events = frozenset(notify_events)
        self.static = {"user-agent": "fastws-hub"}
        self.static.update((name.lower(), value) for name, value in static.items())

    def handles(self, event: str) -> bool:
        if event in NOTIFICATIONS:
            return self.notify is not None and event in self.notify_events
        return event in self.endpoints

    async def call(self, event: str, ctx: HookContext | None, fields: dict[str, Any]) -> Any:
        request = ctx.as_json() if ctx is not None else {}
        request.update(fields)
        data = request.get("data")
        if isinstance(data, bytes):  # binary data: base64, as the HTTP API gives it
            del request["data"]
            request["b64data"] = base64.b64encode(data).decode()
        endpoint = self.endpoints.get(event)
        if endpoint is None:
            request["event"] = event
            endpoint = self.notify
        return await endpoint.post(request, self.headers(ctx))

    def headers(self, ctx: HookContext | None) -> dict[str, str]:
        """The HTTP headers of a request about ``ctx``: its chosen headers (less those
        that frame a request, which only the hub writes), then the static ones."""
        if ctx is None or not ctx.headers:
            return self.static
        return {**forwardable(ctx.headers), **self.static}

    def breakers(self) -> dict[str, CircuitBreaker]:
        named = {event: e.breaker for event, e in self.endpoints.items()}
        if self.notify is not None:
            named["notify"] = self.notify.breaker
        return named

    def close(self) -> None:
        for endpoint in self.endpoints.values():
            endpoint.close()
        if self.notify is not None:
            self.notify.close()


__all__ = ["ProxyHooks"]
