"""The demo chat page in headless Chromium against ``python -m fastws``.

Needs Debian's Chromium at /usr/bin/chromium (``apt-get install -y chromium``)
and Playwright for Python (``pip install playwright``); Playwright's own
browser downloads are not used. Missing either fails the test.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from tests.support.hubprocess import HubProcess
from tests.support.paths import TEST_OUTPUT
from tests.support.polling import PATIENCE

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOT = TEST_OUTPUT / "demo.png"


def require_browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: run `apt-get install -y chromium` as root",
            pytrace=False,
        )
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("Playwright for Python is missing: run `pip install playwright`", pytrace=False)
    # Each `expect` polls the page until it holds; a busy machine may need more than 5 s.
    sync_api.expect.set_options(timeout=int(PATIENCE * 1000))
    return sync_api


@pytest.fixture(scope="module")
def hub():
    with HubProcess(api_key=None) as process:  # development mode, as a newcomer runs it
        yield process


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def login(page, port: int, name: str, expect) -> None:
    page.goto(f"http://127.0.0.1:{port}/")
    page.get_by_test_id("name").fill(name)
    page.get_by_test_id("login").click()
    expect(page.get_by_test_id("status")).to_have_text(f"connected as {name}")


def wait_for_token_request(page, held: list) -> None:
    """Until the page has asked for a token (its reconnect), held in ``held``."""
    deadline = time.monotonic() + PATIENCE
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert held, "the page did not try to reconnect"


def say(page, text: str) -> None:
    page.get_by_test_id("message-input").fill(text)
    page.get_by_test_id("send").click()


def test_two_people_chat_and_one_recovers_after_a_drop(hub) -> None:
    sync_api = require_browser()
    expect = sync_api.expect
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            pages = []
            for _ in range(2):
                context = browser.new_context(viewport={"width": 1200, "height": 720})
                page = context.new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                pages.append(page)
            ann, bob = pages
            login(ann, hub.port, "ann", expect)
            login(bob, hub.port, "bob", expect)

            # Both are in the lobby (joined on login) and see each other.
            for page in (ann, bob):
                expect(page.locator("#room-title")).to_have_text("chat:lobby")
                people = page.get_by_test_id("presence").locator("li")
                expect(people).to_have_count(2)
                expect(people).to_have_text(["ann", "bob"])

            say(ann, "hello bob")
            expect(bob.locator("[data-testid=message] .text")).to_have_text(["hello bob"])
            expect(bob.locator("[data-testid=message] .who")).to_have_text(["ann"])

            ann.get_by_test_id("pm-user").fill("bob")
            ann.get_by_test_id("pm-text").fill("psst, a secret")
            ann.get_by_test_id("pm-send").click()
            expect(bob.locator("[data-testid=pm-received] .text")).to_have_text(["psst, a secret"])
            expect(bob.locator("[data-testid=pm-received] .who")).to_have_text(["from ann"])
            expect(ann.locator("[data-testid=pm-sent] .who")).to_have_text(["to bob"])

            # Bob's page loses its socket. Its reconnect asks for a fresh token
            # first: holding that request keeps Bob away while Ann talks.
            held = []
            bob.route("**/api/dev/token*", lambda route: held.append(route))
            bob.get_by_test_id("drop").click()
            expect(bob.get_by_test_id("status")).to_have_attribute("data-state", "reconnecting")
            expect(ann.get_by_test_id("presence").locator("li")).to_have_text(["ann"])
            say(ann, "while you were away")
            expect(ann.get_by_test_id("message")).to_have_count(2)
            expect(bob.get_by_test_id("message")).to_have_count(1)
            wait_for_token_request(bob, held)
            for route in held:
                route.continue_()
            bob.unroute("**/api/dev/token*")

            expect(bob.get_by_test_id("status")).to_have_text("connected as bob")
            recovered = bob.locator("[data-testid=message][data-recovered=true]")
            expect(recovered).to_have_count(1)
            expect(recovered).to_contain_text("while you were away")
            expect(bob.locator(".note")).to_contain_text(["1 missed message recovered"])
            expect(bob.get_by_test_id("presence").locator("li")).to_have_text(["ann", "bob"])

            say(ann, "welcome back")
            expect(bob.get_by_test_id("message")).to_have_count(3)
            expect(bob.get_by_test_id("message").last).to_have_attribute("data-recovered", "false")
            expect(bob.get_by_test_id("message").last).to_contain_text("welcome back")

            say(bob, "thanks, I saw it")
            expect(ann.locator("[data-testid=message] .text").last).to_have_text("thanks, I saw it")

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            bob.mouse.move(600, 500)
            bob.screenshot(path=str(SCREENSHOT))
        finally:
            browser.close()
    assert errors == []
    assert Path(SCREENSHOT).stat().st_size > 10_000


def test_what_is_typed_while_a_message_is_on_its_way_is_kept(hub) -> None:
    """The composer empties when a message is sent, not when the hub confirms it: the
    confirmation must not wipe the next message, typed meanwhile."""
    sync_api = require_browser()
    expect = sync_api.expect
    relay = HeldReplies()
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page()
            page.route_web_socket(re.compile(r"/connection"), relay.route)
            login(page, hub.port, "dana", expect)
            relay.hold()
            say(page, "first")
            page.get_by_test_id("message-input").fill("second")
            relay.release()
            texts = page.locator("[data-testid=message] .text")
            expect(texts).to_have_text(["first"])  # confirmed and delivered
            expect(page.get_by_test_id("message-input")).to_have_value("second")
            page.get_by_test_id("send").click()
            expect(texts).to_have_text(["first", "second"])
        finally:
            browser.close()


class HeldReplies:
    """Relays the page's WebSocket to the hub; the hub's frames wait while held."""

    def __init__(self) -> None:
        self.page_side = None
        self.held: list | None = None

    def route(self, ws) -> None:
        self.page_side = ws
        ws.connect_to_server().on_message(self._to_page)

    def _to_page(self, frame) -> None:
        if self.held is None:
            self.page_side.send(frame)
        else:
            self.held.append(frame)

    def hold(self) -> None:
        self.held = []

    def release(self) -> None:
        frames, self.held = self.held, None
        for frame in frames:
            self.page_side.send(frame)


def test_the_page_survives_a_hub_restart_and_says_what_was_lost() -> None:
    sync_api = require_browser()
    expect = sync_api.expect
    with HubProcess(api_key=None) as hub, sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page()
            login(page, hub.port, "carol", expect)
            say(page, "before the crash")
            expect(page.locator("[data-testid=message] .text")).to_have_text(["before the crash"])

            hub.kill()
            expect(page.get_by_test_id("status")).to_have_attribute("data-state", "reconnecting")
            hub.start()
            # The page retries with backoff (a new token each time) until the hub is back.
            expect(page.get_by_test_id("status")).to_have_text("connected as carol")
            expect(page.locator(".note.warn")).to_contain_text(["could not be recovered"])
            say(page, "after the restart")
            expect(page.locator("[data-testid=message] .text")).to_have_text(
                ["before the crash", "after the restart"]
            )
        finally:
            browser.close()


def test_messages_sent_during_a_drop_and_a_hub_restart_arrive_once_in_order(redis_server) -> None:
    """On Redis the stream outlives the hub: what Ann says while Bob is away reaches him once."""
    sync_api = require_browser()
    expect = sync_api.expect
    errors: list[str] = []
    hub = HubProcess("--broker", redis_server.url, api_key=None)
    with hub, sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            ann, bob = (browser.new_context().new_page() for _ in range(2))
            for page in (ann, bob):
                page.on("pageerror", lambda exc: errors.append(str(exc)))
            login(ann, hub.port, "ann", expect)
            login(bob, hub.port, "bob", expect)
            say(ann, "one")
            expect(bob.locator("[data-testid=message] .text")).to_have_text(["one"])

            def keep_bob_away():
                """Hold Bob's token requests: his page cannot reconnect until released."""
                held = []
                bob.route("**/api/dev/token*", lambda route: held.append(route))
                return held

            def let_bob_back(held):
                wait_for_token_request(bob, held)
                for route in held:
                    route.continue_()
                bob.unroute("**/api/dev/token*")
                expect(bob.get_by_test_id("status")).to_have_text("connected as bob")

            # The network drops (the page's button).
            held = keep_bob_away()
            bob.get_by_test_id("drop").click()
            expect(bob.get_by_test_id("status")).to_have_attribute("data-state", "reconnecting")
            for text in ("two", "three", "four"):
                say(ann, text)
            expect(ann.get_by_test_id("message")).to_have_count(4)
            let_bob_back(held)

            # The hub crashes and starts again on the same port.
            held = keep_bob_away()
            hub.kill()
            for page in (ann, bob):  # Ann's page, too, has seen the crash before the restart
                expect(page.get_by_test_id("status")).to_have_attribute("data-state", "reconnecting")
            hub.start()
            expect(ann.get_by_test_id("status")).to_have_text("connected as ann")
            for text in ("five", "six"):
                say(ann, text)
            expect(ann.get_by_test_id("message")).to_have_count(6)
            let_bob_back(held)

            say(ann, "seven")
            texts = ["one", "two", "three", "four", "five", "six", "seven"]
            expect(bob.locator("[data-testid=message] .text")).to_have_text(texts)
            expect(bob.locator("[data-testid=message][data-recovered=true] .text")).to_have_text(
                ["two", "three", "four", "five", "six"]
            )
            expect(bob.locator(".note")).to_have_text(
                ["reconnected: 3 missed messages recovered", "reconnected: 2 missed messages recovered"]
            )
            offsets = bob.locator("[data-testid=message]").evaluate_all(
                "nodes => nodes.map((node) => Number(node.dataset.offset))"
            )
            assert offsets == list(range(offsets[0], offsets[0] + 7))
        finally:
            browser.close()
    assert errors == []
