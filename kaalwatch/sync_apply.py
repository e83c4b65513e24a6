"""Steps 3 and 4 of a sync pass (see :mod:`kaalwatch.sync`): each receipt becomes a new order folder or changes
an existing order through :mod:`kaalwatch.lifecycle`; new orders' reference files are queued for download."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from kaalwatch import lifecycle
from kaalwatch.download_plan import plan_references
from kaalwatch.errors import KaalwatchError
from kaalwatch.etsy.parse import EtsyReceipt, ListingInfo, build_order
from kaalwatch.manifest import dump_manifest
from kaalwatch.model import ACTIVE_STATES, CANCELLED_STATUSES, Order
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace
from kaalwatch.workflows import by_name

if TYPE_CHECKING:
    from kaalwatch.sync import SyncReport

log = logging.getLogger("kaalwatch.sync")

ACTOR = "sync"


def apply_update(order: Order, receipt: EtsyReceipt) -> list[str]:
    """Bring an existing order in line with its receipt via :mod:`lifecycle`; returns what changed.

    Cancellation and completion happen once, when Etsy's status first says so: a job the artist reopened
    afterwards is not cancelled again by every later sync.
    """
    changes: list[str] = []
    before = order.etsy_status.strip().lower()
    if before != receipt.status_key:
        lifecycle.set_etsy_status(order, receipt.status, actor=ACTOR)
        changes.append(f"status {receipt.status}")
    if receipt.is_cancelled and before not in CANCELLED_STATUSES:
        open_jobs = [j for j in order.jobs if j.state in ACTIVE_STATES]
        lifecycle.cancel(order, f"Etsy: {receipt.status}", actor=ACTOR)
        if open_jobs:
            changes.append("cancelled")
    if receipt.is_shipped:  # marked shipped on Etsy (by hand or by us): a refused shipment no longer matters
        lifecycle.set_error(order, None, None, actor=ACTOR, source="shipment")
    if receipt.is_completed and not order.etsy_completed and not receipt.is_cancelled:
        lifecycle.etsy_completed(order, actor=ACTOR)
        changes.append("completed")
    if receipt.updated:
        lifecycle.etsy_updated(order, datetime.fromtimestamp(receipt.updated, UTC), actor=ACTOR)
    if receipt.total:
        lifecycle.totals_changed(order, receipt.total, receipt.currency, actor=ACTOR)
    changed = lifecycle.buyer_messages_changed(order, receipt.message_from_buyer, receipt.gift_message, ACTOR)
    changes += [name.replace("_", " ") for name in changed]
    return changes


@dataclass
class Applier:
    """Applies receipts to the workspace (or, in a dry run, says what would change) and counts in ``report``."""

    ws: Workspace
    settings: Settings
    report: SyncReport
    listings: dict[int, ListingInfo]  # of the receipts that become new orders (fetched before applying)
    dry_run: bool
    now: Callable[[], datetime]
    known: set[int] = field(default_factory=set)  # receipt ids with an order folder
    queued: list[int] = field(default_factory=list)  # new orders with references for the download queue

    def apply(self, receipt: EtsyReceipt) -> None:
        if receipt.receipt_id in self.known:
            self.update(receipt)
        elif receipt.is_open_work:
            self.create(receipt)
        else:
            self.report.skipped += 1

    def create(self, receipt: EtsyReceipt) -> None:
        new = build_order(receipt, self.listings, self.settings)
        order = new.order
        for job in order.jobs:
            if new.needs_references.get(job.job_id):
                lifecycle.await_references(order, job.job_id, actor=ACTOR)
        for addon, rule in new.addons:  # Rush and the like: no job, they change the order
            lifecycle.add_addon(order, addon, rush_days=rule.rush_days, urgent=rule.urgent, actor=ACTOR)
        lifecycle.plan_downloads(order, plan_references(new, self.settings.sync),
                                 self.settings.sync.download_max_files, actor=ACTOR)
        lifecycle.synced(order, self.now())
        self.report.new += 1
        if self.dry_run:
            self.report.changes.append(f"would create order {order.receipt_id} ({len(order.jobs)} jobs, "
                                       f"{len(order.references)} reference files)")
            return
        self.ws.add_order(order)
        self.known.add(order.receipt_id)
        log.info("order %s created (%d jobs)", order.receipt_id, len(order.jobs))
        if order.references:
            self.queued.append(order.receipt_id)
            self.report.queued_downloads += len(order.references)

    def update(self, receipt: EtsyReceipt) -> None:
        rid = receipt.receipt_id
        if self.dry_run:
            changes = apply_update(self.ws.load(rid), receipt)
            if changes:
                self._count(changes)
                self.report.changes.append(f"would update order {rid}: {', '.join(changes)}")
            return
        with self.ws.edit(rid) as order:
            # This order synced: an earlier failure to sync it is over.
            lifecycle.set_error(order, None, None, actor=ACTOR, source="sync")
            before = dump_manifest(order)
            changes = apply_update(order, receipt)
            if dump_manifest(order) != before:
                lifecycle.synced(order, self.now())
        if changes:
            self._count(changes)
            log.info("order %s updated: %s", rid, ", ".join(c.split(" ")[0] for c in changes))

    def _count(self, changes: list[str]) -> None:
        self.report.updated += 1
        self.report.cancelled += "cancelled" in changes
        self.report.completed += "completed" in changes

    def record_order_error(self, rid: int, exc: KaalwatchError) -> None:
        self.report.errors.append(f"order {rid}: {exc}")
        log.warning("sync of order %s failed: %s", rid, exc)
        if self.dry_run or rid not in self.known:
            return
        with contextlib.suppress(KaalwatchError), self.ws.edit(rid) as order:
            lifecycle.set_error(order, None, f"Etsy sync of this order failed: {exc}", actor=ACTOR, source="sync")


def link_addons(ws: Workspace, settings: Settings, report: SyncReport, *, dry_run: bool) -> list[int]:
    """Apply each receipt of add-ons only (a Rush bought after the portrait, in a checkout of its own) to
    the same buyer's open order; returns the receipt ids linked.

    Such a receipt has no artwork job, so no list would show it and its Rush would change nothing. Run after
    every pass's receipts, so it does not matter which of the two receipts Etsy listed first. Idempotent:
    the target skips a line item it has (``lifecycle.add_addon``), and the link is written last, so a crash
    between the two writes repeats the pair next time. A receipt whose buyer has no open order here stays on
    the Today page for the owner.
    """
    linked: list[int] = []
    for row in ws.jobless():
        if row.addon_for is not None or not row.addons:
            continue
        try:
            alone = ws.load(row.receipt_id)
            target = _buyers_order(ws, alone)
            if target is None:
                continue
            if dry_run:
                report.changes.append(f"would apply the add-ons of order {alone.receipt_id} to order {target}")
                continue
            with ws.edit(target) as order:
                for addon in alone.addons:
                    rule = by_name(settings.workflows, settings.default_workflow, addon.workflow)
                    lifecycle.add_addon(order, replace(addon, receipt_id=alone.receipt_id, effect=""),
                                        rush_days=rule.rush_days, urgent=rule.urgent, actor=ACTOR)
            with ws.edit(alone.receipt_id) as order:
                lifecycle.addons_applied(order, target, actor=ACTOR)
        except KaalwatchError as exc:
            report.errors.append(f"order {row.receipt_id}: add-ons not applied: {exc}")
            log.warning("add-ons of order %s not applied: %s", row.receipt_id, exc)
            continue
        log.info("add-ons of order %s applied to order %s", row.receipt_id, target)
        linked.append(row.receipt_id)
    return linked


def _buyers_order(ws: Workspace, alone: Order) -> int | None:
    """The buyer's open order the add-ons belong to: the newest placed before them, else the newest."""
    if alone.buyer_user_id is None:
        return None
    candidates = ws.open_orders_of(alone.buyer_user_id, alone.ordered_at)
    return next((rid for rid in candidates if rid != alone.receipt_id), None)
