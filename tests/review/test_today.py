"""The Today view, stop-work banners, history in words and search, through Flask's test client."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from flask.testing import FlaskClient

from kaalwatch import lifecycle
from kaalwatch.model import AddOn, Answer, JobState, Order, Version, utcnow
from kaalwatch.store import Workspace
from review_app import history
from tests.review.conftest import add_versions, post


def group_of(html: str, key: str) -> str:
    match = re.search(rf'id="group-{key}">(.*?)</section>', html, re.S)
    return match.group(1) if match else ""


def test_today_groups_jobs_by_next_step_overdue_first(client: FlaskClient, ws: Workspace,
                                                      make_order: Callable[..., Order]) -> None:
    late = make_order(buyer="Late Lena", days=-2, titles=["Late cat"])
    proof = make_order(buyer="Proof Priya", days=5, titles=["Dog to proof"])
    waiting = make_order(buyer="Waiting Wim", days=9, titles=["Sent dog"])
    held = make_order(buyer="Held Hana", days=-5, titles=["Held hamster"])
    two = make_order(buyer="Multi Mia", days=4, jobs=2, titles=["Family", "Pet"])
    for made in (late, proof, waiting, held, two):
        ws.add_order(made)
    add_versions(ws, proof.receipt_id, proof.jobs[0].job_id, 1)
    add_versions(ws, waiting.receipt_id, waiting.jobs[0].job_id, 1)
    with ws.edit(waiting.receipt_id) as o:
        lifecycle.send_proof(o, waiting.jobs[0].job_id, 1, at=utcnow() - timedelta(days=3))
    with ws.edit(held.receipt_id) as o:
        lifecycle.hold(o, held.jobs[0].job_id, "buyer away")
    html = client.get("/").get_data(as_text=True)
    groups = re.findall(r'id="group-([a-z_]+)"', html)
    assert groups == ["overdue", "proof", "start", "waiting", "on_hold"]
    assert "Late cat" in group_of(html, "overdue") and "2d overdue" in group_of(html, "overdue")
    assert "Dog to proof" in group_of(html, "proof")
    assert "waiting 3 days" in group_of(html, "waiting")
    held_html = group_of(html, "on_hold")
    assert "Held hamster" in held_html and "overdue" not in held_html  # on hold does not count down
    start = group_of(html, "start")
    assert f"Order #{two.receipt_id} · Multi Mia" in start and "2 items" in start
    assert start.index(f"Order #{two.receipt_id}") < start.index("1. Family") < start.index("2. Pet")


def test_stop_work_states_are_loud_on_the_job_and_the_list(client: FlaskClient, ws: Workspace,
                                                           order: Order) -> None:
    page = f"/jobs/{order.receipt_id}/{order.jobs[0].job_id}"
    with ws.edit(order.receipt_id) as o:
        lifecycle.set_etsy_status(o, "Partially Refunded")
    html = client.get(page).get_data(as_text=True)
    assert 'id="stop-banner"' in html and "Partially refunded on Etsy" in html and 'id="proof-button"' in html
    assert ">partially refunded</span>" in client.get("/jobs").get_data(as_text=True)
    with ws.edit(order.receipt_id) as o:
        lifecycle.set_etsy_status(o, "Fully Refunded")
        lifecycle.cancel(o, "Etsy: Fully Refunded")
    html = client.get(page).get_data(as_text=True)
    assert "Cancelled on Etsy (fully refunded)" in html and ">Reopen anyway</button>" in html
    for gone in ('id="proof-button"', 'id="proof-message"', 'id="approve-button"', "Here is the proof"):
        assert gone not in html, gone
    assert ">refunded</span>" in client.get("/jobs?state=all").get_data(as_text=True)
    # Asked anyway (an old tab): refused with a sentence, no internal ids.
    post(client, f"{page}/proof", {"version": "3"}, page=page)
    flashes = client.get(page).get_data(as_text=True).split('class="flashes"')[1].split("</div>")[0]
    assert "Nothing was done: this item is cancelled" in flashes and str(order.receipt_id) not in flashes


def test_completed_without_approval_banner(client: FlaskClient, ws: Workspace, order: Order) -> None:
    with ws.edit(order.receipt_id) as o:
        lifecycle.etsy_completed(o)
    html = client.get(f"/jobs/{order.receipt_id}/{order.jobs[0].job_id}").get_data(as_text=True)
    assert "Completed on Etsy without an approved version" in html and 'id="stop-banner"' in html
    assert ">completed without approval</span>" in client.get("/jobs").get_data(as_text=True)


def test_awaiting_photos_offers_a_message_to_copy(client: FlaskClient, ws: Workspace,
                                                  make_order: Callable[..., Order]) -> None:
    made = make_order(buyer="Chloé Dubois")
    ws.add_order(made)
    with ws.edit(made.receipt_id) as o:
        lifecycle.await_references(o, made.jobs[0].job_id)
    html = client.get(f"/jobs/{made.receipt_id}/{made.jobs[0].job_id}").get_data(as_text=True)
    assert "Waiting for the buyer&#39;s photos — ask for them in Etsy Messages." in html
    assert 'id="photos-message"' in html and "Hi Chloé! Thank you for ordering" in html
    assert 'data-copy="#photos-message"' in html


def test_history_in_words_with_runs_collapsed(make_order: Callable[..., Order]) -> None:
    from kaalwatch.model import Reference

    order = make_order()
    job_id = order.jobs[0].job_id
    for n in range(4):
        lifecycle.add_reference(order, Reference(name=f"p{n}.jpg", source="buyer", job_id=job_id), actor="sync")
    lifecycle.add_version(order, job_id, Version(number=1, source_name="portrait.png", sha256="1" * 64, size=1,
                                                 saved_at=utcnow(), copy="v/1.png"))
    lifecycle.approve(order, job_id, 1)
    lines = history.lines(order.history)
    assert [line.text for line in lines] == ["Approved v1", "Work started", "v1 saved from portrait.png",
                                             "Buyer's photos arrived (4)"]
    assert "reference_added by sync" in next(line.detail for line in lines if "arrived" in line.text)


def test_search_finds_every_state_accents_answers_and_notes(client: FlaskClient, ws: Workspace,
                                                            make_order: Callable[..., Order]) -> None:
    zoe = make_order(buyer="Zoë Müller", titles=["Cat portrait"], answers=[Answer("Pet's name", "Pepperoni")])
    done = make_order(buyer="Jamal Wright", titles=["Dog portrait"])
    for made in (zoe, done):
        ws.add_order(made)
    with ws.edit(done.receipt_id) as o:
        lifecycle.cancel(o, "Etsy: Canceled")
    with ws.edit(zoe.receipt_id) as o:
        lifecycle.add_note(o, "Prefers the Rembrandt lighting", zoe.jobs[0].job_id)
    for query in ("zoe", "ZOË", "muller", "pepper", "rembrandt", str(zoe.receipt_id)[:4]):
        assert "Cat portrait" in client.get("/jobs", query_string={"q": query}).get_data(as_text=True), query
    assert "Dog portrait" in client.get("/jobs?q=jamal").get_data(as_text=True)  # cancelled, still found
    narrowed = client.get("/jobs?q=jamal&state=active").get_data(as_text=True)
    assert "Dog portrait" not in narrowed and "1 more match in other states" in narrowed
    for hostile in ('"', "*", "NEAR(", "a OR b", "-x", "'); DROP TABLE jobs;--", "^", ":"):
        assert client.get("/jobs", query_string={"q": hostile}).status_code == 200, hostile


def test_addons_paid_apart_say_what_to_do_as_the_order_they_rush_moves_on(
        client: FlaskClient, ws: Workspace, make_order: Callable[..., Order]) -> None:
    open_, delivered, cancelled = (make_order(buyer=name) for name in ("Olga", "Dina", "Carl"))
    delivered.jobs[0].state = JobState.DELIVERED  # as its manifest says after a delivery
    lifecycle.cancel(cancelled, "Canceled")
    rushes = {}
    for portrait in (open_, delivered, cancelled):
        rush = make_order(buyer=portrait.buyer_name, jobs=0)
        lifecycle.add_addon(rush, AddOn(transaction_id=str(rush.receipt_id), listing_id=5, title="Rush",
                                        workflow="rush"), rush_days=2, urgent=True)
        lifecycle.addons_applied(rush, portrait.receipt_id)
        ws.add_order(portrait)
        ws.add_order(rush)
        rushes[portrait.receipt_id] = rush.receipt_id
    card = group_of(client.get("/").get_data(as_text=True), "addons")
    link = f'<a href="/jobs/{open_.receipt_id}/{open_.jobs[0].job_id}">order #{open_.receipt_id}</a>'
    assert f"Applied to {link}: complete #{rushes[open_.receipt_id]} on Etsy when you deliver it" in card
    assert f"which is delivered: complete #{rushes[delivered.receipt_id]} on Etsy now" in card
    assert f"which was cancelled: refund #{rushes[cancelled.receipt_id]} on Etsy" in card
    for rush in rushes.values():
        with ws.edit(rush) as order:
            lifecycle.set_etsy_status(order, "Completed")
    html = client.get("/").get_data(as_text=True)
    assert 'id="group-addons"' not in html
