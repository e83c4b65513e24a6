"""The jobs list and the job page: what the owner sees, with real manifests and previews."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from html import unescape

from flask.testing import FlaskClient

from kaalwatch import lifecycle
from kaalwatch.model import Answer, JobState, Order, utcnow
from kaalwatch.store import Workspace
from tests.review.conftest import add_reference, add_versions, jpeg

NOTICE = ("The term 'Etsy' is a trademark of Etsy, Inc. This application uses the Etsy API but is not endorsed or "
          "certified by Etsy, Inc.")


def test_list_sorted_by_ship_by_with_days_left_and_overdue(client: FlaskClient, ws: Workspace,
                                                           make_order: Callable[..., Order]) -> None:
    late = make_order(buyer="Late Buyer", days=-3, titles=["Overdue cat"])
    soon = make_order(buyer="Soon Buyer", days=2, titles=["Soon dog"])
    later = make_order(buyer="Later Buyer", days=20, titles=["Later family"])
    for o in (later, soon, late):
        ws.add_order(o)
    html = client.get("/").get_data(as_text=True)
    assert html.index("Overdue cat") < html.index("Soon dog") < html.index("Later family")
    assert "3d overdue" in html
    assert '<tr class="overdue">' in html
    assert "20d" in html


def test_filters_by_state_with_counts(client: FlaskClient, ws: Workspace, make_order: Callable[..., Order]) -> None:
    held = make_order(titles=["Held portrait"])
    fresh = make_order(titles=["Fresh portrait"])
    ws.add_order(held)
    ws.add_order(fresh)
    with ws.edit(held.receipt_id) as o:
        lifecycle.hold(o, held.jobs[0].job_id, "waiting", actor="review")
    html = client.get("/?state=on_hold").get_data(as_text=True)
    assert "Held portrait" in html and "Fresh portrait" not in html
    assert 'on hold <span class="count">1</span>' in html
    assert 'new <span class="count">1</span>' in html
    assert 'active <span class="count">2</span>' in html
    assert client.get("/?state=nonsense").status_code == 404


def test_finished_jobs_only_under_their_filter(client: FlaskClient, ws: Workspace,
                                               make_order: Callable[..., Order]) -> None:
    gone = make_order(titles=["Cancelled piece"])
    ws.add_order(gone)
    with ws.edit(gone.receipt_id) as o:
        lifecycle.cancel(o, "refunded")
    assert "Cancelled piece" not in client.get("/").get_data(as_text=True)
    assert "Cancelled piece" in client.get("/?state=cancelled").get_data(as_text=True)
    assert "Cancelled piece" in client.get("/?state=all").get_data(as_text=True)


def test_search_by_receipt_buyer_and_listing(client: FlaskClient, ws: Workspace,
                                             make_order: Callable[..., Order]) -> None:
    a = make_order(receipt_id=777001, buyer="Ada Lovelace", titles=["Engine sketch"])
    b = make_order(receipt_id=888002, buyer="Grace Hopper", titles=["Compiler doodle"])
    ws.add_order(a)
    ws.add_order(b)
    for query, hit, miss in (("777001", "Engine sketch", "Compiler doodle"), ("hopper", "Compiler doodle",
                                                                               "Engine sketch"),
                             ("engine", "Engine sketch", "Compiler doodle")):
        html = client.get("/", query_string={"q": query}).get_data(as_text=True)
        assert hit in html and miss not in html, query
    assert "No jobs" in client.get("/?q=zzz-nothing").get_data(as_text=True)


def test_list_shows_thumbnail_and_last_error(client: FlaskClient, ws: Workspace, order: Order) -> None:
    job = order.jobs[0]
    with ws.edit(order.receipt_id) as o:
        lifecycle.set_error(o, job.job_id, "preview failed: truncated file", actor="watcher")
    html = client.get("/").get_data(as_text=True)
    thumb = f"/files/{order.receipt_id}/{job.job_id}/v/3/thumb"
    assert thumb in html
    assert "preview failed: truncated file" in html
    image = client.get(thumb)
    assert image.status_code == 200 and image.mimetype == "image/jpeg"


def test_list_paginates(client: FlaskClient, app, ws: Workspace, make_order: Callable[..., Order]) -> None:  # type: ignore[no-untyped-def]
    app.config["KAALWATCH_PAGE_SIZE"] = 3
    for n in range(5):
        ws.add_order(make_order(days=n, titles=[f"Paged {n}"]))
    first = client.get("/").get_data(as_text=True)
    second = client.get("/?page=2").get_data(as_text=True)
    assert "Paged 0" in first and "Paged 3" not in first and "next →" in first
    assert "Paged 3" in second and "Paged 4" in second and "Paged 0" not in second and "next →" not in second
    assert client.get("/?page=abc").status_code == 200


def test_every_page_has_notice_and_health(client: FlaskClient, ws: Workspace, order: Order) -> None:
    ws.write_state("sync", {"last_success": utcnow().timestamp() - 300, "last_error": None})
    ws.write_state("health", {"pid": 1, "updated_at": utcnow().timestamp(), "watcher_alive": True,
                              "queue_length": 2})
    job = order.jobs[0]
    for path in ("/", f"/jobs/{order.receipt_id}/{job.job_id}", "/no-such-page"):
        html = client.get(path).get_data(as_text=True)
        assert NOTICE in html, path
        assert "watcher alive" in html and "5 min ago" in html and "2 queued" in html, path


def test_health_says_when_the_daemon_is_gone(client: FlaskClient, ws: Workspace) -> None:
    assert "daemon not running" in client.get("/").get_data(as_text=True)
    ws.write_state("health", {"updated_at": utcnow().timestamp() - 3600, "watcher_alive": True})
    assert "daemon not responding" in client.get("/").get_data(as_text=True)
    ws.write_state("health", {"updated_at": utcnow().isoformat(), "watcher_alive": False})
    assert "watcher stopped" in client.get("/").get_data(as_text=True)
    ws.write_state("sync", {"last_error": "Etsy said 503"})
    assert "sync failed: Etsy said 503" in client.get("/").get_data(as_text=True)


def test_job_page_shows_facts_answers_versions_history(client: FlaskClient, ws: Workspace,
                                                       make_order: Callable[..., Order]) -> None:
    made = make_order(buyer="Ada Lovelace", answers=[Answer(question="Pet's name", answer="Biscuit"),
                                                     Answer(question="Background colour", answer="Sage green")])
    made.message_from_buyer = "Please make him look regal"
    ws.add_order(made)
    job = made.jobs[0]
    add_versions(ws, made.receipt_id, job.job_id, 2)
    with ws.edit(made.receipt_id) as o:
        lifecycle.add_note(o, "Use the second photo", job.job_id)
    html = client.get(f"/jobs/{made.receipt_id}/{job.job_id}").get_data(as_text=True)
    for text in ("Ada Lovelace", "Pet&#39;s name", "Biscuit", "Background colour", "Sage green",
                 "Please make him look regal", "portrait v1.jpg", "portrait v2.jpg", "version added",
                 "Use the second photo", "order created", "320×240", "0 used of 2 included"):
        assert text in html, text
    assert re.search(rf'href="https://www\.etsy\.com/[^"]*{made.receipt_id}"', html)
    assert str(ws.folder_of(made.receipt_id)) in html
    data = viewer_data(html)
    assert [v["n"] for v in data["versions"]] == [1, 2]
    assert data["versions"][1]["proof"].endswith("/v/2/preview") and data["versions"][1]["tiles"].endswith("/v/2/tile/")


def viewer_data(html: str) -> dict:  # type: ignore[type-arg]
    """What the page hands viewer.js: the data attribute of the viewer, as the browser would decode it."""
    match = re.search(r'<section class="card viewer" id="viewer" data-viewer="([^"]*)"', html)
    assert match, "no viewer on the page"
    return json.loads(unescape(match.group(1)))  # type: ignore[no-any-return]


def test_job_page_compare_choice_and_bad_versions(client: FlaskClient, order: Order) -> None:
    base = f"/jobs/{order.receipt_id}/{order.jobs[0].job_id}"
    data = viewer_data(client.get(base + "?a=1&b=3").get_data(as_text=True))
    assert (data["a"], data["b"]) == (1, 3)
    assert client.get(base + "?a=9").status_code == 404
    assert client.get(base + "?a=../../etc").status_code == 404


def test_order_url_redirects_to_first_job_and_unknowns_404(client: FlaskClient, order: Order) -> None:
    response = client.get(f"/jobs/{order.receipt_id}")
    assert response.status_code == 302 and response.headers["Location"].endswith(order.jobs[0].job_id)
    assert client.get("/jobs/999999").status_code == 404
    assert client.get(f"/jobs/{order.receipt_id}/nope").status_code == 404


def test_multi_job_order_has_tabs(client: FlaskClient, ws: Workspace, make_order: Callable[..., Order]) -> None:
    made = make_order(jobs=2, titles=["Mum", "Dad"])
    ws.add_order(made)
    html = client.get(f"/jobs/{made.receipt_id}/{made.jobs[1].job_id}").get_data(as_text=True)
    assert 'class="tabs"' in html and "1. Mum" in html and "2. Dad" in html
    assert str(ws.folder_of(made.receipt_id) / made.jobs[1].folder) in html


def test_reference_gallery(client: FlaskClient, ws: Workspace, order: Order) -> None:
    index = add_reference(ws, order.receipt_id, "photo 1.jpg", jpeg(), label="Biscuit on the sofa")
    html = client.get(f"/jobs/{order.receipt_id}/{order.jobs[0].job_id}").get_data(as_text=True)
    assert "Biscuit on the sofa" in html
    assert f"/files/{order.receipt_id}/ref/{index}" in html
    assert client.get(f"/files/{order.receipt_id}/ref/{index}").status_code == 200


def test_proof_message_and_download(client: FlaskClient, ws: Workspace, order: Order) -> None:
    job = order.jobs[0]
    html = client.get(f"/jobs/{order.receipt_id}/{job.job_id}").get_data(as_text=True)
    assert f"Hi Grace! Here is the proof of your Pet portrait of Biscuit (order #{order.receipt_id})" in html
    assert "2 rounds of changes included left" in html
    download = client.get(f"/files/{order.receipt_id}/{job.job_id}/v/3/preview?download=1")
    assert download.status_code == 200
    assert download.headers["Content-Disposition"].startswith("attachment")


def test_states_render_their_actions(client: FlaskClient, ws: Workspace, order: Order) -> None:
    job = order.jobs[0]
    with ws.edit(order.receipt_id) as o:
        lifecycle.send_proof(o, job.job_id, 2)
    html = client.get(f"/jobs/{order.receipt_id}/{job.job_id}").get_data(as_text=True)
    assert "Buyer approved" in html and "Changes requested" in html
    with ws.edit(order.receipt_id) as o:
        lifecycle.hold(o, job.job_id)
    html = client.get(f"/jobs/{order.receipt_id}/{job.job_id}").get_data(as_text=True)
    assert ">Reopen<" in html and "Put on hold" not in html
    assert o.job(job.job_id).state is JobState.ON_HOLD


def test_overdue_shown_on_job_page(client: FlaskClient, ws: Workspace, make_order: Callable[..., Order]) -> None:
    made = make_order(days=-2)
    made.ship_by = utcnow() - timedelta(days=2)
    ws.add_order(made)
    assert "2 days overdue" in client.get(f"/jobs/{made.receipt_id}/{made.jobs[0].job_id}").get_data(as_text=True)


def test_broken_manifest_is_a_clear_page_not_a_500(client: FlaskClient, ws: Workspace, order: Order) -> None:
    manifest = ws.folder_of(order.receipt_id) / "order.yaml"
    manifest.write_text("schema: 1\nreceipt_id: [unclosed\n")
    response = client.get(f"/jobs/{order.receipt_id}/{order.jobs[0].job_id}")
    assert response.status_code == 409
    assert "manifest cannot be read" in response.get_data(as_text=True)
    assert client.get("/").status_code == 200  # the list keeps working from the index


def test_unknown_order_does_not_walk_the_folders(client: FlaskClient, ws: Workspace, order: Order,
                                                 monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def walked() -> None:
        raise AssertionError("refresh_index ran inside a request")

    monkeypatch.setattr(ws, "refresh_index", walked)
    assert client.get("/jobs/123456789/1").status_code == 404
    assert client.get("/files/123456789/1/v/1/thumb").status_code == 404
    assert client.get(f"/jobs/{order.receipt_id}/{order.jobs[0].job_id}").status_code == 200


def test_login_page_shows_no_workspace_status(anon: FlaskClient, ws: Workspace) -> None:
    ws.write_state("sync", {"last_error": "Etsy said 503 for shop 12345"})
    html = anon.get("/login").get_data(as_text=True)
    assert "Etsy said 503" not in html and "daemon" not in html
    assert NOTICE in html
