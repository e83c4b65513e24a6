"""Which buyer links a new order fetches: upload fields always, free-text links only from allowed hosts, at
most ``sync.download_max_files`` per order (pure: no network, no disk)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from kaalwatch import lifecycle
from kaalwatch.download_plan import plan_references
from kaalwatch.etsy.parse import NewOrder, Upload
from kaalwatch.model import Answer, Order
from kaalwatch.settings import Settings

PHOTOS = ["https://i.etsystatic.com/u/1/a.jpg", "https://i.etsystatic.com/u/1/b.jpg"]
TYPED = ["http://evil.example/grab.jpg", "https://photos.allowed.example/c.jpg"]
SAMPLE = "https://i.etsystatic.com/listing/style.jpg"


def _new(make_order: Callable[..., Order]) -> NewOrder:
    answers = [Answer(question="Photos of your pet", answer="2 files", kind="unlabeled_upload", files=PHOTOS),
               Answer(question="Personalization", answer="2 files", kind="legacy", files=TYPED)]
    order = make_order(answers=answers)
    job = order.jobs[0].job_id
    uploads = [Upload(url=u, question="Photos of your pet") for u in PHOTOS]
    uploads += [Upload(url=u, question="Personalization") for u in TYPED]
    return NewOrder(order=order, uploads={job: uploads}, style_samples={job: SAMPLE}, needs_references={job: True})


def test_links_typed_into_free_text_are_fetched_only_from_allowed_hosts(
        settings: Settings, make_order: Callable[..., Order]) -> None:
    sync = dataclasses.replace(settings.sync, download_hosts=("photos.allowed.example",))
    new = _new(make_order)
    refs = plan_references(new, sync)
    assert [r.url for r in refs] == [*PHOTOS, TYPED[1], SAMPLE]
    assert all(r.status == "pending" for r in refs)
    # Not fetched is not lost: the link stays with the answer, where the page lists it.
    assert TYPED[0] in new.order.jobs[0].answers[1].files
    assert [r.url for r in plan_references(_new(make_order), settings.sync)] == [*PHOTOS, SAMPLE]


def test_an_order_fetches_at_most_the_configured_number_of_files_and_says_so(
        settings: Settings, make_order: Callable[..., Order]) -> None:
    new = _new(make_order)
    refs = lifecycle.plan_downloads(new.order, plan_references(new, settings.sync), 2)
    assert [r.url for r in refs] == PHOTOS
    assert new.order.last_error and "only the first 2 of 3 files" in new.order.last_error
