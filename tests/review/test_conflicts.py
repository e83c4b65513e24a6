"""A sync conflict on the job page: both candidates side by side, approval refused until the owner chooses
(real Chromium, desktop and phone), and the POST route through the Flask client."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from flask.testing import FlaskClient

from kaalwatch import lifecycle
from kaalwatch.model import Order
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from review_app import create_app
from review_app.server import ReviewServer
from tests.review.conftest import PASSWORD, add_versions, post, store_password
from tests.support.browser import ARGS, ARTIFACTS, CHROMIUM, record_console_errors

VIEWPORTS = (("desktop", {"width": 1280, "height": 900}), ("phone", {"width": 390, "height": 844}))
CONFLICT = "portrait v1 (Ada's conflicted copy 2026-11-29).jpg"


@pytest.fixture
def conflicted(ws: Workspace, make_order: Callable[..., Order]) -> Order:
    """Two versions; the first one's bytes reappeared under a Dropbox conflict name."""
    order = make_order(buyer="Grace Hopper", titles=["Dog portrait of Biscuit"])
    ws.add_order(order)
    job_id = order.jobs[0].job_id
    add_versions(ws, order.receipt_id, job_id, 2)
    with ws.edit(order.receipt_id) as o:
        sha = o.jobs[0].versions[0].sha256
        lifecycle.note_conflict(o, job_id, CONFLICT, version=1, original="portrait v2.jpg", sha256=sha)
    return ws.load(order.receipt_id)


def test_approval_is_refused_until_the_conflict_is_resolved(client: FlaskClient, ws: Workspace,
                                                            conflicted: Order) -> None:
    rid, job_id = conflicted.receipt_id, conflicted.jobs[0].job_id
    page = f"/jobs/{rid}/{job_id}"
    body = client.get(page).get_data(as_text=True)
    assert "Sync conflict: which copy is current?" in body and "Version 1 is current" in body
    response = post(client, f"{page}/approve", {"version": "2"}, page=page)
    assert "unresolved sync conflict" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert ws.load(rid).jobs[0].approved_version is None
    post(client, f"{page}/conflict", {"file": "not a conflict.jpg", "version": "2"}, page=page)
    assert [c.file for c in ws.load(rid).jobs[0].conflicts] == [CONFLICT]  # an unknown file changes nothing
    post(client, f"{page}/conflict", {"file": CONFLICT, "version": "2"}, page=page)
    job = ws.load(rid).jobs[0]
    assert job.conflicts == [] and ws.load(rid).history[-1].details["current"] == 2
    assert [c.file for c in job.settled_conflicts] == [CONFLICT]
    post(client, f"{page}/approve", {"version": "2"}, page=page)
    assert ws.load(rid).jobs[0].approved_version == 2


@pytest.fixture
def server(settings: Settings, ws: Workspace, conflicted: Order) -> Iterator[ReviewServer]:
    store_password(ws)
    with ReviewServer(create_app(settings, ws), "127.0.0.1", 0) as running:
        yield running


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="no system Chromium at /usr/bin/chromium")
def test_the_owner_compares_both_copies_and_keeps_one(server: ReviewServer, ws: Workspace,
                                                      conflicted: Order) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            for name, viewport in VIEWPORTS:
                page = browser.new_page(viewport=viewport)
                record_console_errors(page, problems)
                page.goto(f"{server.url}/jobs/{conflicted.receipt_id}/{conflicted.jobs[0].job_id}")
                if "/login" in page.url:
                    page.fill("input[name=password]", PASSWORD)
                    page.click("button:has-text('Log in')")
                section = page.locator("section.conflict")
                expect(section).to_be_visible()
                expect(section.locator("figure img")).to_have_count(2)
                expect(section.locator("figcaption").first).to_contain_text(CONFLICT)
                boxes = [section.locator("figure").nth(i).bounding_box() for i in range(2)]
                assert boxes[0] and boxes[1]
                if name == "desktop":  # side by side; stacked on a phone
                    assert abs(boxes[0]["y"] - boxes[1]["y"]) < 2 and boxes[1]["x"] > boxes[0]["x"]
                else:
                    assert boxes[1]["y"] > boxes[0]["y"] and boxes[0]["width"] <= 390
                section.screenshot(path=str(ARTIFACTS / f"review-conflict-{name}.png"))
                page.screenshot(path=str(ARTIFACTS / f"review-conflict-page-{name}.png"), full_page=True)
                if name == "phone":
                    section.locator("button:has-text('Version 2 is current')").click()
                    expect(page.locator(".flash.ok")).to_have_text(re.compile("Version 2 kept as current"))
                    expect(page.locator("section.conflict")).to_have_count(0)
                    page.screenshot(path=str(ARTIFACTS / "review-conflict-resolved-phone.png"), full_page=True)
                page.close()
        finally:
            browser.close()
    assert ws.load(conflicted.receipt_id).jobs[0].conflicts == []
    assert not problems, problems
