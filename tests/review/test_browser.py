"""The review page in a real Chromium (the system's, driven by Playwright): log in, search, compare, approve."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest

from kaalwatch import lifecycle
from kaalwatch.model import Answer, Order
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from review_app import create_app
from review_app.server import ReviewServer
from tests.review.conftest import PASSWORD, add_reference, add_versions, jpeg, store_password
from tests.support.browser import ARGS, ARTIFACTS, CHROMIUM, record_console_errors

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no system Chromium at /usr/bin/chromium"),
]


@pytest.fixture
def shop(settings: Settings, ws: Workspace, make_order: Callable[..., Order]) -> Order:
    """A small, realistic workspace: a few jobs in different states, one with three versions."""
    titles = [("Ada Lovelace", "Family portrait, 3 people", 12), ("Alan Turing", "Custom pet portrait", -1),
              ("Katherine Johnson", "Couple illustration", 5)]
    for buyer, title, days in titles:
        ws.add_order(make_order(buyer=buyer, titles=[title], days=days))
    target = make_order(buyer="Grace Hopper", titles=["Dog portrait of Biscuit"], days=3,
                        answers=[Answer(question="Pet's name", answer="Biscuit"),
                                 Answer(question="Background", answer="<script>alert(1)</script> sage green")])
    target.message_from_buyer = "He is a very good boy, please keep the white patch on his nose."
    ws.add_order(target)
    add_versions(ws, target.receipt_id, target.jobs[0].job_id, 3)
    add_reference(ws, target.receipt_id, "biscuit.jpg", jpeg((400, 300), (120, 90, 40)), label="On the sofa")
    with ws.edit(target.receipt_id) as order:
        lifecycle.add_note(order, "Buyer prefers warm light.", target.jobs[0].job_id)
    ws.write_state("health", {"pid": 1, "updated_at": __import__("time").time(), "watcher_alive": True,
                              "queue_length": 0})
    return target


@pytest.fixture
def server(settings: Settings, ws: Workspace, shop: Order) -> Iterator[ReviewServer]:
    store_password(ws)
    app = create_app(settings, ws)
    with ReviewServer(app, "127.0.0.1", 0) as running:
        yield running


def test_owner_finds_compares_and_approves(server: ReviewServer, ws: Workspace, shop: Order) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            record_console_errors(page, problems, failed_responses=True)

            page.goto(server.url)
            expect(page).to_have_url(re.compile(r"/login\?next=/"))
            page.fill("input[name=password]", PASSWORD)
            page.click("button:has-text('Log in')")
            expect(page.locator("h1")).to_have_text("Today")
            expect(page.locator("#group-overdue")).to_contain_text("Alan Turing")
            page.click(".mainnav a:has-text('All jobs')")
            expect(page.locator("table.jobs")).to_be_visible()
            expect(page.locator("table.jobs tbody tr")).to_have_count(4)
            expect(page.locator("tr.overdue")).to_contain_text("Custom pet portrait")
            page.screenshot(path=str(ARTIFACTS / "review-jobs-list.png"), full_page=True)

            page.fill("#nav-search", "hopper")
            page.press("#nav-search", "Enter")
            expect(page.locator("table.jobs tbody tr")).to_have_count(1)
            page.click("a:has-text('Dog portrait of Biscuit')")
            expect(page.locator("h1")).to_contain_text("Dog portrait of Biscuit")
            expect(page.locator("dd").filter(has_text="sage green")).to_contain_text("<script>alert(1)</script>")

            # The viewer at the top shows the latest version; compare v2 with v3 (tests/review/test_viewer.py
            # drives every mode, the zoom and the live page against a real watcher).
            viewer = page.locator("#viewer")
            expect(viewer).to_have_attribute("data-version", "3")
            page.click(".viewer-modes button[data-mode=wipe]")
            expect(viewer).to_have_attribute("data-mode", "wipe")
            expect(viewer).to_have_attribute("data-against", "2")
            page.wait_for_function("() => document.getElementById('viewer').dataset.pending === '0'")
            page.locator("#viewer").screenshot(path=str(ARTIFACTS / "review-compare-wipe.png"))
            page.click(".viewer-modes button[data-mode=diff]")
            expect(viewer).to_have_attribute("data-mode", "diff")
            page.wait_for_function("() => document.getElementById('viewer').dataset.pending === '0'")
            page.locator("#viewer").screenshot(path=str(ARTIFACTS / "review-compare-difference.png"))
            page.click(".viewer-modes button[data-mode=side]")
            page.screenshot(path=str(ARTIFACTS / "review-job-page.png"), full_page=True)

            page.select_option("#approve-version", "2")
            page.click("#approve-button")
            expect(page.locator(".flash.ok")).to_have_text("Version 2 approved.")
            expect(page.locator("#job-state")).to_have_text("approved")

            page.click(".crumbs a:has-text('All jobs')")
            page.click("a.filter.badge-approved")
            row = page.locator("table.jobs tbody tr")
            expect(row).to_have_count(1)
            expect(row).to_contain_text("Dog portrait of Biscuit")
            expect(row.locator(".badge")).to_have_text("approved")
            page.screenshot(path=str(ARTIFACTS / "review-jobs-approved.png"), full_page=True)
        finally:
            browser.close()
    assert ws.load(shop.receipt_id).jobs[0].approved_version == 2
    assert not problems, problems  # no CSP violation, no script error
