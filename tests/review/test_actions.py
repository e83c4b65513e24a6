"""Actions: each a POST through ``ws.edit`` + lifecycle, refusals shown as messages, races well defined."""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kaalwatch import lifecycle
from kaalwatch.model import JobState, Order
from kaalwatch.store import Workspace
from tests.review.conftest import add_versions, login, post


def page_of(order: Order) -> str:
    return f"/jobs/{order.receipt_id}/{order.jobs[0].job_id}"


def act(client: FlaskClient, order: Order, action: str, data: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return post(client, f"{page_of(order)}/{action}", data, page=page_of(order))


def test_send_proof_then_buyer_approves(client: FlaskClient, ws: Workspace, order: Order) -> None:
    job_id = order.jobs[0].job_id
    response = act(client, order, "proof", {"version": "2"})
    assert response.status_code == 303 and response.headers["Location"].endswith(page_of(order))
    job = ws.load(order.receipt_id).job(job_id)
    assert job.state is JobState.PROOF_SENT and job.proofs[-1].version == 2
    assert "Proof of version 2 recorded as sent." in client.get(page_of(order)).get_data(as_text=True)
    act(client, order, "answer", {"answer": "approved"})
    job = ws.load(order.receipt_id).job(job_id)
    assert job.state is JobState.APPROVED and job.approved_version == 2
    assert [e.actor for e in ws.load(order.receipt_id).history if e.event == "buyer_approved"] == ["review"]


def test_one_round_of_changes_per_version_and_rounds_never_negative(client: FlaskClient, ws: Workspace,
                                                                   order: Order) -> None:
    job_id = order.jobs[0].job_id
    act(client, order, "proof", {"version": "3"})
    act(client, order, "answer", {"answer": "changes", "note": "round 1: bigger ears"})
    # The same version cannot be proofed (and its changes counted) again without a new save.
    act(client, order, "proof", {"version": "3"})
    html = client.get(page_of(order)).get_data(as_text=True)
    assert "the buyer already asked for changes to it — save a new version first" in html
    assert ws.load(order.receipt_id).job(job_id).revisions_used == 1
    assert 'id="proof-button"' not in html  # nothing left to proof: the button is not offered
    for round_ in (2, 3):
        add_versions(ws, order.receipt_id, job_id, 1)
        number = str(len(ws.load(order.receipt_id).job(job_id).versions))
        act(client, order, "proof", {"version": number})
        act(client, order, "answer", {"answer": "changes", "note": f"round {round_}: bigger ears"})
    current = ws.load(order.receipt_id)
    job = current.job(job_id)
    assert job.state is JobState.CHANGES_REQUESTED and job.revisions_used == 3
    assert job.changes_note == "round 3: bigger ears"
    last = [e for e in current.history if e.event == "changes_requested"][-1]
    assert last.details["beyond_included"] is True and last.details["included"] == 2
    html = client.get(page_of(order)).get_data(as_text=True)
    assert "3 used — 1 beyond the 2 included" in html and "-1 " not in html and "(-" not in html
    add_versions(ws, order.receipt_id, job_id, 1)
    html = client.get(page_of(order)).get_data(as_text=True)
    assert "the 2 included rounds of changes are used" in html and "0 rounds" not in html


def test_undo_restores_the_previous_state_and_is_recorded(client: FlaskClient, ws: Workspace, order: Order) -> None:
    job_id = order.jobs[0].job_id
    act(client, order, "proof", {"version": "3"})
    act(client, order, "answer", {"answer": "approved"})
    html = client.get(page_of(order)).get_data(as_text=True)
    assert 'id="undo-button"' in html and "Buyer approved v3" in html
    act(client, order, "undo")
    job = ws.load(order.receipt_id).job(job_id)
    assert job.state is JobState.PROOF_SENT and job.approved_version is None and job.proofs[-1].answer is None
    assert ws.load(order.receipt_id).history[-1].event == "undone"
    act(client, order, "undo")  # the undo itself cannot be undone: a clear sentence, nothing changes
    assert "Nothing was undone" in client.get(page_of(order)).get_data(as_text=True)
    assert ws.load(order.receipt_id).job(job_id).state is JobState.PROOF_SENT
    act(client, order, "hold", {"reason": "buyer travelling"})
    act(client, order, "undo")
    assert ws.load(order.receipt_id).job(job_id).state is JobState.PROOF_SENT
    act(client, order, "note", {"text": "collar is red"})
    act(client, order, "undo")
    assert ws.load(order.receipt_id).notes == []


def test_approve_a_version_directly(client: FlaskClient, ws: Workspace, order: Order) -> None:
    act(client, order, "approve", {"version": "1"})
    job = ws.load(order.receipt_id).job(order.jobs[0].job_id)
    assert job.state is JobState.APPROVED and job.approved_version == 1


def test_hold_and_resume(client: FlaskClient, ws: Workspace, order: Order) -> None:
    act(client, order, "hold", {"reason": "buyer on holiday"})
    assert ws.load(order.receipt_id).job(order.jobs[0].job_id).state is JobState.ON_HOLD
    html = client.get(page_of(order)).get_data(as_text=True)
    # The reason is on the job itself, the button says what it does, and a held job does not count down.
    assert 'id="hold-reason">buyer on holiday<' in html and ">Resume work<" in html and 'id="countdown"' not in html
    act(client, order, "reopen")
    assert ws.load(order.receipt_id).job(order.jobs[0].job_id).state is JobState.IN_PROGRESS


def test_note(client: FlaskClient, ws: Workspace, order: Order) -> None:
    act(client, order, "note", {"text": "  Ask about the collar  "})
    assert [n.text for n in ws.load(order.receipt_id).notes] == ["Ask about the collar"]
    act(client, order, "note", {"text": "   "})
    assert "an empty note was not saved" in client.get(page_of(order)).get_data(as_text=True)
    assert len(ws.load(order.receipt_id).notes) == 1


def test_illegal_move_is_a_message_not_an_error(client: FlaskClient, ws: Workspace, order: Order) -> None:
    before = ws.load(order.receipt_id)
    response = act(client, order, "answer", {"answer": "approved"})
    assert response.status_code == 303
    assert "has no proof waiting for an answer" in client.get(page_of(order)).get_data(as_text=True)
    assert ws.load(order.receipt_id).history == before.history
    response = act(client, order, "reopen")
    assert response.status_code == 303
    html = client.get(page_of(order)).get_data(as_text=True)
    assert "Nothing was done: this item is in progress, so it is not closed or on hold" in html
    assert str(order.jobs[0].job_id) not in html.split('class="flashes"')[1].split("</div>")[0]


def test_bad_or_unknown_inputs(client: FlaskClient, order: Order) -> None:
    assert act(client, order, "approve", {"version": "x"}).status_code == 400
    assert act(client, order, "approve", {"version": "99"}).status_code == 404
    assert act(client, order, "answer", {"answer": "maybe"}).status_code == 400
    assert post(client, f"/jobs/{order.receipt_id}/nope/approve", {"version": "1"}).status_code == 404
    assert post(client, "/jobs/424242/1/approve", {"version": "1"}).status_code == 404
    assert client.get(f"{page_of(order)}/approve").status_code == 405


def test_stale_page_is_refused(client: FlaskClient, ws: Workspace, order: Order) -> None:
    page = client.get(page_of(order)).get_data(as_text=True)
    with ws.edit(order.receipt_id) as o:  # the buyer's approval arrives in another tab meanwhile
        lifecycle.approve(o, order.jobs[0].job_id, 3, actor="review")
    import re

    seen = re.search(r'name="seen" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    client.post(f"{page_of(order)}/approve", data={"version": "1", "seen": seen, "csrf_token": token})
    assert ws.load(order.receipt_id).job(order.jobs[0].job_id).approved_version == 3
    assert "changed since the page was shown" in client.get(page_of(order)).get_data(as_text=True)


def test_two_sessions_approving_at_once_give_one_result(app: Flask, ws: Workspace, order: Order) -> None:
    """Both tabs saw the same page; both click "approve" (different versions) at the same moment."""
    clients = [app.test_client(), app.test_client()]
    for c in clients:
        login(c)
    import re

    forms = []
    for c, version in zip(clients, ("1", "2"), strict=True):
        page = c.get(page_of(order)).get_data(as_text=True)
        forms.append({
            "version": version,
            "seen": re.search(r'name="seen" value="([^"]+)"', page).group(1),  # type: ignore[union-attr]
            "csrf_token": re.search(r'name="csrf-token" content="([^"]+)"', page).group(1),  # type: ignore[union-attr]
        })
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def click(c: FlaskClient, form: dict[str, str]) -> None:
        barrier.wait()
        statuses.append(c.post(f"{page_of(order)}/approve", data=form).status_code)

    threads = [threading.Thread(target=click, args=pair) for pair in zip(clients, forms, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert statuses == [303, 303]
    final = ws.load(order.receipt_id)
    approvals = [e for e in final.history if e.event in ("approved", "approval_changed")]
    assert len(approvals) == 1, [e.details for e in approvals]
    assert final.job(order.jobs[0].job_id).approved_version == approvals[0].details["version"]
    messages = [c.get(page_of(order)).get_data(as_text=True) for c in clients]
    assert sum("changed since the page was shown" in m for m in messages) == 1
    assert sum(f"Version {approvals[0].details['version']} approved." in m for m in messages) == 1


@pytest.fixture
def fake_watch(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Stand in for kaalwatch.watch, recording which orders were rescanned."""
    calls: list[int] = []

    class Report:
        def summary(self) -> str:
            return "2 new versions"

    def rescan_order(ws: Workspace, settings: object, receipt_id: int, *, max_wait: float | None = None) -> Report:
        calls.append(receipt_id)
        return Report()

    module = types.ModuleType("kaalwatch.watch")
    module.rescan_order = rescan_order  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kaalwatch.watch", module)
    yield calls


def test_rescan_now_shows_the_report(client: FlaskClient, order: Order, fake_watch: list[int]) -> None:
    act(client, order, "rescan")
    assert fake_watch == [order.receipt_id]
    assert "Rescanned: 2 new versions" in client.get(page_of(order)).get_data(as_text=True)


def test_open_on_etsy_links_the_order(client: FlaskClient, order: Order) -> None:
    url = f"https://www.etsy.com/your/orders/sold?order_id={order.receipt_id}"
    assert url in client.get(page_of(order)).get_data(as_text=True)


def test_actions_log_receipt_ids_not_buyer_names(client: FlaskClient, order: Order,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="kaalwatch")
    act(client, order, "approve", {"version": "2"})
    assert str(order.receipt_id) in caplog.text
    assert "Grace" not in caplog.text and "Hopper" not in caplog.text




def test_rescan_now_with_the_real_watcher(client: FlaskClient, ws: Workspace, order: Order) -> None:
    """A save the watcher missed: the button turns it into version 4 at once (the file is old, so stable)."""
    pytest.importorskip("kaalwatch.watch", reason="the watcher package is not installed")
    import os
    import time

    from tests.review.conftest import jpeg

    saved = ws.folder_of(order.receipt_id) / "portrait final.jpg"
    saved.write_bytes(jpeg((800, 600), (10, 120, 90), mark=9))
    old = time.time() - 60
    os.utime(saved, (old, old))
    assert act(client, order, "rescan").status_code == 303
    job = ws.load(order.receipt_id).job(order.jobs[0].job_id)
    assert [v.number for v in job.versions] == [1, 2, 3, 4] and job.versions[-1].source_name == "portrait final.jpg"
    assert "Rescanned: " in client.get(page_of(order)).get_data(as_text=True)


def test_ids_beyond_the_index_range_are_404(client: FlaskClient) -> None:
    """Found by the fuzz: a 20-digit receipt id reached SQLite and overflowed (a 500)."""
    huge = "99999999999999999999"
    assert post(client, f"/jobs/{huge}/1/proof", {"version": "1"}).status_code == 404
    assert client.get(f"/jobs/{huge}/1").status_code == 404
    assert client.get(f"/files/{huge}/1/v/1/thumb").status_code == 404
