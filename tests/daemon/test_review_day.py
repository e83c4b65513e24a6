"""A working day on the review page, in the system's Chromium, against `kaalwatch run` and the sandbox shop.

What the owner must be able to trust: a cancelled or refunded job says so loudly and offers no work; a
delivered job shows no warning about its own files and no countdown; a warning goes away once its cause
is fixed; search finds an accented buyer and a pet's name from the default view; undo puts a job back;
and on a 390 px phone no page scrolls sideways. Screenshots of each state go to ``test-artifacts/``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from kaalwatch.model import JobState
from kaalwatch.sandbox.seed import COUPLE_LISTING, FAMILY_LISTING, PET_LISTING
from kaalwatch.store import Workspace
from tests.daemon.conftest import Connected, DaemonProcess
from tests.support.browser import ARGS, ARTIFACTS, CHROMIUM, record_console_errors
from tests.support.polling import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no system Chromium at /usr/bin/chromium"),
]


def artwork(seed: int, size: tuple[int, int] = (900, 700)) -> bytes:
    """A painting-like PNG (soft background, a figure), different for each seed; the pet-portrait listing
    promises an 8x10 in print at 300 DPI, so the one to deliver is saved at 2400x3000."""
    image = Image.new("RGB", size, (236 - seed * 9 % 60, 222, 205 + seed * 7 % 40))
    draw = ImageDraw.Draw(image)
    draw.ellipse((300, 180, 600, 520), fill=(150 + seed * 13 % 80, 105, 70))
    draw.ellipse((360, 90, 540, 260), fill=(170, 125, 85))
    draw.polygon([(370, 120), (390, 40), (440, 110)], fill=(120, 85, 55))
    draw.polygon([(460, 110), (510, 40), (530, 120)], fill=(120, 85, 55))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def folder_of(ws: Workspace, receipt_id: int) -> Path | None:
    return next((p for p in ws.orders_dir.iterdir()
                 if p.name.startswith(f"{receipt_id} ") and (p / "order.yaml").is_file()), None)


def state_of(ws: Workspace, receipt_id: int, job: int = 0) -> JobState:
    """The job's state as the list will show it: from the index (written just after the manifest)."""
    rows = [row for row in ws.jobs(limit=10_000) if row.receipt_id == receipt_id]
    return rows[job].state if len(rows) > job else JobState.NEW


def test_a_day_on_the_review_page(connected: Connected, daemon_factory: Callable[..., DaemonProcess]) -> None:
    from playwright.sync_api import expect, sync_playwright

    ws, sb = connected.ws, connected.sandbox
    ids: dict[str, int] = {}
    ids["zoe"] = sb.add_order(PET_LISTING, buyer_name="Zoë Lindqvist", answers={7002: "Pepperoni"},
                              uploads=2)["receipt_id"]
    ids["cancel"] = sb.add_order(COUPLE_LISTING, buyer_name="Bilal Khan")["receipt_id"]
    ids["refund"] = sb.add_order(PET_LISTING, buyer_name="Nia Brown", uploads=1)["receipt_id"]
    ids["partial"] = sb.add_order(FAMILY_LISTING, buyer_name="Oskar Berg")["receipt_id"]
    ids["deliver"] = sb.add_order(PET_LISTING, buyer_name="Jamal Wright", answers={7002: "Mochi"},
                                  uploads=1)["receipt_id"]
    ids["multi"] = sb.add_order(FAMILY_LISTING, buyer_name="Priya Patel",
                                extra_listing_ids=[PET_LISTING])["receipt_id"]
    daemon = daemon_factory(connected.config, ws.root, "day").start()
    daemon.wait_healthy()
    base = wait_for(lambda: daemon.health().get("review_url"), 20, what="the review page's address").rstrip("/")
    folders = {name: wait_for(lambda rid=rid: folder_of(ws, rid), 40, what=f"the folder of {name}")
               for name, rid in ids.items()}
    for name in ("cancel", "deliver"):
        (folders[name] / "portrait.png").write_bytes(artwork(ids[name] % 97, (2400, 3000) if name == "deliver"
                                                             else (900, 700)))
        wait_for(lambda name=name: ws.load(ids[name]).jobs[0].versions and ws.load(ids[name]).jobs[0].versions[0]
                 .preview, 30, what=f"a previewed version of {name}")
    sb.cancel(ids["cancel"])
    sb.refund(ids["refund"])
    sb.refund(ids["partial"], partial=True)
    wait_for(lambda: state_of(ws, ids["cancel"]) is JobState.CANCELLED
             and state_of(ws, ids["refund"]) is JobState.CANCELLED
             and any(row.marker == "partially refunded" for row in ws.jobs(limit=10_000)
                     if row.receipt_id == ids["partial"]), 40, what="the cancel and refunds")

    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    job_url = {name: f"{base}/jobs/{rid}/{ws.load(rid).jobs[0].job_id}" for name, rid in ids.items()}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            record_console_errors(page, problems)

            page.goto(base + "/")
            expect(page.locator("h1")).to_have_text("Today")
            expect(page.locator("#group-upload, #group-build, #group-proof")).to_have_count(1)  # v1 of "deliver"
            expect(page.locator("#group-start")).to_contain_text("Priya Patel")  # the two-item order, together
            expect(page.locator("#group-start .order-head", has_text="Priya Patel")).to_contain_text("2 items")
            # A job with no version yet shows the buyer's photo, so the list is recognisable at a glance.
            photo = page.locator(".today-job", has_text="Zoë Lindqvist").locator("img.photo")
            expect(photo).to_have_count(1)
            wait_for(lambda: photo.evaluate("img => img.complete && img.naturalWidth > 0"), 10, what="the photo")
            page.screenshot(path=str(ARTIFACTS / "day-today.png"), full_page=True)

            # Cancelled: a banner, no work actions, no proof message; a marker on the list.
            page.goto(job_url["cancel"])
            expect(page.locator("#stop-banner")).to_contain_text("Cancelled on Etsy")
            for gone in ("#approve-button", "#proof-button", "#proof-message", "#build-button"):
                expect(page.locator(gone)).to_have_count(0)
            page.screenshot(path=str(ARTIFACTS / "day-cancelled.png"), full_page=True)
            page.goto(job_url["refund"])
            expect(page.locator("#stop-banner")).to_contain_text("fully refunded")
            page.screenshot(path=str(ARTIFACTS / "day-refunded.png"), full_page=True)
            page.goto(job_url["partial"])
            expect(page.locator("#stop-banner")).to_contain_text("Partially refunded")
            page.screenshot(path=str(ARTIFACTS / "day-partially-refunded.png"), full_page=True)
            page.goto(f"{base}/jobs?state=all")
            row = page.locator("table.jobs tbody tr", has_text="Bilal Khan")
            expect(row.locator(".marker")).to_have_text("cancelled")

            # Delivered: approve, build the files (the primary next step), Etsy completes the order.
            page.goto(job_url["deliver"])
            expect(page.locator("#proof-button")).to_have_class(re.compile(r"\bprimary\b"))
            page.click("#approve-button")
            expect(page.locator("#job-state")).to_have_text("approved")
            expect(page.locator("#build-button")).to_have_class(re.compile(r"\bprimary\b"))
            page.click("#build-button")
            expect(page.locator("#job-state")).to_have_text("ready to deliver")
            sb.complete(ids["deliver"])
            wait_for(lambda: state_of(ws, ids["deliver"]) is JobState.DELIVERED, 40, what="the delivery")
            page.goto(job_url["deliver"])
            expect(page.locator("#job-state")).to_have_text("delivered")
            expect(page.locator("#countdown")).to_have_count(0)
            expect(page.locator("body")).not_to_contain_text("do not upload")
            expect(page.locator("#approve-button, #proof-button, #build-button")).to_have_count(0)
            page.screenshot(path=str(ARTIFACTS / "day-delivered.png"), full_page=True)

            # A warning clears once its cause is fixed: a file at the top of the two-item order.
            multi = ws.load(ids["multi"])
            (folders["multi"] / "sketch.png").write_bytes(artwork(5))
            # The manifest is written first, then the index the list reads: wait for the index.
            wait_for(lambda: [w for row in ws.jobs(limit=1000) if row.receipt_id == ids["multi"] for w in row.errors],
                     30, what="the misplaced-file warning in the index")
            page.goto(f"{base}/jobs")
            rows = page.locator("table.jobs tr", has_text=str(ids["multi"]))
            expect(rows.locator(".warning-line")).to_have_count(2)
            page.goto(job_url["multi"])
            expect(page.locator(".warning-line")).to_contain_text("sketch.png")
            page.screenshot(path=str(ARTIFACTS / "day-warning.png"), full_page=True)
            (folders["multi"] / "sketch.png").rename(folders["multi"] / multi.jobs[0].folder / "sketch.png")
            page.click("button:has-text('Rescan folder now')")
            expect(page.locator(".warning-line")).to_have_count(0)
            page.goto(f"{base}/jobs")
            expect(page.locator(".warning-line")).to_have_count(0)

            # Search from the default view: no accent typed, and a pet's name from the answers.
            page.goto(base + "/")
            page.fill("#nav-search", "zoe")
            page.press("#nav-search", "Enter")
            expect(page.locator("table.jobs tbody tr", has_text="Zoë Lindqvist")).to_have_count(1)
            rows = page.locator("table.jobs tbody tr .buyer").all_inner_texts()
            assert rows and all("Zoë" in buyer for buyer in rows), rows  # the seeded Zoë Müller too, nobody else
            page.fill("#nav-search", "pepperoni")
            page.press("#nav-search", "Enter")
            expect(page.locator("table.jobs tbody tr")).to_have_count(1)
            expect(page.locator("table.jobs tbody tr")).to_contain_text("Zoë Lindqvist")
            page.fill("#nav-search", "jamal")  # delivered: found although the default list is active jobs
            page.press("#nav-search", "Enter")
            expect(page.locator("table.jobs tbody tr", has_text=str(ids["deliver"]))).to_contain_text("delivered")

            # On hold with a reason, then undo puts the job back.
            page.goto(job_url["zoe"])
            before = page.locator("#job-state").inner_text()
            page.fill("form[action$='/hold'] input[name=reason]", "Buyer is travelling until Monday")
            page.click("button:has-text('Put on hold')")
            expect(page.locator("#job-state")).to_have_text("on hold")
            expect(page.locator("#hold-reason")).to_have_text("Buyer is travelling until Monday")
            expect(page.locator("#resume-button")).to_have_text("Resume work")
            expect(page.locator("#countdown")).to_have_count(0)
            page.screenshot(path=str(ARTIFACTS / "day-on-hold.png"), full_page=True)
            page.click("#undo-button")
            expect(page.locator("#job-state")).to_have_text(before)
            assert ws.load(ids["zoe"]).history[-1].event == "undone"

            # A phone: nothing scrolls sideways; the job's actions are there.
            phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
            phone.on("pageerror", lambda e: problems.append(str(e)))
            for name, url in (("today", base + "/"), ("list", f"{base}/jobs?state=all"),
                              ("job", job_url["deliver"]), ("job-multi", job_url["multi"]),
                              ("job-zoe", job_url["zoe"])):
                phone.goto(url)
                width = phone.evaluate("document.documentElement.scrollWidth")
                phone.screenshot(path=str(ARTIFACTS / f"day-phone-{name}.png"), full_page=True)
                assert width <= 390, f"{name} is {width} px wide on a 390 px phone"
            phone.goto(job_url["zoe"])
            expect(phone.locator("#actions button").first).to_be_visible()
        finally:
            browser.close()
    assert not problems, problems
    assert daemon.terminate()[0] == 0, daemon.output()
