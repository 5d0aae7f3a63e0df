"""The JavaScript client's browser build, as the hub serves it, in headless Chromium.

Needs Debian's Chromium at /usr/bin/chromium and Playwright for Python (see
test_demo_browser.py); missing either fails the test.
"""

from __future__ import annotations

import pytest

from tests.hub.test_demo_browser import launch, require_browser
from tests.support.hubprocess import HubProcess

# Runs in the page: a reader and a publisher; the reader drops its socket and is kept away
# (its token request waits) while the publisher publishes, then recovers what it missed.
SCENARIO = """
async ([protocol, channel]) => {
  const { Client } = await import("/static/fastws-client.js");
  const url = `ws://${location.host}/connection`;
  const token = async (user) => (await (await fetch(`/api/dev/token?user=${user}`)).json()).token;
  let away = null;
  const reader = new Client(url, { protocol, getToken: async () => { await away; return token("reader"); } });
  const publisher = new Client(url, { protocol, getToken: () => token("publisher") });
  reader.connect();
  publisher.connect();
  await Promise.all([reader.ready(5000), publisher.ready(5000)]);
  const sub = reader.newSubscription(channel);
  const received = [];
  const subscribed = [];
  sub.on("publication", (pub) => received.push([pub.data.n, pub.recovered, pub.user]));
  sub.on("subscribed", (event) => subscribed.push(event.recovered));
  sub.subscribe();
  await sub.ready(5000);
  const until = async (count) => {
    while (received.length < count) await new Promise((resolve) => setTimeout(resolve, 20));
  };
  for (const n of [1, 2, 3]) await publisher.publish(channel, { n });
  await until(3);

  let comeBack;
  away = new Promise((resolve) => (comeBack = resolve));
  reader.drop();
  const stateWhileAway = reader.state;
  for (const n of [4, 5, 6]) await publisher.publish(channel, { n });
  comeBack();
  await reader.ready(10000);
  await publisher.publish(channel, { n: 7 });
  await until(7);
  reader.disconnect();
  publisher.disconnect();
  return { received, subscribed, stateWhileAway, user: reader.user };
}
"""


@pytest.fixture(scope="module")
def hub():
    with HubProcess(api_key=None) as process:
        yield process


@pytest.mark.parametrize("protocol", ["json", "msgpack", "protobuf"])
def test_the_browser_build_recovers_after_a_drop(hub, protocol: str) -> None:
    sync_api = require_browser()
    errors: list[str] = []
    scripts: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("request", lambda request: scripts.append(request.url.rsplit("/", 1)[-1]))
            page.goto(f"http://127.0.0.1:{hub.port}/static/fastws-client.js")
            result = page.evaluate(SCENARIO, [protocol, f"chat:browser-{protocol}"])
        finally:
            browser.close()
    assert errors == []
    assert result["user"] == "reader"
    assert result["stateWhileAway"] == "connecting"
    assert result["subscribed"] == [False, True]
    assert result["received"] == [
        [1, False, "publisher"],
        [2, False, "publisher"],
        [3, False, "publisher"],
        [4, True, "publisher"],
        [5, True, "publisher"],
        [6, True, "publisher"],
        [7, False, "publisher"],
    ]
    # The MessagePack and Protobuf codecs are files of their own, fetched only when asked for.
    assert ("fastws-client-msgpack.js" in scripts) == (protocol == "msgpack")
    assert ("fastws-client-protobuf.js" in scripts) == (protocol == "protobuf")


def test_the_browser_going_offline_and_online(hub) -> None:
    """Offline drops the socket and stops the attempts; online reconnects at once."""
    sync_api = require_browser()
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            context = browser.new_context()
            page = context.new_page()
            page.goto(f"http://127.0.0.1:{hub.port}/static/fastws-client.js")
            page.evaluate(
                """async () => {
                  const { Client } = await import("/static/fastws-client.js");
                  const token = async () => (await (await fetch("/api/dev/token?user=roamer")).json()).token;
                  const client = new Client(`ws://${location.host}/connection`, {
                    getToken: token, minReconnectDelay: 10, maxReconnectDelay: 20 });
                  window.events = [];
                  for (const name of ["connecting", "connected"]) client.on(name, (event) => events.push([name, event.reason ?? ""]));
                  window.client = client;
                  client.connect();
                  await client.ready(5000);
                }"""
            )
            context.set_offline(True)
            page.wait_for_function("client.state === 'connecting'")
            # No attempt while offline, however short the backoff.
            page.wait_for_timeout(300)
            assert page.evaluate("events") == [
                ["connecting", "connect called"],
                ["connected", ""],
                ["connecting", "the browser went offline"],
            ]
            context.set_offline(False)
            page.wait_for_function("client.state === 'connected'")
            assert page.evaluate("events.length") == 4
            page.evaluate("client.disconnect()")
        finally:
            browser.close()
