"""Add-ons and quantities from the sandbox shop: a Rush add-on is no artwork job, it makes the order sooner."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from kaalwatch import delivery
from kaalwatch.etsy.client import EtsyClient
from kaalwatch.etsy.oauth import Connection
from kaalwatch.sandbox import Sandbox
from kaalwatch.sandbox.seed import ADDON_LISTING, PET_LISTING
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from kaalwatch.sync import sync_once


@pytest.fixture
def client(connected: Connection, make_client: Callable[..., EtsyClient]) -> EtsyClient:
    return make_client(sleep=lambda s: None)


def test_rush_addon_makes_no_job_and_moves_the_due_date(sandbox: Sandbox, sb_ws: Workspace, sb_settings: Settings,
                                                        client: EtsyClient) -> None:
    sync_once(sb_ws, sb_settings, client)
    plain = sandbox.add_order(PET_LISTING, uploads=1)
    rushed = sandbox.add_order(PET_LISTING, uploads=1, extra_listing_ids=[ADDON_LISTING])
    report = sync_once(sb_ws, sb_settings, client)
    assert report.new == 2 and report.errors == []

    order = sb_ws.load(rushed["receipt_id"])
    (job,) = order.jobs  # exactly one artwork job: the add-on is not a portrait
    assert job.listing_id == PET_LISTING and job.folder == ""
    (addon,) = order.addons
    assert addon.title == "Rush Processing Add-on" and addon.workflow == "rush"
    assert addon.effect == "due 2 days sooner, urgent" and order.urgent
    promised = min(datetime.fromtimestamp(t["expected_ship_date"], UTC) for t in rushed["transactions"])
    assert order.ship_by == promised - timedelta(days=2)
    assert not [r for r in order.references if r.job_id != job.job_id]  # no style sample of the add-on
    [event] = [e for e in order.history if e.event == "addon"]
    assert event.details["effect"] == "due 2 days sooner, urgent"
    folder = sb_ws.folder_of(rushed["receipt_id"])
    assert not [p for p in folder.iterdir() if p.is_dir() and "Rush" in p.name]

    normal = sb_ws.load(plain["receipt_id"])
    assert not normal.addons and not normal.urgent and normal.ship_by == promised
    # The jobs list sorts by the (shortened) due date: the rushed order comes first.
    rows = [row.receipt_id for row in sb_ws.jobs() if row.receipt_id in (plain["receipt_id"],
                                                                   rushed["receipt_id"])]
    assert rows == [rushed["receipt_id"], plain["receipt_id"]]

    panel = delivery.panel(sb_ws, sb_settings, order)
    assert panel.urgent and [a.title for a in panel.addons] == ["Rush Processing Add-on"]


def test_quantity_two_is_shown_and_asked_about(sandbox: Sandbox, sb_ws: Workspace, sb_settings: Settings,
                                               client: EtsyClient) -> None:
    sync_once(sb_ws, sb_settings, client)
    two = sandbox.add_order(PET_LISTING, uploads=1, quantity=2)
    sync_once(sb_ws, sb_settings, client)
    order = sb_ws.load(two["receipt_id"])
    (job,) = order.jobs
    assert job.quantity == 2
    [check] = delivery.panel(sb_ws, sb_settings, order).job_checks
    assert check.limit == "quantity" and not check.ok
    assert check.detail.startswith("2 portraits ordered; a job delivers one set of files")
