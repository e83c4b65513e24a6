"""What the owner sees in a real Chromium when the page or Etsy says "wait": the login lock with when it
ends, and Etsy's recorded "not before" in the header (desktop and a 390×844 phone; screenshots kept)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import pytest

from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from review_app import create_app
from review_app.server import ReviewServer
from tests.review.conftest import PASSWORD, store_password
from tests.support.browser import ARGS, ARTIFACTS, CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no system Chromium at /usr/bin/chromium"),
]


@pytest.fixture
def server(settings: Settings, ws: Workspace) -> Iterator[ReviewServer]:
    store_password(ws)
    ws.write_state("health", {"pid": 1, "updated_at": time.time(), "watcher_alive": True, "queue_length": 0})
    ws.write_state("sync", {"not_before": time.time() + 5 * 3600,
                            "not_before_reason": "Etsy's daily request limit is used up"})
    review = dataclasses.replace(settings.review, login_attempts=2)
    with ReviewServer(create_app(dataclasses.replace(settings, review=review), ws), "127.0.0.1", 0) as running:
        yield running


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900}, {"width": 390, "height": 844}],
                         ids=["desktop", "phone"])
def test_the_login_lock_and_etsys_not_before_are_shown(server: ReviewServer, viewport: dict[str, int]) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    name = f"waits-{viewport['width']}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport=viewport)
            page.goto(server.url + "login")
            for guess in ("wrong one", "wrong two", PASSWORD):  # the right one comes too late
                page.fill("input[name=password]", guess)
                page.click("form button.primary")
            flash = page.locator(".flash.error")
            expect(flash).to_contain_text("locked until")
            expect(flash).to_contain_text("kaalwatch set-password")
            page.screenshot(path=str(ARTIFACTS / f"{name}-login-locked.png"), full_page=True)
        finally:
            browser.close()
    # The owner lifts the lock (what set-password does) and logs in: the header shows Etsy's wait.
    from review_app import sessions

    sessions.revoke_all(server.app.extensions["kaalwatch"].ws)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport=viewport)
            page.goto(server.url + "login")
            page.fill("input[name=password]", PASSWORD)
            page.click("form button.primary")
            wait = page.locator("#etsy-wait")
            expect(wait).to_contain_text("no Etsy request before")
            page.screenshot(path=str(ARTIFACTS / f"{name}-etsy-wait.png"), full_page=True)
        finally:
            browser.close()
