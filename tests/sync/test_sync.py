"""Sync against the sandbox over real HTTP: first import, idempotence, status changes, faults, downloads."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from kaalwatch.download_queue import DownloadQueue, retry_after, waiting
from kaalwatch.etsy.client import EtsyClient
from kaalwatch.etsy.oauth import Connection
from kaalwatch.model import JobState, utcnow
from kaalwatch.sandbox import Clock, Sandbox
from kaalwatch.sandbox.seed import COUPLE_LISTING, PET_LISTING
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from kaalwatch.sync import sync_once
from tests.support.etsy_shop import browser_get, sandbox_settings
from tests.support.openapi import assert_requests_documented, require_doc

RECEIPTS = "/v3/application/shops/*/receipts"


def tree(ws: Workspace) -> dict[str, tuple[int, int, str]]:
    """Every file under orders/: size, mtime and content hash (a touched timestamp counts as a change)."""
    out = {}
    for path in sorted(ws.orders_dir.rglob("*")):
        if path.is_file():
            st = path.stat()
            out[path.relative_to(ws.orders_dir).as_posix()] = (st.st_size, st.st_mtime_ns,
                                                               hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def open_paid(sb: Sandbox) -> set[int]:
    """Receipts that are work to do: paid, not shipped, not cancelled or fully refunded."""
    def is_open(r: dict) -> bool:
        return r["is_paid"] and not r["is_shipped"] and r["status"] in ("Paid", "Partially Refunded")

    return {rid for rid in sb.receipt_ids if is_open(sb.receipt(rid))}


@pytest.fixture
def client(connected: Connection, make_client: Callable[..., EtsyClient]) -> EtsyClient:
    return make_client(sleep=lambda s: None)


def test_first_import_then_idempotent_with_one_call(sandbox: Sandbox, sb_ws: Workspace, sb_settings: Settings,
                                                    client: EtsyClient) -> None:
    sandbox.clear_requests()
    report = sync_once(sb_ws, sb_settings, client)
    assert report.fatal is None and report.errors == []
    assert set(sb_ws.receipt_ids()) == open_paid(sandbox) and report.new == len(open_paid(sandbox))
    listings = {lid for rid in open_paid(sandbox) for lid in
                (t["listing_id"] for t in sandbox.receipt(rid)["transactions"])}
    api_ops = [r.operation for r in sandbox.requests if r.operation != "file"]
    assert api_ops.count("getShopReceipts") == 1 and api_ops.count("getListingsByListingIds") == 1
    assert api_ops.count("getListingPersonalization") == len(listings)
    assert report.api_calls == len(api_ops)
    before = tree(sb_ws)
    sandbox.clear_requests()
    again = sync_once(sb_ws, sb_settings, client)
    assert [r.operation for r in sandbox.requests] == ["getShopReceipts"] and again.api_calls == 1
    assert tree(sb_ws) == before  # byte for byte, timestamps included
    state = sb_ws.read_state("sync")
    assert state["last_error"] is None and state["high_water"] > 0 and state["needs_reauth"] is False
    assert "1 API calls" in state["last_report"]["summary"]


def test_new_order_folder_answers_and_references(sandbox: Sandbox, sb_ws: Workspace, sb_settings: Settings,
                                                 client: EtsyClient) -> None:
    sync_once(sb_ws, sb_settings, client)
    pet = sandbox.add_order(PET_LISTING, buyer_name="Zoë &amp; Co", uploads=2,
                            answers={7002: "Biscuit &quot;B&quot;", 7003: "Sage"}, message="Hi!\r\nThanks")
    couple = sandbox.add_order(COUPLE_LISTING, skip_optional=True)
    multi = sandbox.add_order(PET_LISTING, uploads=1, extra_listing_ids=[COUPLE_LISTING])
    report = sync_once(sb_ws, sb_settings, client)
    queued = sum(len(sb_ws.load(o["receipt_id"]).references) for o in (pet, couple, multi))
    assert report.new == 3 and report.queued_downloads == queued >= 2 + 1 + 1
    # The pass only records what to fetch: the folders exist, the files are the queue's job.
    assert all(r.status == "pending" for r in sb_ws.load(pet["receipt_id"]).references)
    assert sb_ws.load(pet["receipt_id"]).jobs[0].state is JobState.AWAITING_REFERENCES
    assert DownloadQueue(sb_ws, sb_settings).run().failed == 0

    order = sb_ws.load(pet["receipt_id"])
    assert order.buyer_name == "Zoë & Co" and order.message_from_buyer == "Hi!\nThanks"
    (job,) = order.jobs
    assert job.workflow == "pet portrait" and job.state is JobState.NEW  # references arrived
    answers = {a.question: a for a in job.answers}
    assert answers["Pet's name (optional)"].answer == 'Biscuit "B"' and answers["Background colour"].answer == "Sage"
    assert len(answers["Photos of your pet"].files) == 2
    buyer = [r for r in order.references if r.source == "buyer"]
    sample = [r for r in order.references if r.source == "listing"]
    assert len(buyer) == 2 and len(sample) == 1 and all(r.status == "ok" for r in order.references)
    folder = sb_ws.folder_of(pet["receipt_id"])
    for ref in order.references:
        data = (folder / "references" / ref.name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == ref.sha256 and data[:3] == b"\xff\xd8\xff"
        assert ref.thumb and sb_ws.tool_path(ref.thumb).is_file()

    skipped = sb_ws.load(couple["receipt_id"]).jobs[0]
    assert next(a for a in skipped.answers if a.kind == "unlabeled_upload").answer == ""
    assert not [r for r in sb_ws.load(couple["receipt_id"]).references if r.source == "buyer"]

    multi_order = sb_ws.load(multi["receipt_id"])
    assert len(multi_order.jobs) == 2 and all(j.folder for j in multi_order.jobs)
    mfolder = sb_ws.folder_of(multi["receipt_id"])
    for ref in multi_order.references:
        assert (sb_ws.job_dir(mfolder, multi_order, ref.job_id) / "references" / ref.name).is_file()


def test_cancel_refund_partial_and_complete(sandbox: Sandbox, sb_ws: Workspace, sb_settings: Settings,
                                            client: EtsyClient) -> None:
    orders = [sandbox.add_order(PET_LISTING, uploads=1)["receipt_id"] for _ in range(4)]
    sync_once(sb_ws, sb_settings, client)
    DownloadQueue(sb_ws, sb_settings).run()
    cancelled, refunded, partial, completed = orders
    sandbox.cancel(cancelled)
    sandbox.refund(refunded)
    sandbox.refund(partial, partial=True)
    sandbox.complete(completed)
    report = sync_once(sb_ws, sb_settings, client)
    assert (report.cancelled, report.completed, report.updated) == (2, 1, 4)
    for rid in (cancelled, refunded):
        order = sb_ws.load(rid)
        assert order.state is JobState.CANCELLED and order.cancelled_at is not None
        refs = sb_ws.folder_of(rid) / "references"
        assert any(refs.iterdir())  # the files stay
    part = sb_ws.load(partial)
    assert part.etsy_status == "Partially Refunded" and part.state is not JobState.CANCELLED
    assert any(e.event == "etsy_status" and e.details["to"] == "Partially Refunded" for e in part.history)
    done = sb_ws.load(completed)
    assert done.etsy_completed and "completed_without_approval" in done.jobs[0].flags
    before = tree(sb_ws)
    assert sync_once(sb_ws, sb_settings, client).updated == 0 and tree(sb_ws) == before


def test_refund_without_update_bump_is_caught_by_the_open_recheck(sandbox: Sandbox, sb_ws: Workspace,
                                                                   sb_settings: Settings, client: EtsyClient) -> None:
    rid = sandbox.add_order(PET_LISTING, uploads=1)["receipt_id"]
    sync_once(sb_ws, sb_settings, client)
    sandbox.advance(2 * 3600)  # later orders move the high-water mark past the safety margin
    sandbox.add_order(PET_LISTING, uploads=1)
    sync_once(sb_ws, sb_settings, client)
    sandbox.refund(rid, bump=False)  # Etsy open-api #513
    assert sync_once(sb_ws, sb_settings, client).cancelled == 0
    later = utcnow() + timedelta(hours=sb_settings.sync.recheck_open_hours + 1)
    report = sync_once(sb_ws, sb_settings, client, now=lambda: later)
    assert report.cancelled == 1 and sb_ws.load(rid).state is JobState.CANCELLED


def test_failed_download_is_shown_and_retried_later_with_backoff(sandbox: Sandbox, sb_ws: Workspace,
                                                                  sb_settings: Settings, client: EtsyClient) -> None:
    missing = f"{sandbox.url}/_files/uploads/nope/photo.jpg"
    rid = sandbox.add_order(PET_LISTING, upload_urls=[missing])["receipt_id"]
    assert sync_once(sb_ws, sb_settings, client).fatal is None
    now = [time.time()]
    queue = DownloadQueue(sb_ws, sb_settings, clock=lambda: now[0])
    assert queue.run().failed == 1
    job = sb_ws.load(rid).jobs[0]
    assert job.state is JobState.AWAITING_REFERENCES and job.last_error and "retried later" in job.last_error
    sandbox.clear_requests()
    before = tree(sb_ws)
    assert queue.run().orders == 0 and sandbox.requests == []  # not due yet: the backoff holds
    now[0] += retry_after(1) + 1
    assert queue.run().failed == 1
    assert [r.path for r in sandbox.requests if r.operation == "file"] == ["/_files/uploads/nope/photo.jpg"]
    assert tree(sb_ws) == before  # the same failure again changes nothing in the folder
    # The file appears (a CDN hiccup over): the next due run fetches it and the job moves on.
    sandbox.shop.files["uploads/nope/photo.jpg"] = ("image/jpeg", sandbox.shop.files[next(iter(sandbox.shop.files))][1])
    now[0] += retry_after(2) + 1
    assert queue.run().fetched == 1
    job = sb_ws.load(rid).jobs[0]
    assert job.state is JobState.NEW and job.last_error is None
    assert waiting(sb_ws) == 0


def test_hostile_order_downloads_are_refused_and_the_rest_syncs(sandbox: Sandbox, sb_ws: Workspace,
                                                                sb_settings: Settings, client: EtsyClient) -> None:
    hostile = sandbox.add_hostile_order()["receipt_id"]
    normal = sandbox.add_order(PET_LISTING, uploads=1)["receipt_id"]
    assert sync_once(sb_ws, sb_settings, client).fatal is None
    assert DownloadQueue(sb_ws, sb_settings).run().failed == 3
    refs = [r for r in sb_ws.load(hostile).references if r.source == "buyer"]
    assert len(refs) == 3 and all(r.status == "failed" and "refused" in (r.error or "") for r in refs)
    assert all(r.status == "ok" for r in sb_ws.load(normal).references)
    assert "<img" in sb_ws.load(hostile).buyer_name  # kept as written; escaping is the page's job


def test_dry_run_writes_nothing(sandbox: Sandbox, sb_ws: Workspace, sb_settings: Settings,
                                client: EtsyClient) -> None:
    report = sync_once(sb_ws, sb_settings, client, dry_run=True)
    assert report.new == len(open_paid(sandbox)) and len(report.changes) == report.new
    assert list(sb_ws.orders_dir.iterdir()) == [] and sb_ws.read_state("sync") == {}
    assert "(dry run)" in report.summary()


def test_fault_mid_sync_loses_nothing_and_repeats_nothing(settings: Settings) -> None:
    with Sandbox(seed=3, auto_approve=True, clock=Clock(frozen=True), rate_per_second=100_000,
                 rate_per_day=1_000_000, receipts=250) as sb:
        s = sandbox_settings(settings, sb, max_retries=1)
        ws = Workspace(s)
        ws.create()
        from kaalwatch.etsy.oauth import connect

        connect(s, ws, browser_get, output=lambda line: None)
        with EtsyClient.from_settings(s, ws, sleep=lambda x: None) as client:
            real = client.get_shop_receipts

            def second_page_fails(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
                if kwargs.get("offset"):
                    sb.inject_fault(status=500, paths=RECEIPTS)
                return real(*args, **kwargs)

            client.get_shop_receipts = second_page_fails  # type: ignore[method-assign]
            first = sync_once(ws, s, client, since=utcnow() - timedelta(days=3650))
            assert first.fatal and "HTTP 500" in first.fatal and 0 < first.new < len(open_paid(sb))
            state = ws.read_state("sync")
            assert state["last_error"] == first.fatal and "last_success" not in state
            assert ws.refresh_index().broken == []
            sb.clear_faults()
            client.get_shop_receipts = real  # type: ignore[method-assign]
            second = sync_once(ws, s, client)
            assert second.fatal is None and set(ws.receipt_ids()) == open_paid(sb)
            assert second.new == len(open_paid(sb)) - first.new  # nothing created twice
        ws.close()


def test_expired_token_mid_sync_and_revoked_token(sandbox: Sandbox, sb_ws: Workspace, sb_settings: Settings,
                                                  client: EtsyClient) -> None:
    sync_once(sb_ws, sb_settings, client)
    sandbox.add_order(PET_LISTING, uploads=1)
    sandbox.expire_tokens()
    assert sync_once(sb_ws, sb_settings, client).new == 1
    sandbox.add_order(PET_LISTING, uploads=1)
    sandbox.revoke_all_tokens()
    sandbox.expire_tokens()
    report = sync_once(sb_ws, sb_settings, client)
    assert report.needs_reauth and "kaalwatch auth" in (report.fatal or "") and report.new == 0
    state = sb_ws.read_state("sync")
    assert state["needs_reauth"] is True and "kaalwatch auth" in state["last_error"]


@pytest.mark.contract
def test_every_request_matches_the_openapi_document(sandbox: Sandbox, sb_ws: Workspace, sb_settings: Settings,
                                                    client: EtsyClient) -> None:
    require_doc()
    sync_once(sb_ws, sb_settings, client, since=utcnow() - timedelta(days=400))
    rid = sandbox.add_order(PET_LISTING, uploads=1)["receipt_id"]
    sandbox.expire_tokens()
    sync_once(sb_ws, sb_settings, client)
    client.token_scopes()
    client.create_receipt_shipment(sandbox.shop_id, rid, "Delivered — thank you!")
    ops = assert_requests_documented(sandbox.requests)
    assert {"oauthToken", "getMe", "getShop", "tokenScopes", "getShopReceipts", "getListingsByListingIds",
            "getListingPersonalization", "createReceiptShipment"} <= set(ops)


def test_replay_of_etsy_format_receipts(sandbox: Sandbox, settings: Settings, tmp_path: Path) -> None:
    data = tmp_path / "recorded"
    data.mkdir()
    page = {"count": 2, "results": [sandbox.receipt(rid) for rid in sorted(open_paid(sandbox))[:2]]}
    (data / "receipts.json").write_text(json.dumps(page))
    with Sandbox(seed=1, auto_approve=True, clock=Clock(frozen=True), rate_per_second=100_000,
                 rate_per_day=1_000_000, data_dir=data) as sb:
        s = sandbox_settings(settings, sb)
        ws = Workspace(s)
        ws.create()
        from kaalwatch.etsy.oauth import connect

        connect(s, ws, browser_get, output=lambda line: None)
        with EtsyClient.from_settings(s, ws) as client:
            report = sync_once(ws, s, client, since=utcnow() - timedelta(days=3650))
        assert report.new == 2 and set(ws.receipt_ids()) == {r["receipt_id"] for r in page["results"]}
        ws.close()
