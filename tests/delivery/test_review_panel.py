"""The job page's delivery panel and its actions, behind the review page's login and CSRF checks."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kaalwatch.model import JobState, Order
from kaalwatch.settings import Deliverable as Promise
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from review_app import create_app
from tests.delivery.conftest import add_version, approve, deliver_files, encode, noise, with_workflow
from tests.review.conftest import login, post, store_password


@pytest.fixture
def app(settings: Settings, ws: Workspace) -> Flask:
    store_password(ws)
    return create_app(with_workflow(settings, Promise(format="png"), Promise(format="jpeg", suffix="web")), ws,
                      {"TESTING": True})


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as logged_in:
        login(logged_in)
        yield logged_in


def _page(order: Order) -> str:
    return f"/jobs/{order.receipt_id}/{order.jobs[0].job_id}"


def test_prepare_then_panel_then_uploaded_then_manual(
        client: FlaskClient, ws: Workspace, order_with_art: Callable[..., Order]) -> None:
    order = order_with_art(noise(200, 150))
    page = _page(order)
    html = client.get(page).get_data(as_text=True)
    assert 'id="delivery"' in html and "Prepare files for Etsy" in html

    response = post(client, f"{page}/deliver/prepare", page=page)
    assert response.status_code == 303
    html = client.get(page).get_data(as_text=True)
    names = [p.name for p in deliver_files(ws, order.receipt_id)]
    assert len(names) == 2 and all(name in html for name in names)
    assert html.count("✓") >= 7 and "✗" not in html  # 3 checks per file + the count
    assert f"order_id={order.receipt_id}" in html and "Copy folder path" in html

    post(client, f"{page}/deliver/uploaded", page=page)
    assert ws.load(order.receipt_id).jobs[0].state is JobState.READY_TO_DELIVER
    assert "waiting for the next sync" in client.get(page).get_data(as_text=True)

    post(client, f"{page}/deliver/confirm", page=page)  # without the tick: refused
    assert ws.load(order.receipt_id).jobs[0].state is JobState.READY_TO_DELIVER
    post(client, f"{page}/deliver/confirm", {"sure": "yes"}, page=page)
    job = ws.load(order.receipt_id).jobs[0]
    assert job.state is JobState.DELIVERED and job.delivery_confirmed_by == "manual"


def test_panel_shows_a_cross_for_a_file_over_the_limit(
        app: Flask, client: FlaskClient, ws: Workspace, order_with_art: Callable[..., Order]) -> None:
    order = order_with_art(noise(200, 150))
    page = _page(order)
    post(client, f"{page}/deliver/prepare", page=page)
    [first, _] = deliver_files(ws, order.receipt_id)
    first.write_bytes(first.read_bytes() * 200)  # someone replaced it with something huge
    runtime = app.extensions["kaalwatch"]
    runtime.settings = dataclasses.replace(runtime.settings, delivery=dataclasses.replace(
        runtime.settings.delivery, max_file_mb=1.0))
    html = client.get(page).get_data(as_text=True)
    assert "✗" in html and "changed since it was built" in html
    assert 'disabled>I have uploaded these' in html.replace("\n", "")


def test_actions_need_login_and_csrf(app: Flask, ws: Workspace, order_with_art: Callable[..., Order]) -> None:
    order = order_with_art(noise(64, 64))
    page = _page(order)
    anon = app.test_client()
    response = anon.post(f"{page}/deliver/prepare")
    assert response.status_code in (302, 303, 400, 401, 403)
    with app.test_client() as logged_in:
        login(logged_in)
        assert logged_in.post(f"{page}/deliver/prepare").status_code == 400  # no CSRF token
    assert deliver_files(ws, order.receipt_id) == []
    assert ws.load(order.receipt_id).jobs[0].state is JobState.APPROVED


def test_approving_another_version_takes_the_built_files_out_and_hold_keeps_them(
        client: FlaskClient, ws: Workspace, order_with_art: Callable[..., Order]) -> None:
    order = order_with_art(noise(200, 150))
    rid, job_id = order.receipt_id, order.jobs[0].job_id
    add_version(ws, rid, job_id, encode(noise(210, 150)), source_name="portrait v2.png")
    approve(ws, rid, job_id, 1)
    page = _page(order)
    post(client, f"{page}/deliver/prepare", page=page)
    built = deliver_files(ws, rid)
    assert len(built) == 2 and ws.load(rid).jobs[0].state is JobState.READY_TO_DELIVER

    post(client, f"{page}/hold", {"reason": "buyer travelling"}, page=page)  # a pause keeps the files
    post(client, f"{page}/reopen", page=page)
    job = ws.load(rid).jobs[0]
    assert job.state is JobState.READY_TO_DELIVER and deliver_files(ws, rid) == built
    assert sorted(d.name for d in job.deliverables) == [p.name for p in built]

    response = post(client, f"{page}/approve", {"version": "2"}, page=page)
    assert response.status_code == 303
    after = ws.load(rid)
    assert after.jobs[0].state is JobState.APPROVED and after.jobs[0].approved_version == 2
    assert deliver_files(ws, rid) == [] and after.jobs[0].deliverables == []
    assert [sorted(e.details["files"]) for e in after.history if e.event == "deliverables_removed"] == [
        sorted(p.name for p in built)]
    assert "taken out of the deliver folder" in client.get(page).get_data(as_text=True)


def test_crop_form_takes_only_known_keys_and_sane_positions(
        settings: Settings, ws: Workspace, order_with_art: Callable[..., Order]) -> None:
    store_password(ws)
    app = create_app(with_workflow(settings, Promise(format="png", aspect="4:5", suffix="print 8x10")), ws,
                     {"TESTING": True})
    order = order_with_art(noise(400, 300))
    page, rid = _page(order), order.receipt_id
    with app.test_client() as client:
        login(client)
        html = client.get(page).get_data(as_text=True)
        assert 'data-key="print-8x10"' in html and 'name="position"' in html and "crop.js" in html
        for key, position in (("../order.yaml", "10"), ("png", "10"), ("", "")):
            post(client, f"{page}/deliver/crop", {"key": key, "position": position}, page=page)
        assert not [e for e in ws.load(rid).history if e.event == "crop_set"]  # unknown keys change nothing
        for position, saved in (("nan", None), ("-5", 0.0), ("1e309", 1.0), ("12.5", 0.125)):
            post(client, f"{page}/deliver/crop", {"key": "print-8x10", "position": position}, page=page)
            assert ws.load(rid).jobs[0].crop.get("print-8x10") == saved
        post(client, f"{page}/deliver/crop", {"key": "print-8x10", "margins": "yes"}, page=page)
        assert ws.load(rid).jobs[0].margins == ["print-8x10"]
        assert "whole artwork, with margins" in client.get(page).get_data(as_text=True)
        # Without the CSRF token nothing is saved.
        before = len(ws.load(rid).history)
        assert client.post(f"{page}/deliver/crop", data={"key": "print-8x10", "position": "90"}).status_code == 400
        assert len(ws.load(rid).history) == before and ws.load(rid).jobs[0].margins == ["print-8x10"]
