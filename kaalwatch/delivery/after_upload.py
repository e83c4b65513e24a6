"""After the upload: "I have uploaded these", Etsy's order page, and telling Etsy the order shipped."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from kaalwatch import lifecycle
from kaalwatch.errors import AuthError, DeliveryError, EtsyError, EtsyForbiddenError, EtsyNotFoundError
from kaalwatch.etsy.shop import ShopClient
from kaalwatch.etsy.shop import shop_id as find_shop_id
from kaalwatch.loopback import is_loopback_url
from kaalwatch.model import JobState, Order
from kaalwatch.settings import Settings
from kaalwatch.store import Workspace

log = logging.getLogger("kaalwatch.delivery")

ACTOR = "delivery"
# After this many attempts that failed for a reason other than a refusal, the shipment is given up on.
SHIPMENT_ATTEMPTS = 3


def confirm_uploaded(ws: Workspace, receipt_id: int, *, manual: bool, actor: str = "review") -> list[str]:
    """"I have uploaded these": with ``manual`` the ready jobs are delivered now (confirmed by hand);
    otherwise the claim is recorded and the next sync delivers them when Etsy shows the receipt completed.

    Returns the ids of the jobs the claim covers.
    """
    receipt_id = int(receipt_id)
    with ws.edit(receipt_id) as order:
        ready = [job.job_id for job in order.jobs if job.state is JobState.READY_TO_DELIVER]
        if not ready:
            raise DeliveryError(f"order {receipt_id} has no job ready to deliver",
                                hint=f"prepare its files first: kaalwatch deliver {receipt_id}")
        if manual:
            for job_id in ready:
                lifecycle.mark_delivered(order, job_id, confirmed_by="manual", actor=actor)
        else:
            lifecycle.claim_upload(order, actor)
            if order.etsy_completed:
                # Etsy already showed the receipt completed: no later sync will report it again.
                lifecycle.etsy_completed(order, actor=actor)
    log.info("order %s: upload %s for job(s) %s", receipt_id, "confirmed by hand" if manual else "claimed",
             ", ".join(ready))
    return ready


def etsy_order_url(settings: Settings, receipt_id: int) -> str:
    """The page where the artist completes the order and uploads its files."""
    base = settings.etsy.base_url.rstrip("/")
    site = base if is_loopback_url(base) else "https://www.etsy.com"
    return f"{site}/your/orders/sold?order_id={int(receipt_id)}"


class ShipmentClient(ShopClient, Protocol):
    def create_receipt_shipment(self, shop_id: int, receipt_id: int, note_to_buyer: str) -> Any: ...


def _delivered(order: Order) -> bool:
    return order.finished_at is not None and any(job.state is JobState.DELIVERED for job in order.jobs)


def ship_confirmed_orders(ws: Workspace, settings: Settings, client: ShipmentClient,
                          *, shop_id: int | None = None) -> list[str]:
    """When ``delivery.create_shipment`` is on, call createReceiptShipment once per delivered order.

    A refusal (Etsy says no, or the key may not call it) is recorded on the order and never retried; other
    failures are retried on later passes up to ``SHIPMENT_ATTEMPTS`` times. Returns one line per order acted
    on (receipt id and outcome).
    """
    if not settings.delivery.create_shipment:
        return []
    outcomes: list[str] = []
    for _folder, order in ws.iter_orders():
        if not isinstance(order, Order) or not _delivered(order) or order.anonymised_at or (
                order.shipment is not None and order.shipment.status in ("created", "refused", "gave_up")):
            continue
        if shop_id is None:
            shop_id = find_shop_id(client)
        outcomes.append(_ship_one(ws, settings, client, shop_id, order.receipt_id))
    return outcomes


def _ship_one(ws: Workspace, settings: Settings, client: ShipmentClient, shop_id: int, receipt_id: int) -> str:
    status, error = "created", None
    try:
        client.create_receipt_shipment(shop_id, receipt_id, settings.delivery.shipment_note)
    except (AuthError, EtsyForbiddenError, EtsyNotFoundError) as exc:
        status, error = "refused", str(exc)  # this key, shop or receipt may not do it: asking again won't help
    except EtsyError as exc:
        status, error = "failed", str(exc)
    with ws.edit(receipt_id) as order:
        attempts = (order.shipment.attempts if order.shipment else 0) + 1
        if status == "failed" and attempts >= SHIPMENT_ATTEMPTS:
            status = "gave_up"
        lifecycle.record_shipment(order, status, error, ACTOR)
    if status == "created":
        log.info("order %s: marked shipped on Etsy", receipt_id)
    else:
        log.warning("order %s: createReceiptShipment %s: %s", receipt_id, status, error)
    return f"{receipt_id}: {status}"
