"""What Etsy says about an order: status, cancellation, completion, totals, buyer messages, add-ons."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from kaalwatch.lifecycle.delivery import mark_delivered
from kaalwatch.lifecycle.moves import S, _move, record, set_error
from kaalwatch.model import AddOn, Order, utcnow


def add_addon(order: Order, addon: AddOn, *, rush_days: int, urgent: bool, actor: str = "sync") -> bool:
    """An add-on line item (e.g. Rush): shown on the order; it may move the due date sooner and mark it urgent.

    Returns False, changing nothing, when the line item is on the order already (a pass repeated after a
    crash must not move the date twice).
    """
    if any(a.transaction_id == addon.transaction_id for a in order.addons):
        return False
    effects = []
    if rush_days and order.ship_by is not None:
        order.ship_by -= timedelta(days=rush_days)
        effects.append(f"due {rush_days} day{'s' if rush_days != 1 else ''} sooner")
    if urgent:
        order.urgent = True
        effects.append("urgent")
    addon.effect = ", ".join(effects)
    order.addons.append(addon)
    details: dict[str, Any] = {"title": addon.title, "workflow": addon.workflow, "effect": addon.effect,
                                  "ship_by": order.ship_by.isoformat() if order.ship_by else None}
    if addon.receipt_id is not None:
        details["receipt"] = addon.receipt_id
    record(order, actor, "addon", None, **details)
    return True


def addons_applied(order: Order, target: int, actor: str = "sync") -> None:
    """``order`` holds add-ons only, bought in a receipt of their own: they now change the buyer's order
    ``target`` (see ``sync_apply.link_addons``)."""
    order.addon_for = int(target)
    record(order, actor, "addons_applied", None, to=int(target))


def cancel(order: Order, reason: str, actor: str = "sync", *, at: datetime | None = None) -> None:
    """Etsy cancelled or refunded the order: every open job stops. The artist's files stay."""
    changed = False
    for job in order.jobs:
        if job.state in (S.CANCELLED, S.DELIVERED):
            continue
        job.held_from = None
        _move(order, job, S.CANCELLED, actor, "cancelled", reason=reason)
        changed = True
    if changed:
        order.cancelled_at = at or utcnow()


def etsy_completed(order: Order, actor: str = "sync", *, at: datetime | None = None) -> None:
    """Etsy shows the receipt completed/shipped: the files went out on Etsy's order page.

    Jobs that were ready (or approved) become delivered, confirmed by Etsy. A job completed on Etsy
    that was never approved is flagged loudly instead: the buyer may have received the wrong file.
    """
    order.etsy_completed = True
    for job in order.jobs:
        if job.state in (S.DELIVERED, S.CANCELLED):
            continue
        if job.state in (S.READY_TO_DELIVER, S.APPROVED) and job.approved_version is not None:
            mark_delivered(order, job.job_id, confirmed_by="etsy", actor=actor, at=at)
        else:
            set_error(order, job.job_id, f"Completed on Etsy without an approved version (it was {job.state.words}): "
                      "check what the buyer received", actor, source="etsy")


def set_etsy_status(order: Order, status: str, actor: str = "sync") -> None:
    if order.etsy_status != status:
        change: dict[str, Any] = {"from": order.etsy_status, "to": status}
        record(order, actor, "etsy_status", None, **change)
        order.etsy_status = status



def etsy_updated(order: Order, updated_at: datetime, actor: str = "sync") -> None:
    """Etsy's own "last modified" of the receipt (the sync's high-water mark reads it)."""
    if order.etsy_updated_at != updated_at:
        order.etsy_updated_at = updated_at
        record(order, actor, "etsy_updated", None, at_etsy=updated_at.isoformat())


def totals_changed(order: Order, total: str, currency: str | None, actor: str = "sync") -> None:
    """Etsy's grand total and currency (a refund changes it; the shop's books follow)."""
    if (order.total, order.currency) != (total, currency):
        change: dict[str, Any] = {"from": order.total, "to": total, "currency": currency}
        record(order, actor, "total_changed", None, **change)
        order.total, order.currency = total, currency


def buyer_messages_changed(order: Order, message_from_buyer: str, gift_message: str, actor: str = "sync") -> list[str]:
    """The buyer's message and gift message as Etsy has them now; returns the fields that changed, which the
    history names (never the text: it is the buyer's). An anonymised order keeps its removed text removed."""
    if order.anonymised_at is not None:
        return []
    changed = [name for name, new in (("message_from_buyer", message_from_buyer), ("gift_message", gift_message))
               if getattr(order, name) != new]
    if not changed:
        return []
    order.message_from_buyer, order.gift_message = message_from_buyer, gift_message
    record(order, actor, "buyer_messages_changed", None, fields=changed)
    return changed


def synced(order: Order, at: datetime) -> None:
    """Stamp when sync last changed the order. The change itself is recorded by the function that made it;
    the stamp alone is not an event."""
    order.synced_at = at
