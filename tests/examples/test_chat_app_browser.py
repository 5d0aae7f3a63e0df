"""examples/chat_app's page in headless Chromium against the two processes of its README:
log in by the form, chat, load older messages, a refused message, a wave, and back to the
login form when the hub refuses the session.

Needs Chromium and Playwright, as tests/hub/test_demo_browser.py (missing either fails).
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from examples.chat_app.settings import LOBBY, database_path
from examples.chat_app.store import Store
from tests.examples.test_chat_app import ChatProcesses
from tests.hub.test_demo_browser import launch, require_browser
from tests.support.polling import PATIENCE


def log_in(page, url: str, name: str, expect) -> None:
    page.goto(f"{url}/login")
    page.get_by_test_id("name").fill(name)
    page.get_by_test_id("password").fill("secret")
    page.get_by_test_id("login").click()
    expect(page.get_by_test_id("status")).to_have_text(f"connected as {name}")


def disconnect(chat: ChatProcesses, data: Path, user: str) -> None:
    """The server API's disconnect, with leave to reconnect."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{chat.api_port}/api/v1/disconnect",
        data=json.dumps({"user": user, "code": 4000, "reason": "bye", "reconnect": True}).encode(),
        headers={"Authorization": f"apikey {(data / 'hub_api_key').read_text().strip()}"},
    )
    with urllib.request.urlopen(request, timeout=PATIENCE) as response:
        assert response.status == 200


def test_two_people_chat_in_the_page(tmp_path) -> None:
    sync_api = require_browser()
    expect = sync_api.expect
    data = tmp_path / "data"
    data.mkdir()
    store = Store(database_path(data))
    for n in range(1, 26):  # older than the page's first 20
        store.add_message(LOBBY, "carol", f"earlier {n}")
    store.log_in("carol", "secret")
    with ChatProcesses(data, tmp_path / "app.log") as chat:
        errors: list[str] = []
        with sync_api.sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                ann, bob = (browser.new_context().new_page() for _ in range(2))
                for page in (ann, bob):
                    page.on("pageerror", lambda exc: errors.append(str(exc)))
                log_in(ann, chat.app_url, "ann", expect)
                log_in(bob, chat.app_url, "bob", expect)

                messages = bob.get_by_test_id("messages").locator("li")
                expect(messages).to_have_count(20)
                expect(messages.first).to_contain_text("earlier 6")
                bob.get_by_test_id("older").click()
                expect(messages).to_have_count(25)
                expect(messages.first).to_contain_text("earlier 1")
                expect(bob.get_by_test_id("older")).to_be_disabled()

                ann.get_by_test_id("text").fill("hello from the page")
                ann.get_by_test_id("send").click()
                expect(messages.last).to_have_text("annhello from the page")
                ann.get_by_test_id("text").fill("   ")
                ann.get_by_test_id("send").click()
                expect(ann.get_by_test_id("send-error")).to_contain_text("a message needs text")

                bob.get_by_test_id("wave-to").fill("ann")
                bob.get_by_test_id("wave").click()
                expect(ann.get_by_test_id("notices").locator("li")).to_have_text(["bob waves at you"])

                # Bob's session is gone when the hub drops him: his page reconnects without
                # the cookie, the connect hook refuses it, and the page goes to the login form.
                bob.context.clear_cookies()
                disconnect(chat, data, "bob")
                expect(bob).to_have_url(f"{chat.app_url}/login")
            finally:
                browser.close()
        assert not errors, errors
