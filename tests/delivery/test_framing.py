"""Crops that follow the art, with real pixels: portrait, landscape and square artworks through every default
deliverable (orientation, share kept, pixels, DPI, bytes, names), a moved frame built exactly as planned, margins."""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageDraw, ImageStat

from kaalwatch import delivery
from kaalwatch.delivery.framing import plan
from kaalwatch.model import Answer, Order
from kaalwatch.settings import Deliverable as Promise
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from kaalwatch.workflows import by_name
from tests.delivery.conftest import add_version, approve, deliver_files, encode, with_workflow

ETSY_TITLE = ("Custom Pet Portrait from Photo, Digital Dog Illustration, Personalized Cat Painting, "
              "Pet Memorial Gift | Printable Wall Art")
MB20 = 20_000_000


def artwork(width: int, height: int) -> Image.Image:
    """A drawing-like image: smooth gradients, a frame line at the very edge (the "ears"), and a grid of
    marks, so every part of it is different from every other part and a wrong crop shows."""
    red = Image.linear_gradient("L").resize((width, height))
    green = Image.linear_gradient("L").rotate(90).resize((width, height))
    blue = Image.radial_gradient("L").resize((width, height))
    image = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(image)
    step = max(8, min(width, height) // 24)
    for x in range(0, width, step):
        for y in range(0, height, step):
            draw.rectangle((x, y, x + step // 3, y + step // 3), fill=((x * 7) % 256, (y * 5) % 256, (x + y) % 256))
    draw.rectangle((0, 0, width - 1, height - 1), outline=(255, 0, 0), width=max(2, step // 6))
    return image


@pytest.fixture
def pet_order(ws: Workspace, make_order: Callable[..., Order]) -> Callable[[Image.Image], Order]:
    def factory(image: Image.Image) -> Order:
        order = make_order(titles=[ETSY_TITLE], workflow="pet portrait",
                           answers=[Answer(question="Pet name", answer="Mr Wigglesworth")])
        ws.add_order(order)
        job_id = order.jobs[0].job_id
        approve(ws, order.receipt_id, job_id, add_version(ws, order.receipt_id, job_id, encode(image, "PNG")))
        return ws.load(order.receipt_id)

    return factory


@pytest.mark.parametrize(("size", "portrait_print", "kept", "print_px"), [
    ((2400, 3000), True, 1.0, (2400, 3000)),  # portrait art, already 4:5
    ((3000, 2400), False, 1.0, (3000, 2400)),  # landscape art, already 5:4
    ((3000, 3000), True, 0.8, (2400, 3000)),  # square: the 8x10 is portrait by default (the convention)
    ((3600, 2000), False, (5 / 4) / (9 / 5), (2500, 2000)),  # wide: a deep crop, and 250 DPI; warned
])
def test_every_default_deliverable_follows_the_art(
        ws: Workspace, settings: Settings, pet_order: Callable[[Image.Image], Order],
        size: tuple[int, int], portrait_print: bool, kept: float, print_px: tuple[int, int]) -> None:
    width, height = size
    order = pet_order(artwork(width, height))
    report = delivery.prepare(ws, settings, order.receipt_id)
    if size == (3600, 2000):  # 5:4 of a 9:5 drawing cuts 31 %: nothing built until "anyway"
        assert report.held and any("crop cuts 31% of the artwork" in w for w in report.warnings)
        assert any("250 DPI at 10x8 in, promised 300" in w for w in report.warnings)
        report = delivery.prepare(ws, settings, order.receipt_id, anyway=True)
    assert report.ok, report.problems or report.warnings
    files = {path.suffix: path for path in deliver_files(ws, order.receipt_id)}
    assert sorted(files) == [".jpg", ".pdf", ".png"]

    for path in files.values():
        assert path.stat().st_size <= MB20
        assert len(path.name) <= 70 and path.name.startswith(str(order.receipt_id))
    assert files[".pdf"].name == f"{order.receipt_id} Custom Pet Portrait from Photo print 8x10.pdf"
    assert files[".jpg"].name == f"{order.receipt_id} Custom Pet Portrait from Photo web.jpg"

    with Image.open(files[".png"]) as png:  # the full artwork, untouched
        assert png.size == size
    with Image.open(files[".jpg"]) as web:  # a web size: 2048 px on the long edge, the art's own aspect
        assert max(web.size) == 2048 and abs(web.size[0] / web.size[1] - width / height) < 0.01
        assert web.info.get("dpi") == (300, 300)

    page_w, page_h = _page_inches(files[".pdf"])
    assert (page_h > page_w) is portrait_print
    assert sorted((round(page_w, 2), round(page_h, 2))) == [8, 10]  # an 8x10 in page, whatever the pixels
    [pdf_plan] = [f for f in report.files if f.name.endswith(".pdf")]
    assert (pdf_plan.height > pdf_plan.width) is portrait_print
    assert (pdf_plan.width, pdf_plan.height) == print_px  # 300 DPI at 8x10 when the art has the pixels
    # The frame the panel shows (still, after building: it can be moved and the files rebuilt).
    plans = delivery.panel(ws, settings, ws.load(order.receipt_id)).plans
    shown = next(p.frame for p in plans if p.key == "print-8x10")
    assert shown.kept == pytest.approx(kept, abs=0.002)
    if kept == 1.0:
        assert shown.kept >= 0.99  # the art already has the aspect: nothing cut
    # The print holds exactly the kept box, scaled: compare it with the artwork cut there.
    expected = artwork(width, height).crop(shown.box).resize(_pdf_image(files[".pdf"]).size)
    assert _mean_difference(_pdf_image(files[".pdf"]), expected) < 4


def test_square_ears_are_kept_in_the_print(
        ws: Workspace, settings: Settings, pet_order: Callable[[Image.Image], Order]) -> None:
    """The bug report: a square pet portrait's 8x10 lost the ears (top) and the name (bottom). Now the print is
    portrait, so only the sides are trimmed: the top and bottom edge lines are in the file."""
    order = pet_order(artwork(3000, 3000))
    delivery.prepare(ws, settings, order.receipt_id)
    pdf = next(p for p in deliver_files(ws, order.receipt_id) if p.suffix == ".pdf")
    image = _pdf_image(pdf)
    assert image.size == (2400, 3000)
    top, bottom = image.crop((200, 0, 2200, 4)), image.crop((200, 2996, 2200, 3000))
    for edge in (top, bottom):  # the red outline of the drawing survives at the top and the bottom
        red, green, _ = ImageStat.Stat(edge).mean
        assert red > 200 and green < 60


def _pdf_image(path: Path) -> Image.Image:
    """The one JPEG stream Pillow's PDF writer puts on the page."""
    data = path.read_bytes()
    start = data.index(b"\xff\xd8\xff")
    return Image.open(io.BytesIO(data[start:data.rindex(b"\xff\xd9") + 2])).convert("RGB")


def _page_inches(path: Path) -> tuple[float, float]:
    box = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", path.read_bytes())
    assert box is not None
    return float(box.group(1)) / 72, float(box.group(2)) / 72


def _mean_difference(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a, b.convert("RGB"))).mean) / 3


def test_square_can_be_landscape_by_setting(ws: Workspace, settings: Settings,
                                            pet_order: Callable[[Image.Image], Order]) -> None:
    pet = by_name(settings.workflows, settings.default_workflow, "pet portrait")
    print_promise = dataclasses.replace(pet.deliverables[2], square="landscape")
    settings = with_workflow(settings, print_promise)
    order = pet_order(artwork(1200, 1200))
    with ws.edit(order.receipt_id) as current:
        current.jobs[0].workflow = "default"
    report = delivery.prepare(ws, settings, order.receipt_id, anyway=True)  # 1200 px is below 300 DPI
    [built] = report.files
    assert (built.width, built.height) == (1200, 960)


def test_a_moved_frame_is_the_box_built(ws: Workspace, settings: Settings,
                                        pet_order: Callable[[Image.Image], Order]) -> None:
    """Drag (saved through lifecycle) → the built crop is exactly the box the preview drew."""
    settings = with_workflow(settings, Promise(format="png", aspect="4:5", suffix="print"))
    art = artwork(1500, 1000)  # landscape: a 5:4 frame of 1250x1000 slides left-right over 250 px
    order = pet_order(art)
    rid, job_id = order.receipt_id, order.jobs[0].job_id
    with ws.edit(rid) as current:
        current.jobs[0].workflow = "default"
    for percent, left in ((0.0, 0), (100.0, 250), (37.0, 93)):
        delivery.set_framing(ws, rid, job_id, "print", percent / 100, False)
        [plan_view] = delivery.panel(ws, settings, ws.load(rid)).plans
        assert plan_view.frame.box == (left, 0, left + 1250, 1000)
        report = delivery.prepare(ws, settings, rid, anyway=True)
        with Image.open(report.folder / report.files[0].name) as built:
            assert built.size == (1250, 1000)
            assert ImageChops.difference(built.convert("RGB"), art.crop(plan_view.frame.box)).getbbox() is None
    events = [e for e in ws.load(rid).history if e.event == "crop_set"]
    assert [e.details["position"] for e in events] == [0.0, 1.0, 0.37]


def test_margins_keep_the_whole_artwork(ws: Workspace, settings: Settings,
                                        pet_order: Callable[[Image.Image], Order]) -> None:
    settings = with_workflow(settings, Promise(format="png", aspect="4:5", suffix="print", margin_colour="#102030"))
    order = pet_order(artwork(1000, 1000))
    rid, job_id = order.receipt_id, order.jobs[0].job_id
    with ws.edit(rid) as current:
        current.jobs[0].workflow = "default"
    delivery.set_framing(ws, rid, job_id, "print", None, True)
    report = delivery.prepare(ws, settings, rid)
    assert report.ok and not report.warnings  # nothing cut, nothing to warn about
    with Image.open(report.folder / report.files[0].name) as built:
        assert built.size == (1000, 1250)
        assert built.convert("RGB").getpixel((500, 5)) == (16, 32, 48)  # margin on top
        assert built.convert("RGB").getpixel((500, 1245)) == (16, 32, 48)  # and at the bottom
        assert built.convert("RGB").crop((0, 125, 1000, 1125)).tobytes() == artwork(1000, 1000).tobytes()


def test_low_resolution_print_is_warned_and_built_only_anyway(
        ws: Workspace, settings: Settings, pet_order: Callable[[Image.Image], Order]) -> None:
    order = pet_order(artwork(1500, 1500))
    report = delivery.prepare(ws, settings, order.receipt_id)
    assert report.held and deliver_files(ws, order.receipt_id) == []
    assert any("1500 px of the promised 2048 px" in w for w in report.warnings)
    assert any(re.search(r"150 DPI at 8x10 in, promised 300", w) for w in report.warnings)
    report = delivery.prepare(ws, settings, order.receipt_id, anyway=True)
    assert report.ok and len(report.files) == 3
    saved = ws.load(order.receipt_id)
    [event] = [e for e in saved.history if e.event == "delivered_anyway"]
    assert len(event.details["warnings"]) == 2
    assert any(d.warnings for d in saved.jobs[0].deliverables)


@given(width=st.integers(1, 12_000), height=st.integers(1, 12_000), position=st.floats(0, 1),
       aspect=st.sampled_from(["4:5", "2:3", "1:1", "16:9", "3:4"]), square=st.sampled_from(["portrait", "landscape"]))
def test_a_crop_never_cuts_more_than_the_aspect_requires(width: int, height: int, position: float, aspect: str,
                                                         square: str) -> None:
    frame = plan(width, height, Promise(aspect=aspect, square=square), position=position)
    left, top, right, bottom = frame.box
    assert 0 <= left < right <= width and 0 <= top < bottom <= height
    assert left == 0 or right == width or top == 0 or bottom == height  # one axis only
    assert (right - left == width) or (bottom - top == height)
    a, b = sorted(int(x) for x in aspect.split(":"))
    target = b / a if (width > height or (width == height and square == "landscape")) else a / b
    kept = (right - left) * (bottom - top) / (width * height)
    best = min(width / height, target) / max(width / height, target)  # the share the aspect itself requires
    assert kept >= best - 2 / min(width, height) - 0.003
    if width != height and a != b:  # the output is oriented like the art
        assert (right - left >= bottom - top) == (width > height) or min(right - left, bottom - top) <= 2


def test_files_of_the_whole_artwork_never_share_encoder_state(
        ws: Workspace, settings: Settings, pet_order: Callable[[Image.Image], Order]) -> None:
    """Several files encode the same uncut source side by side: each keeps its own page size and DPI (a race on
    the source image's save state once gave the PDF a 72 DPI page of 33x42 inches)."""
    settings = with_workflow(settings, Promise(format="png", dpi=300), Promise(format="tiff", suffix="tiff", dpi=200),
                             Promise(format="pdf", suffix="print 8x10", print_inches="8x10", dpi=100),
                             Promise(format="jpeg", suffix="web", long_edge=500, quality=85))
    order = pet_order(artwork(800, 1000))
    with ws.edit(order.receipt_id) as current:
        current.jobs[0].workflow = "default"
    for _ in range(6):
        report = delivery.prepare(ws, settings, order.receipt_id)
        assert report.ok, report.problems or report.warnings
        files = {path.suffix: path for path in deliver_files(ws, order.receipt_id)}
        assert _page_inches(files[".pdf"]) == (8, 10)
        with Image.open(files[".png"]) as png, Image.open(files[".tif"]) as tif:
            assert round(png.info["dpi"][0]) == 300 and round(tif.info["dpi"][0]) == 200
