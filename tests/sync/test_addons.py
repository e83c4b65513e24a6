"""Add-ons and quantities from the sandbox shop: a Rush add-on is no artwork job, it makes the order sooner."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from kaalwatch import delivery, lifecycle
from kaalwatch.etsy.client import EtsyClient
from kaalwatch.etsy.oauth import Connection
from kaalwatch.model import AddOn, Order
from kaalwatch.sandbox import Sandbox
from kaalwatch.sandbox.seed import ADDON_LISTING, PET_LISTING
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from kaalwatch.sync import SyncReport, sync_once
from kaalwatch.sync_apply import link_addons


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


def test_rush_paid_apart_is_applied_to_the_buyers_open_order(sandbox: Sandbox, sb_ws: Workspace,
                                                             sb_settings: Settings, client: EtsyClient) -> None:
    sync_once(sb_ws, sb_settings, client)
    portrait = sandbox.add_order(PET_LISTING, uploads=1)
    sync_once(sb_ws, sb_settings, client)
    promised = sb_ws.load(portrait["receipt_id"]).ship_by
    assert promised is not None
    rush = sandbox.add_order(ADDON_LISTING, buyer_user_id=portrait["buyer_user_id"])
    report = sync_once(sb_ws, sb_settings, client)
    assert report.new == 1 and report.errors == []

    order = sb_ws.load(portrait["receipt_id"])
    (addon,) = order.addons
    assert addon.receipt_id == rush["receipt_id"] and addon.effect == "due 2 days sooner, urgent"
    assert order.urgent and order.ship_by == promised - timedelta(days=2)
    alone = sb_ws.load(rush["receipt_id"])
    assert alone.jobs == [] and alone.addon_for == portrait["receipt_id"]
    [row] = sb_ws.jobless()
    assert (row.receipt_id, row.addon_for, row.addons) == (rush["receipt_id"], portrait["receipt_id"],
                                                          ("Rush Processing Add-on",))
    # The next passes change nothing: the date moves once.
    sandbox.touch(rush["receipt_id"])
    sync_once(sb_ws, sb_settings, client)
    again = sb_ws.load(portrait["receipt_id"])
    assert again.ship_by == order.ship_by and len(again.addons) == 1
    panel = delivery.panel(sb_ws, sb_settings, again)
    assert [a.receipt_id for a in panel.addons] == [rush["receipt_id"]]

    # Once the owner completes the add-on's own order on Etsy, nothing lists it any more.
    sandbox.complete(rush["receipt_id"])
    sync_once(sb_ws, sb_settings, client)
    assert sb_ws.jobless() == []


def test_rush_before_the_portrait_waits_for_it_and_a_stranger_is_not_linked(
        sandbox: Sandbox, sb_ws: Workspace, sb_settings: Settings, client: EtsyClient) -> None:
    sync_once(sb_ws, sb_settings, client)
    other = sandbox.add_order(PET_LISTING, uploads=1)
    buyer = other["buyer_user_id"] + 1_000_003  # a buyer with no order in the shop
    rush = sandbox.add_order(ADDON_LISTING, buyer_user_id=buyer)
    sync_once(sb_ws, sb_settings, client)
    [row] = sb_ws.jobless()
    assert row.receipt_id == rush["receipt_id"] and row.addon_for is None  # the Today page asks the owner
    assert not sb_ws.load(other["receipt_id"]).addons

    portrait = sandbox.add_order(PET_LISTING, uploads=1, buyer_user_id=buyer)
    sync_once(sb_ws, sb_settings, client)
    order = sb_ws.load(portrait["receipt_id"])
    assert [a.receipt_id for a in order.addons] == [rush["receipt_id"]] and order.urgent
    assert sb_ws.load(rush["receipt_id"]).addon_for == portrait["receipt_id"]
    assert not sb_ws.load(other["receipt_id"]).addons


def test_linking_repeated_after_a_crash_moves_the_date_once(ws: Workspace, settings: Settings,
                                                           make_order: Callable[..., Order]) -> None:
    portrait, rush = make_order(buyer="Rosa"), make_order(buyer="Rosa", jobs=0)
    portrait.buyer_user_id = rush.buyer_user_id = 4242
    lifecycle.add_addon(rush, AddOn(transaction_id="77", listing_id=ADDON_LISTING, title="Rush", workflow="rush"),
                        rush_days=2, urgent=True)
    ws.add_order(portrait)
    ws.add_order(rush)
    promised = ws.load(portrait.receipt_id).ship_by  # as the manifest keeps it (whole seconds)
    assert promised is not None
    # The first attempt applied the Rush to the portrait, then stopped before recording the link.
    with ws.edit(portrait.receipt_id) as order:
        assert lifecycle.add_addon(order, AddOn(transaction_id="77", listing_id=ADDON_LISTING, title="Rush",
                                                workflow="rush", receipt_id=rush.receipt_id), rush_days=2, urgent=True)
    report = SyncReport()
    assert link_addons(ws, settings, report, dry_run=False) == [rush.receipt_id] and report.errors == []
    order = ws.load(portrait.receipt_id)
    assert order.ship_by == promised - timedelta(days=2) and len(order.addons) == 1
    assert ws.load(rush.receipt_id).addon_for == portrait.receipt_id
    assert link_addons(ws, settings, report, dry_run=False) == []  # linked: nothing left to do


@pytest.mark.parametrize(("rush_days_ago", "expected"), [(2, "older"), (0, "newer"), (5, "newer")])
def test_a_rush_goes_to_the_newest_order_placed_before_it(ws: Workspace, settings: Settings,
                                                          make_order: Callable[..., Order], rush_days_ago: int,
                                                          expected: str) -> None:
    """Two open portraits of one buyer: the Rush rushes the newest placed before it; bought before both, the newest."""
    now = datetime.now(UTC)
    older, newer, rush = make_order(buyer="Rosa"), make_order(buyer="Rosa"), make_order(buyer="Rosa", jobs=0)
    older.ordered_at, newer.ordered_at, rush.ordered_at = (now - timedelta(days=3), now - timedelta(days=1),
                                                           now - timedelta(days=rush_days_ago))
    for order in (older, newer, rush):
        order.buyer_user_id = 4242
    lifecycle.add_addon(rush, AddOn(transaction_id="77", listing_id=ADDON_LISTING, title="Rush", workflow="rush"),
                        rush_days=2, urgent=True)
    for order in (older, newer, rush):
        ws.add_order(order)
    assert link_addons(ws, settings, SyncReport(), dry_run=False) == [rush.receipt_id]
    target = {"older": older, "newer": newer}[expected]
    assert ws.load(rush.receipt_id).addon_for == target.receipt_id
    assert [a.receipt_id for a in ws.load(target.receipt_id).addons] == [rush.receipt_id]
