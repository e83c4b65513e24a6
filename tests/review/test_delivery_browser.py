"""The delivery panel in a real Chromium: see each promised file's frame before building, drag the print's frame,
meet the warnings, deliver anyway, and see thumbnails of the files built — desktop and phone."""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from kaalwatch import lifecycle
from kaalwatch.model import AddOn, Answer, Order, Version, utcnow
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from review_app import create_app
from review_app.server import ReviewServer
from tests.review.conftest import PASSWORD, store_password
from tests.support.browser import ARGS, ARTIFACTS, CHROMIUM, record_console_errors

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="no system Chromium at /usr/bin/chromium"),
]
SIDE = 1500  # a square pet portrait, too small for the promised 2048 px web file and a 300 DPI 8x10


def _art() -> Image.Image:
    image = Image.merge("RGB", (Image.linear_gradient("L").rotate(90).resize((SIDE, SIDE)),
                                Image.linear_gradient("L").resize((SIDE, SIDE)),
                                Image.radial_gradient("L").resize((SIDE, SIDE))))
    draw = ImageDraw.Draw(image)
    draw.ellipse((450, 120, 1050, 720), fill=(250, 220, 120))  # the pet's head
    draw.polygon([(470, 260), (420, 40), (620, 160)], fill=(120, 70, 30))  # ears, near the top
    draw.polygon([(1030, 260), (1080, 40), (880, 160)], fill=(120, 70, 30))
    draw.rectangle((0, 0, SIDE - 1, SIDE - 1), outline=(255, 0, 0), width=12)
    return image


@pytest.fixture
def approved(ws: Workspace, make_order: Callable[..., Order]) -> Order:
    """An approved square artwork saved the way the watcher records it (copy, preview, thumbnail, size)."""
    order = make_order(titles=["Custom Pet Portrait from Photo, Digital Dog Illustration, Pet Memorial Gift"],
                       workflow="pet portrait", buyer="Grace Hopper",
                       answers=[Answer(question="Pet name", answer="Biscuit")])
    ws.add_order(order)
    job_id = order.jobs[0].job_id
    art = _art()
    buffer = io.BytesIO()
    art.save(buffer, "PNG")
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    copy = ws.version_copy_path(order.receipt_id, job_id, 1, digest, ".png")
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_bytes(data)
    preview, thumb = ws.preview_paths(order.receipt_id, job_id, 1, digest[:12])
    preview.parent.mkdir(parents=True, exist_ok=True)
    art.resize((800, 800)).save(preview, "JPEG")
    art.resize((400, 400)).save(thumb, "JPEG")
    with ws.edit(order.receipt_id) as current:
        lifecycle.add_version(current, job_id, Version(number=1, source_name="biscuit.png", sha256=digest,
                                                       size=len(data), saved_at=utcnow(),
                                                       copy=ws.relative_to_tool(copy)), actor="watcher")
        lifecycle.update_version(current, job_id, 1, actor="watcher", preview=ws.relative_to_tool(preview),
                                 thumb=ws.relative_to_tool(thumb), width=SIDE, height=SIDE, kind="png")
        lifecycle.approve(current, job_id, 1)
    return ws.load(order.receipt_id)


@pytest.fixture
def server(settings: Settings, ws: Workspace, approved: Order) -> Iterator[ReviewServer]:
    store_password(ws)
    with ReviewServer(create_app(settings, ws), "127.0.0.1", 0) as running:
        yield running


def _pdf_image(path: Path) -> Image.Image:
    data = path.read_bytes()
    start = data.index(b"\xff\xd8\xff")
    return Image.open(io.BytesIO(data[start:data.rindex(b"\xff\xd9") + 2])).convert("RGB")


def test_owner_sees_drags_and_delivers_anyway(server: ReviewServer, ws: Workspace, approved: Order) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    rid, job_id = approved.receipt_id, approved.jobs[0].job_id
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            record_console_errors(page, problems, failed_responses=True)
            page.goto(f"{server.url}/login")
            page.fill("input[name=password]", PASSWORD)
            page.click("button:has-text('Log in')")
            page.goto(f"{server.url}/jobs/{rid}/{job_id}#delivery")

            # Before building: every promised file, its frame and its final pixels; the missed promises in amber.
            panel = page.locator("#delivery")
            plans = panel.locator("figure.plan")
            expect(plans).to_have_count(3)
            expect(plans.nth(0)).to_contain_text("1500×1500 px")
            expect(plans.nth(1)).to_contain_text("1500 px of the promised 2048 px")
            print_plan = panel.locator("figure.plan[data-key='print-8x10']")
            expect(print_plan).to_contain_text("1200×1500 px · portrait")
            expect(print_plan).to_contain_text("150 DPI at 8x10 in, promised 300")
            expect(print_plan).to_contain_text("keeps 80% of the art")
            expect(print_plan.locator("rect.crop")).to_have_attribute("x", "150")  # centred by default
            expect(print_plan.locator("image")).to_have_count(1)
            panel.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "delivery-plan-desktop.png"), full_page=True)

            # Drag the print's frame to the left, as a person would, then save it.
            svg = print_plan.locator("svg.frame")
            box = svg.bounding_box()
            assert box is not None
            cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(cx, cy)
            page.mouse.down()
            page.mouse.move(cx - 8, cy, steps=4)
            page.mouse.up()
            start = int(print_plan.get_attribute("data-start") or "-1")
            assert 0 <= start < 150, start  # moved left, within the 300 px the crop may slide
            expect(print_plan.locator("rect.crop")).to_have_attribute("x", str(start))
            print_plan.locator("button[name=save]").click()
            expect(page.locator(".flash.ok")).to_contain_text("Frame of print-8x10 saved")
            moved = page.locator("#delivery figure.plan[data-key='print-8x10'] rect.crop")
            expect(moved).to_have_attribute("x", str(start))  # what the server plans is what was dragged

            # Building without saying "anyway" builds nothing and says why.
            page.locator("#delivery form.build button").click()
            expect(page.locator(".flash.error")).to_contain_text("Nothing built: 2 promise(s) not met")
            expect(page.locator("#delivery table.deliverables")).to_have_count(0)
            page.locator("#delivery form.build input[name=anyway]").check()
            page.locator("#delivery form.build button").click()
            expect(page.locator(".flash.ok")).to_contain_text("3 file(s) ready")
            expect(page.locator(".flash.ok")).to_contain_text("Delivered anyway despite 2 warning(s)")

            # After building: thumbnails of the files themselves, their pixels, the warnings they went out with.
            thumbs = page.locator("#delivery img.built-thumb")
            expect(thumbs).to_have_count(3)
            page.wait_for_function("() => [...document.querySelectorAll('img.built-thumb')]"
                                   ".every(i => i.complete && i.naturalWidth > 0)")
            rows = page.locator("#delivery table.deliverables tbody tr")
            expect(rows.filter(has_text=".pdf")).to_contain_text("1200×1500")
            expect(rows.filter(has_text=".pdf")).to_contain_text("delivered anyway")
            expect(rows.filter(has_text=".jpg")).to_contain_text("KB")
            page.locator("#delivery").scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "delivery-built-desktop.png"), full_page=True)

            phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
            phone.context.add_cookies(page.context.cookies())
            phone.goto(f"{server.url}/jobs/{rid}/{job_id}#delivery")
            expect(phone.locator("#delivery img.built-thumb")).to_have_count(3)
            overflow = phone.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"the phone page scrolls sideways by {overflow}px"
            phone.locator("#delivery").screenshot(path=str(ARTIFACTS / "delivery-built-phone.png"))
        finally:
            browser.close()
    assert problems == []

    # The file is the frame that was dragged: the print is exactly the artwork cut at the box the page drew.
    order = ws.load(rid)
    pdf = next(d for d in order.jobs[0].deliverables if d.name.endswith(".pdf"))
    built = _pdf_image(ws.folder_of(rid) / "deliver" / pdf.name)
    expected = _art().crop((start, 0, start + 1200, SIDE))
    assert built.size == expected.size
    assert sum(ImageStat.Stat(ImageChops.difference(built, expected)).mean) / 3 < 3
    shifted = _art().crop((start + 6, 0, start + 1206, SIDE))  # a few pixels off would show
    assert sum(ImageStat.Stat(ImageChops.difference(built, shifted)).mean) / 3 > \
        sum(ImageStat.Stat(ImageChops.difference(built, expected)).mean) / 3 + 0.5
    anyway = [e for e in order.history if e.event == "delivered_anyway"]
    assert len(anyway) == 1 and re.search(r"150 DPI", " ".join(anyway[0].details["warnings"]))


@pytest.fixture
def rushed_pair(ws: Workspace, make_order: Callable[..., Order]) -> Order:
    """Two portraits of one listing, bought with a Rush add-on (what sync makes of such a receipt)."""
    order = make_order(titles=["Custom Pet Portrait from Photo"], workflow="pet portrait", days=6)
    order.jobs[0].quantity = 2
    lifecycle.add_addon(order, AddOn(transaction_id="9", listing_id=1_500_000_005, title="Rush Processing Add-on",
                                     workflow="rush"), rush_days=2, urgent=True)
    ws.add_order(order)
    return ws.load(order.receipt_id)


SIZES: tuple[tuple[str, dict[str, int]], ...] = (("desktop", {"width": 1280, "height": 900}),
                                                 ("phone", {"width": 390, "height": 844}))


@contextlib.contextmanager
def owner_pages(settings: Settings, ws: Workspace) -> Iterator[Iterator[tuple[str, Page, str]]]:
    """A running page and the owner logged in: yields (size name, page, base URL) for desktop, then phone."""
    from playwright.sync_api import sync_playwright

    store_password(ws)
    ARTIFACTS.mkdir(exist_ok=True)
    with ReviewServer(create_app(settings, ws), "127.0.0.1", 0) as running, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)

        def pages() -> Iterator[tuple[str, Page, str]]:
            for name, viewport in SIZES:
                page = browser.new_page(viewport=viewport)
                page.goto(f"{running.url}/login")
                page.fill("input[name=password]", PASSWORD)
                page.click("button:has-text('Log in')")
                try:
                    yield name, page, running.url
                finally:
                    page.close()

        try:
            yield pages()
        finally:
            browser.close()


def test_addon_and_quantity_are_shown_on_the_job(settings: Settings, ws: Workspace, rushed_pair: Order) -> None:
    from playwright.sync_api import expect

    rid, job_id = rushed_pair.receipt_id, rushed_pair.jobs[0].job_id
    with owner_pages(settings, ws) as pages:
        for name, page, url in pages:
            page.goto(f"{url}/jobs/{rid}/{job_id}#delivery")
            panel = page.locator("#delivery")
            expect(panel.locator(".urgent")).to_have_text("Urgent")
            expect(panel.locator(".addon")).to_contain_text("Rush Processing Add-on (due 2 days sooner, urgent)")
            expect(panel.locator("[data-check=quantity]")).to_contain_text("✗ 2 portraits ordered")
            expect(page.locator("body")).to_contain_text("ship by " + rushed_pair.ship_by.date().isoformat())
            panel.screenshot(path=str(ARTIFACTS / f"delivery-addon-quantity-{name}.png"))


def test_addon_paid_apart_is_on_today_and_on_the_order_it_rushes(settings: Settings, ws: Workspace,
                                                                 make_order: Callable[..., Order]) -> None:
    """A Rush bought in an order of its own has no job: Today lists it until Etsy completes it, and the order
    it rushes reminds the owner to complete both."""
    from playwright.sync_api import expect

    portrait = make_order(buyer="Rosa Returning", titles=["Custom Pet Portrait from Photo"], days=6)
    rush = make_order(buyer="Rosa Returning", jobs=0)
    stray = make_order(buyer="Sam Stranger", jobs=0)
    for alone in (rush, stray):
        lifecycle.add_addon(alone, AddOn(transaction_id=str(alone.receipt_id), listing_id=1_500_000_005,
                                         title="Rush Processing Add-on", workflow="rush"), rush_days=2, urgent=True)
    lifecycle.add_addon(portrait, AddOn(transaction_id=str(rush.receipt_id), listing_id=1_500_000_005,
                                        title="Rush Processing Add-on", workflow="rush", receipt_id=rush.receipt_id),
                        rush_days=2, urgent=True)
    lifecycle.addons_applied(rush, portrait.receipt_id)
    for made in (portrait, rush, stray):
        ws.add_order(made)
    with owner_pages(settings, ws) as pages:
        for name, page, url in pages:
            errors: list[str] = []
            record_console_errors(page, errors, failed_responses=True)
            page.goto(url)
            group = page.locator("#group-addons")
            expect(group.locator("h2")).to_contain_text("Add-ons paid apart 2")
            linked = group.locator(f"[data-receipt='{rush.receipt_id}']")
            expect(linked).to_contain_text(f"Applied to order #{portrait.receipt_id}")
            expect(linked.locator("a", has_text="Open on Etsy")).to_have_attribute(
                "href", re.compile(rf"order_id={rush.receipt_id}$"))
            expect(group.locator(f"[data-receipt='{stray.receipt_id}']")).to_contain_text(
                "No open order of this buyer here")
            group.screenshot(path=str(ARTIFACTS / f"today-addons-{name}.png"))
            linked.locator("a", has_text=f"order #{portrait.receipt_id}").click()
            expect(page.locator("h1")).to_contain_text("Custom Pet Portrait from Photo")
            reminder = page.locator("#delivery [data-check=addon-receipt]")
            expect(reminder).to_contain_text(f"in an order of its own, #{rush.receipt_id}")
            expect(reminder.locator("a")).to_have_attribute("href", re.compile(rf"order_id={rush.receipt_id}$"))
            page.locator("#delivery").screenshot(path=str(ARTIFACTS / f"delivery-addon-apart-{name}.png"))
            assert errors == []
