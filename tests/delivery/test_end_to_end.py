"""Delivered only after the sandbox Etsy shows the receipt completed, seen by a real sync over HTTP."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kaalwatch import delivery
from kaalwatch.etsy.client import EtsyClient
from kaalwatch.etsy.oauth import Connection
from kaalwatch.model import JobState
from kaalwatch.sandbox import Sandbox
from kaalwatch.sandbox.seed import PET_LISTING
from kaalwatch.settings import Deliverable as Promise
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from kaalwatch.sync import sync_once
from tests.delivery.conftest import add_version, approve, encode, noise, with_workflow
from tests.support.etsy_shop import connected, make_client, sandbox, sb_settings, sb_ws  # noqa: F401 (fixtures)


@pytest.fixture
def client(connected: Connection, make_client: Callable[..., EtsyClient]) -> EtsyClient:  # noqa: F811
    return make_client(sleep=lambda s: None)


def test_delivered_only_when_etsy_shows_the_receipt_completed(
        sandbox: Sandbox, sb_ws: Workspace, sb_settings: Settings, client: EtsyClient) -> None:  # noqa: F811
    rid = sandbox.add_order(PET_LISTING, uploads=1)["receipt_id"]
    sync_once(sb_ws, sb_settings, client)
    job_id = sb_ws.load(rid).jobs[0].job_id
    approve(sb_ws, rid, job_id, add_version(sb_ws, rid, job_id, encode(noise(240, 300))))
    settings = with_workflow(sb_settings, Promise(format="png"), create_shipment=True)
    assert delivery.prepare(sb_ws, settings, rid).ok
    assert delivery.etsy_order_url(settings, rid).startswith(sandbox.url.rstrip("/"))

    delivery.confirm_uploaded(sb_ws, rid, manual=False)
    sync_once(sb_ws, settings, client)  # Etsy does not show it completed yet
    assert sb_ws.load(rid).jobs[0].state is JobState.READY_TO_DELIVER
    assert delivery.ship_confirmed_orders(sb_ws, settings, client, shop_id=sandbox.shop_id) == []

    sandbox.complete(rid)  # the artist completed the order on Etsy's page
    sync_once(sb_ws, settings, client)
    job = sb_ws.load(rid).jobs[0]
    assert job.state is JobState.DELIVERED and job.delivery_confirmed_by == "etsy"

    assert delivery.ship_confirmed_orders(sb_ws, settings, client, shop_id=sandbox.shop_id) == [f"{rid}: created"]
    assert any(r.operation == "createReceiptShipment" for r in sandbox.requests)


def test_completion_without_approval_is_flagged_by_sync(
        sandbox: Sandbox, sb_ws: Workspace, sb_settings: Settings, client: EtsyClient) -> None:  # noqa: F811
    rid = sandbox.add_order(PET_LISTING, uploads=1)["receipt_id"]
    sync_once(sb_ws, sb_settings, client)
    sandbox.complete(rid)
    sync_once(sb_ws, sb_settings, client)
    job = sb_ws.load(rid).jobs[0]
    assert job.state is not JobState.DELIVERED and "etsy" in job.errors


