"""Deliverables: ready to deliver, delivered, files taken back, crop frames, upload claims, shipments."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kaalwatch.errors import TransitionError
from kaalwatch.lifecycle.moves import S, _move, record, refusal, set_error
from kaalwatch.lifecycle.versions import conflict_refusal
from kaalwatch.model import Deliverable, Order, Shipment, utcnow

SHIPMENT_STATUSES = ("created", "refused", "failed", "gave_up")


def mark_ready(order: Order, job_id: str, deliverables: list[Deliverable], actor: str = "delivery") -> None:
    job = order.job(job_id)
    if job.approved_version is None:
        raise TransitionError("Nothing was done: this item has no approved version yet.")
    if refusal := conflict_refusal(order, job):
        raise TransitionError(refusal)
    job.deliverables = list(deliverables)
    order.upload_claimed_at = None  # new files: an earlier "I have uploaded these" was not about them
    _move(order, job, S.READY_TO_DELIVER, actor, "ready_to_deliver", version=job.approved_version,
          files=[d.name for d in deliverables])


def mark_delivered(order: Order, job_id: str, confirmed_by: str, actor: str = "sync",
                   *, at: datetime | None = None) -> None:
    """Etsy shows the receipt completed (``confirmed_by='etsy'``) or the owner confirmed by hand."""
    job = order.job(job_id)
    if job.state is S.DELIVERED:
        return
    _move(order, job, S.DELIVERED, actor, "delivered", confirmed_by=confirmed_by, version=job.approved_version)
    job.delivered_at = at or utcnow()
    job.delivery_confirmed_by = confirmed_by


def clear_deliverables(order: Order, job_id: str, reason: str, actor: str = "delivery") -> list[str]:
    """Forget the deliverables of a job that is no longer ready (their files were removed from deliver/).

    A job still ready to deliver keeps them: rebuilding goes through :func:`mark_ready`, which replaces them.
    """
    job = order.job(job_id)
    if job.state is S.READY_TO_DELIVER:
        raise TransitionError(f"job {job.job_id} of order {order.receipt_id} is ready to deliver; rebuild instead")
    if not job.deliverables:
        return []
    names = [d.name for d in job.deliverables]
    job.deliverables = []
    record(order, actor, "deliverables_removed", job.job_id, files=names, why=reason)
    return names


def set_framing(order: Order, job_id: str, key: str, position: float | None, margins: bool,
                actor: str = "review") -> None:
    """Where deliverable ``key``'s crop frame sits (None = centred), or margins instead of a crop. Files built
    with another frame no longer match: a ready job goes back to approved (its files leave deliver/)."""
    job = order.job(job_id)
    if job.state in (S.DELIVERED, S.CANCELLED):
        raise refusal(job, "has its final files: the crop can no longer change")
    if position is None:
        job.crop.pop(key, None)
    else:
        job.crop[key] = round(min(1.0, max(0.0, position)), 4)
    job.margins = sorted(set(job.margins) - {key} | ({key} if margins else set()))
    record(order, actor, "crop_set", job.job_id, deliverable=key, position=job.crop.get(key), margins=margins)
    if job.state is S.READY_TO_DELIVER:
        _move(order, job, S.APPROVED, actor, "reframed", why="the crop changed after the files were built")



def claim_upload(order: Order, actor: str = "review", *, at: datetime | None = None) -> list[str]:
    """"I have uploaded these": the owner uploaded the ready jobs' files on Etsy; the next sync confirms it
    (Etsy shows the receipt completed). Returns the ids of the jobs the claim covers (none: nothing recorded)."""
    ready = [job.job_id for job in order.jobs if job.state is S.READY_TO_DELIVER]
    if ready:
        order.upload_claimed_at = at or utcnow()
        record(order, actor, "upload_claimed", None, jobs=ready)
    return ready


def record_shipment(order: Order, status: str, error: str | None, actor: str = "delivery",
                    *, at: datetime | None = None) -> Shipment:
    """What Etsy answered to createReceiptShipment (one more attempt). A refusal or giving up is shown on the
    order (source ``shipment``); a created shipment clears that warning."""
    if status not in SHIPMENT_STATUSES:
        raise ValueError(f"unknown shipment status {status!r}")
    attempts = (order.shipment.attempts if order.shipment else 0) + 1
    order.shipment = Shipment(status=status, attempts=attempts, at=(at or utcnow()).replace(microsecond=0),
                              error=error)
    details: dict[str, Any] = {"attempts": attempts, **({"error": error} if error else {})}
    record(order, actor, f"shipment_{status}", None, **details)
    if status in ("refused", "gave_up"):
        set_error(order, None, f"Etsy did not mark this order shipped ({error}); the files were delivered; mark "
                  "it on Etsy by hand if needed", actor, source="shipment")
    elif status == "created":
        set_error(order, None, None, actor, source="shipment")
    return order.shipment
