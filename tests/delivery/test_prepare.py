"""Building deliverables: from the approved copy only, shaped as promised, clean of metadata, in deliver/."""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Callable

import pytest
from PIL import Image, ImageCms, PngImagePlugin

from kaalwatch import delivery, lifecycle
from kaalwatch.errors import DeliveryError
from kaalwatch.model import JobState, Order
from kaalwatch.settings import Deliverable as Promise
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from kaalwatch.watch import WatchService
from tests.delivery.conftest import BUYER, add_version, approve, deliver_files, encode, noise, with_workflow
from tests.support.polling import wait_for
from tests.watch.helpers import ThreadPreviewPool

PNG_ONLY = (Promise(format="png"),)


def test_built_from_the_approved_version_even_after_a_newer_save(
        ws: Workspace, settings: Settings, order_with_art: Callable[..., Order]) -> None:
    settings = with_workflow(settings, *PNG_ONLY)
    approved_art = noise(320, 240)
    order = order_with_art(approved_art)
    rid, job_id = order.receipt_id, order.jobs[0].job_id
    newer = noise(400, 300, sigma=80)
    add_version(ws, rid, job_id, encode(newer), source_name="portrait v2.png")

    # The newer save cleared the approval: nothing may be built from a version nobody approved.
    with pytest.raises(DeliveryError, match="no approved job"):
        delivery.prepare(ws, settings, rid)

    approve(ws, rid, job_id, 1)  # the buyer's approval stands for version 1, not the latest save
    report = delivery.prepare(ws, settings, rid)
    assert report.ok and report.ready == [job_id]
    [path] = deliver_files(ws, rid)
    with Image.open(path) as delivered:
        assert delivered.size == (320, 240)
        assert delivered.convert("RGB").tobytes() == approved_art.tobytes()
    job = ws.load(rid).job(job_id)
    assert job.state is JobState.READY_TO_DELIVER
    assert [d.from_version for d in job.deliverables] == [1]


def test_stale_deliverables_leave_the_folder_when_approval_is_cleared(
        ws: Workspace, settings: Settings, order_with_art: Callable[..., Order]) -> None:
    settings = with_workflow(settings, *PNG_ONLY)
    order = order_with_art(noise(200, 150))
    rid, job_id = order.receipt_id, order.jobs[0].job_id
    delivery.prepare(ws, settings, rid)
    assert len(deliver_files(ws, rid)) == 1
    add_version(ws, rid, job_id, encode(noise(210, 150)))  # a newer save: the approval is gone

    # The save's own edit took the stale file out of deliver/: no caller has to remember it.
    assert deliver_files(ws, rid) == []
    job = ws.load(rid).job(job_id)
    assert job.deliverables == [] and job.state is JobState.IN_PROGRESS


def test_promised_shapes_dpi_and_pdf_page_size(
        ws: Workspace, settings: Settings, order_with_art: Callable[..., Order]) -> None:
    settings = with_workflow(
        settings,
        Promise(format="png", dpi=600),
        Promise(format="jpeg", suffix="web", long_edge=500, quality=90),
        Promise(format="pdf", suffix="print 8x10", aspect="4:5", dpi=300),
        Promise(format="tiff", suffix="archive"),
    )
    order = order_with_art(noise(1200, 1600))  # portrait: 4:5 crops to 1200x1500
    report = delivery.prepare(ws, settings, order.receipt_id)
    assert report.ok, report.problems
    files = {item.promise: item for item in report.files}
    folder = report.folder

    with Image.open(folder / files["PNG"].name) as png:
        assert png.size == (1200, 1600)
        assert tuple(round(v) for v in png.info["dpi"]) == (600, 600)
    with Image.open(folder / files["JPEG 'web' 500 px"].name) as jpeg:
        assert jpeg.format == "JPEG" and jpeg.size == (375, 500)
    pdf = (folder / files["PDF 'print 8x10' 4:5 at 300 DPI"].name).read_bytes()
    box = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf)
    assert box is not None
    assert (float(box.group(1)), float(box.group(2))) == (288.0, 360.0)  # 4 x 5 inches at 72 pt per inch
    assert files["PDF 'print 8x10' 4:5 at 300 DPI"].width == 1200
    assert files["PDF 'print 8x10' 4:5 at 300 DPI"].height == 1500
    with Image.open(folder / files["TIFF 'archive' at 300 DPI"].name) as tiff:
        assert tiff.format == "TIFF" and tiff.size == (1200, 1600)


def test_landscape_art_is_cropped_to_the_turned_aspect(
        ws: Workspace, settings: Settings, order_with_art: Callable[..., Order]) -> None:
    settings = with_workflow(settings, Promise(format="png", aspect="4:5"), max_crop_share=0.3)
    order = order_with_art(noise(1000, 600))
    [item] = delivery.prepare(ws, settings, order.receipt_id).files
    assert (item.width, item.height) == (750, 600)  # 5:4 for a landscape drawing


def _personal_png(image: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[0x013B] = BUYER  # Artist
    exif[0x010E] = "photo of Mr Wigglesworth"  # ImageDescription
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", f"for {BUYER}")
    info.add_itxt("XML:com.adobe.xmp", f"<x:xmpmeta><dc:creator>{BUYER}</dc:creator></x:xmpmeta>")
    return encode(image, "PNG", exif=exif, pnginfo=info)


@pytest.mark.parametrize("colour", ["srgb", "keep"])
def test_metadata_is_stripped_and_colour_handled(
        ws: Workspace, settings: Settings, make_order: Callable[..., Order], colour: str) -> None:
    settings = with_workflow(settings, Promise(format="png"), Promise(format="jpeg", suffix="web"),
                             Promise(format="pdf", suffix="print"), colour=colour)
    source_profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    image = noise(300, 200)
    order = make_order(buyer=BUYER)
    ws.add_order(order)
    job_id = order.jobs[0].job_id
    data = _personal_png(image)
    data_with_profile = encode(Image.open(io.BytesIO(data)), "PNG", icc_profile=source_profile,
                               exif=Image.open(io.BytesIO(data)).getexif(),
                               pnginfo=_pnginfo_from(data))
    assert BUYER.encode() in data_with_profile  # the source really carries the buyer's name
    add_version(ws, order.receipt_id, job_id, data_with_profile)
    approve(ws, order.receipt_id, job_id, 1)

    report = delivery.prepare(ws, settings, order.receipt_id)
    if colour == "srgb":  # a LAB profile does not convert to sRGB: a warning (seen before decoding), built "anyway"
        assert report.held and "colour profile cannot be converted" in report.warnings[0]
        assert any(c.limit == "colour" and not c.ok
                   for c in delivery.panel(ws, settings, ws.load(order.receipt_id)).job_checks)
        assert deliver_files(ws, order.receipt_id) == []
        report = delivery.prepare(ws, settings, order.receipt_id, anyway=True)

    assert report.ok, report.problems
    for path in deliver_files(ws, order.receipt_id):
        raw = path.read_bytes()
        assert BUYER.encode() not in raw and b"Wigglesworth" not in raw and b"xmpmeta" not in raw
        if path.suffix == ".pdf":
            continue
        with Image.open(path) as out:
            assert not out.getexif(), path.name
            assert "Comment" not in out.info and "XML:com.adobe.xmp" not in out.info
            profile = out.info.get("icc_profile")
            if colour == "keep":
                assert profile == source_profile
            else:
                description = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile)))
                assert "sRGB" in description


def _pnginfo_from(data: bytes) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    with Image.open(io.BytesIO(data)) as im:
        for key, value in im.text.items():
            info.add_itxt(key, value)
    return info


def test_exif_orientation_is_applied_then_dropped(
        ws: Workspace, settings: Settings, make_order: Callable[..., Order]) -> None:
    settings = with_workflow(settings, Promise(format="jpeg"))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: displayed rotated 90° clockwise
    order = make_order()
    ws.add_order(order)
    job_id = order.jobs[0].job_id
    add_version(ws, order.receipt_id, job_id, encode(noise(400, 200), "JPEG", quality=95, exif=exif),
                suffix=".jpg")
    approve(ws, order.receipt_id, job_id, 1)
    [item] = delivery.prepare(ws, settings, order.receipt_id).files
    with Image.open(deliver_files(ws, order.receipt_id)[0]) as out:
        assert out.size == (200, 400) == (item.width, item.height)
        assert out.getexif().get(0x0112) is None


def test_undecodable_copy_is_refused_with_the_reason(
        ws: Workspace, settings: Settings, make_order: Callable[..., Order]) -> None:
    order = make_order()
    ws.add_order(order)
    job_id = order.jobs[0].job_id
    add_version(ws, order.receipt_id, job_id, encode(noise(64, 64))[:200])  # truncated PNG
    approve(ws, order.receipt_id, job_id, 1)
    report = delivery.prepare(ws, settings, order.receipt_id)
    assert not report.ok and "cannot be decoded" in report.problems[0]
    assert deliver_files(ws, order.receipt_id) == []
    job = ws.load(order.receipt_id).job(job_id)
    assert job.state is JobState.APPROVED and "cannot deliver" in (job.last_error or "")
    with pytest.raises(DeliveryError, match=f"order {order.receipt_id}: job {job_id} version 1"):
        report.raise_for_problems()


def test_rebuild_replaces_files_and_clears_the_error(
        ws: Workspace, settings: Settings, order_with_art: Callable[..., Order]) -> None:
    order = order_with_art(noise(300, 300))
    rid, job_id = order.receipt_id, order.jobs[0].job_id
    first = delivery.prepare(ws, with_workflow(settings, Promise(format="png", suffix="a")), rid)
    second = delivery.prepare(ws, with_workflow(settings, Promise(format="png", suffix="b")), rid)
    assert [p.name for p in deliver_files(ws, rid)] == [second.files[0].name]
    assert second.removed == [first.files[0].name]
    with ws.edit(rid) as current:
        assert current.job(job_id).last_error is None
        lifecycle.set_error(current, job_id, None, "test")


def test_the_watcher_takes_stale_deliverables_out_when_a_newer_save_clears_the_approval(
        ws: Workspace, settings: Settings, order_with_art: Callable[..., Order]) -> None:
    settings = with_workflow(settings, *PNG_ONLY)
    settings = dataclasses.replace(settings, watcher=dataclasses.replace(settings.watcher, quiet_seconds=0.3,
                                                                         rescan_minutes=60.0))
    order = order_with_art(noise(200, 150))
    rid, job_id = order.receipt_id, order.jobs[0].job_id
    delivery.prepare(ws, settings, rid)
    [built] = deliver_files(ws, rid)
    pool = ThreadPreviewPool(1)
    service = WatchService(ws, settings, pool)  # type: ignore[arg-type]
    service.start()
    try:
        (ws.folder_of(rid) / "portrait v2.png").write_bytes(encode(noise(210, 150)))
        wait_for(lambda: not built.exists(), what="the stale deliverable to leave deliver/")
    finally:
        service.stop(timeout=10)
        pool.shutdown()
    after = ws.load(rid)
    job = after.job(job_id)
    assert len(job.versions) == 2 and job.state is JobState.IN_PROGRESS and job.deliverables == []
    assert [e.details["files"] for e in after.history if e.event == "deliverables_removed"] == [[built.name]]
