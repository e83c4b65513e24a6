"""Retention on the page, in a real Chromium: the header says when it last ran and warns about inactive
orders about to be purged; the job page says what happens to the buyer's data and keeps it longer."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import pytest

from kaalwatch import retention
from kaalwatch.model import Order
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from review_app import create_app
from review_app.server import ReviewServer
from tests.review.conftest import PASSWORD, store_password
from tests.support.browser import ARGS, ARTIFACTS, CHROMIUM, record_console_errors

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no system Chromium at /usr/bin/chromium"),
]


@pytest.fixture
def soon(settings: Settings) -> Settings:
    """Inactive orders are purged after five days here, so a new open order is inside its warning week."""
    return dataclasses.replace(settings, retention=dataclasses.replace(settings.retention, abandoned_days=5))


@pytest.fixture
def server(soon: Settings, ws: Workspace, make_order: Callable[..., Order]) -> Iterator[tuple[ReviewServer, Order]]:
    order = make_order(buyer="Grace Hopper", titles=["Dog portrait of Biscuit"])
    ws.add_order(order)
    retention.scheduled_purge(ws, soon)
    store_password(ws)
    with ReviewServer(create_app(soon, ws), "127.0.0.1", 0) as running:
        yield running, order


def test_header_warns_and_job_page_keeps_longer(server: tuple[ReviewServer, Order], ws: Workspace) -> None:
    from playwright.sync_api import expect, sync_playwright

    running, order = server
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            viewports = (("desktop", {"width": 1280, "height": 900}), ("phone", {"width": 390, "height": 844}))
            for name, viewport in viewports:
                page = browser.new_page(viewport=viewport)
                record_console_errors(page, problems)
                page.goto(running.url)
                page.fill("input[name=password]", PASSWORD)
                page.click("button:has-text('Log in')")
                status = page.locator("#status")
                expect(status).to_contain_text("retention ")
                expect(status).to_contain_text("1 inactive order(s) purged within a week")
                page.screenshot(path=str(ARTIFACTS / f"retention-header-{name}.png"), full_page=True)
                page.goto(f"{running.url}jobs/{order.receipt_id}/{order.jobs[0].job_id}")
                buyer_data = page.locator("dt:has-text('Buyer data') + dd")
                expect(buyer_data).to_contain_text("(no activity)")
                page.screenshot(path=str(ARTIFACTS / f"retention-job-{name}.png"), full_page=True)
                page.close()
            page = browser.new_page(viewport={"width": 390, "height": 844})
            page.goto(running.url)
            page.fill("input[name=password]", PASSWORD)
            page.click("button:has-text('Log in')")
            page.goto(f"{running.url}jobs/{order.receipt_id}/{order.jobs[0].job_id}")
            page.fill("input[name=days]", "30")
            page.fill("form[action$='/keep'] input[name=reason]", "buyer disputes the charge")
            page.click("button:has-text('Keep longer')")
            expect(page.locator(".flash.ok")).to_contain_text("Buyer data kept until")
            expect(page.locator("dt:has-text('Buyer data') + dd")).to_contain_text("kept until")
            page.screenshot(path=str(ARTIFACTS / "retention-job-kept-phone.png"), full_page=True)
        finally:
            browser.close()
    kept = ws.load(order.receipt_id)
    assert kept.keep_until is not None
    assert [e.details["reason"] for e in kept.history if e.event == "retention_kept"] == ["buyer disputes the charge"]
    assert not problems, problems
