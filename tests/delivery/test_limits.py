"""Etsy's limits: files per order, bytes per file, name length and safety, and each fitting step."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image

from kaalwatch import delivery
from kaalwatch.delivery.build import encode as encode_promise
from kaalwatch.delivery.build import load_source, shape
from kaalwatch.delivery.framing import plan
from kaalwatch.delivery.names import fill, is_safe_name, name_fields
from kaalwatch.model import JobState, Order
from kaalwatch.settings import Deliverable as Promise
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from tests.delivery.conftest import deliver_files, noise, with_workflow

MB = 1_000_000
TEMPLATE = "{receipt_id} {listing} {item} {variant}"


def test_more_files_than_etsy_takes_per_order_is_refused_across_jobs(
        ws: Workspace, settings: Settings, order_with_art: Callable[..., Order]) -> None:
    three = (Promise(format="png"), Promise(format="jpeg", suffix="web"), Promise(format="pdf", suffix="print"))
    settings = with_workflow(settings, *three)
    order = order_with_art(noise(120, 90), jobs=2)

    report = delivery.prepare(ws, settings, order.receipt_id)

    assert not report.ok and report.count is not None and not report.count.ok
    assert "6 files to upload" in report.problems[0] and "at most 5 per order" in report.problems[0]
    assert deliver_files(ws, order.receipt_id) == []
    after = ws.load(order.receipt_id)
    assert all(job.state is JobState.APPROVED and "at most 5" in (job.last_error or "") for job in after.jobs)


def test_five_files_from_two_jobs_fit_and_are_named_apart(
        ws: Workspace, settings: Settings, order_with_art: Callable[..., Order]) -> None:
    settings = with_workflow(settings, Promise(format="png"), Promise(format="jpeg", suffix="web"))
    order = order_with_art(noise(120, 90), jobs=2)
    report = delivery.prepare(ws, settings, order.receipt_id)
    assert report.ok and report.count is not None and report.count.detail == "4 of 5 files per order"
    names = [item.name for item in report.files]
    assert len(set(n.casefold() for n in names)) == 4
    assert any("item 1" in n for n in names) and any("item 2" in n for n in names)


def test_a_file_left_in_deliver_counts_against_the_limit(
        ws: Workspace, settings: Settings, order_with_art: Callable[..., Order]) -> None:
    settings = with_workflow(settings, Promise(format="png"), max_files=1)
    order = order_with_art(noise(64, 64))
    folder = ws.folder_of(order.receipt_id) / "deliver"
    folder.mkdir()
    (folder / "old sketch.png").write_bytes(b"x")
    report = delivery.prepare(ws, settings, order.receipt_id)
    assert not report.ok and "1 other file(s) already in deliver/" in report.problems[0]


@given(title=st.text(max_size=300), suffix=st.text(max_size=80), receipt_id=st.integers(1, 10**12),
       taken=st.sets(st.text(max_size=70), max_size=5))
@example(title="", suffix="0..0", receipt_id=1, taken=set())  # found by CI: a ".." inside a label
def test_names_are_short_safe_and_unique(title: str, suffix: str, receipt_id: int, taken: set[str]) -> None:
    fields = name_fields(receipt_id, "", title, {}, item=2, variant=suffix)
    name = fill(TEMPLATE, fields, "png", max_length=70, taken=taken)
    assert len(name) <= 70
    assert is_safe_name(name), name
    assert name.startswith(str(receipt_id)) and name.endswith(".png")
    assert name.casefold() not in {t.casefold() for t in taken}


def test_long_unicode_listing_title_is_shortened_not_the_labels(
        ws: Workspace, settings: Settings, make_order: Callable[..., Order]) -> None:
    title = "Portrait personnalisé d’animal — aquarelle numérique « fait main » " * 4
    fields = name_fields(123456789, "", title, {}, item=3, variant="print 8x10")
    name = fill(TEMPLATE, fields, "pdf", max_length=70, taken=set())
    assert len(name) <= 70 and name.endswith(" item 3 print 8x10.pdf") and "personnalise" in name


# --------------------------------------------------------------------------------------------------
# Fitting, step by step, against caps set between the sizes the real encoders produce for a noise image


def _sizes(settings: Settings, image: Image.Image, tmp_path, promise: Promise) -> list[tuple[str, int]]:
    """Every rung of the ladder's size for ``image``, by asking encode with ever smaller caps."""
    path = tmp_path / "art.png"
    image.save(path)
    source = load_source(path, settings)
    shaped, _ = shape(source, plan(*source.image.size, promise), promise)
    rungs = []
    cap = 10**9
    for _ in range(8):
        try:
            out = encode_promise(shaped, promise, source.icc, with_workflow(settings, max_file_mb=cap / MB), "x")
        except Exception:
            break
        rungs.append((out.steps[-1] if out.steps else "first", len(out.data)))
        cap = len(out.data) - 1
    return rungs


@pytest.fixture
def art() -> Image.Image:
    return noise(800, 600)


def test_each_fitting_step_is_taken_and_recorded(
        ws: Workspace, settings: Settings, order_with_art: Callable[..., Order], art: Image.Image, tmp_path) -> None:
    promise = Promise(format="png")
    rungs = _sizes(settings, art, tmp_path, promise)
    # Noise compresses a little better at PNG's maximum level, and much better as JPEG.
    assert rungs[0][0] == "first" and "PNG optimised" in rungs[1][0] and "JPEG (quality 95)" in rungs[2][0]
    png6, png9, jpeg95 = (size for _, size in rungs[:3])
    assert png6 > png9 > jpeg95

    order = order_with_art(art)
    rid = order.receipt_id
    # Between the optimised PNG and the plain one: optimisation is enough, the file stays a PNG.
    # Caps sit midway between rungs: the prepared file is encoded from the version's copy, whose bytes
    # can differ from this test's own encoding by a few header bytes, so a cap one byte off a rung is flaky.
    report = delivery.prepare(ws, with_workflow(settings, promise, max_file_mb=(png9 + png6) // 2 / MB), rid)
    [item] = report.files
    assert item.format == "png" and item.size < png6 and "PNG optimised" in item.steps[-1]

    # Below the optimised PNG: a high-quality JPEG stands in, named .jpg, and that is recorded.
    cap = (png9 + jpeg95) // 2
    report = delivery.prepare(ws, with_workflow(settings, promise, max_file_mb=cap / MB), rid)
    [item] = report.files
    assert item.format == "jpeg" and item.name.endswith(".jpg") and item.size <= cap
    assert any("instead of PNG" in step for step in item.steps)
    order = ws.load(rid)
    [deliverable] = order.jobs[0].deliverables
    assert "instead of PNG" in (deliverable.note or "")
    fitted = [e for e in order.history if e.event == "deliverables_fitted"]
    assert fitted and "instead of PNG" in fitted[-1].details["steps"][0]
    assert [p.name for p in deliver_files(ws, rid)] == [item.name]  # the stale .png was removed


def test_a_promise_that_cannot_fit_is_reported_by_name(
        ws: Workspace, settings: Settings, order_with_art: Callable[..., Order], art: Image.Image, tmp_path) -> None:
    promise = Promise(format="pdf", suffix="print 8x10", aspect="4:5", dpi=300)
    rungs = _sizes(settings, art, tmp_path, promise)
    smallest = rungs[-1][1]
    order = order_with_art(art)
    settings = with_workflow(settings, Promise(format="jpeg", suffix="web", long_edge=200), promise,
                             max_file_mb=(smallest - 1) / MB)

    report = delivery.prepare(ws, settings, order.receipt_id)

    assert not report.ok and report.ready == []
    [problem] = report.problems
    assert "the promised PDF 'print 8x10' 4:5 at 300 DPI" in problem
    assert "quality 85" in problem and "ZIP" in problem
    assert deliver_files(ws, order.receipt_id) == []  # not even the web JPEG that did fit: no half sets


@pytest.mark.slow
def test_real_etsy_limit_with_a_large_artwork(
        ws: Workspace, settings: Settings, order_with_art: Callable[..., Order]) -> None:
    # 4000x3000 px of noise: ~35 MB as PNG, so the 20 MB limit forces the JPEG fallback.
    settings = with_workflow(settings, Promise(format="png"), Promise(format="jpeg", suffix="web", long_edge=3000))
    order = order_with_art(noise(4000, 3000))
    report = delivery.prepare(ws, settings, order.receipt_id)
    assert report.ok, report.problems
    full = report.files[0]
    assert full.format == "jpeg" and (full.width, full.height) == (4000, 3000)
    assert any("PNG was" in step for step in full.steps)
    for path in deliver_files(ws, order.receipt_id):
        assert path.stat().st_size <= 20 * MB


@pytest.mark.slow
def test_real_etsy_limit_refuses_what_no_step_can_fit(
        ws: Workspace, settings: Settings, order_with_art: Callable[..., Order]) -> None:
    settings = with_workflow(settings, Promise(format="png"))
    order = order_with_art(noise(4400, 3300, sigma=90))  # even JPEG quality 85 is ~23 MB
    report = delivery.prepare(ws, settings, order.receipt_id)
    assert not report.ok and "the promised PNG is" in report.problems[0] and "over Etsy's 20 MB" in report.problems[0]
    assert deliver_files(ws, order.receipt_id) == []
