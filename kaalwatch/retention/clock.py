"""When an order's buyer data is due to go: one clock for every order, whatever state kaalwatch holds it in.

* An order **finished** — on Etsy (completed, cancelled, fully refunded) or here (every job delivered or
  cancelled) — loses its files ``retention.files_days`` after it finished and is anonymised
  ``retention.anonymise_days`` after. A job on hold, or completed on Etsy without an approval here, does not
  stop the clock: Etsy's word that the order is over is enough.
* An order that **never finishes** (abandoned by the buyer, on hold for ever) loses files and identity
  together ``retention.abandoned_days`` after its last activity; the owner is warned a week before.
* ``keep_until`` (set by the owner with a reason: :func:`kaalwatch.lifecycle.keep_until`) postpones both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from kaalwatch.model import ETSY_FINISHED, Order
from kaalwatch.settings import Settings

WARN_DAYS = 7
# Retention's own events are not activity: otherwise purging would postpone the next purge.
_NOT_ACTIVITY = frozenset({"files_purged", "anonymised", "redacted", "file_names_redacted", "retention_kept"})
_ETSY_ENDS = frozenset({"cancelled", "delivered"})


@dataclass(frozen=True)
class Due:
    """What the clock says about one order at ``now``."""

    files: bool  # references and unused versions go
    anonymise: bool  # the buyer's identity goes
    files_at: datetime  # when the files step is (or was) due
    anonymise_at: datetime
    basis: str  # "finished" or "no activity" (for the report and the warning)
    kept: bool = False  # the owner keeps it past its date

    def warn(self, now: datetime) -> bool:
        """True in the week before an unfinished order is purged (shown on the page and in ``status``)."""
        return self.basis == "no activity" and not self.files and now >= self.files_at - timedelta(days=WARN_DAYS)


def last_activity(order: Order) -> datetime | None:
    moments = [e.at for e in order.history if e.event not in _NOT_ACTIVITY]
    moments += [m for m in (order.ordered_at, order.etsy_updated_at) if m]
    return max(moments) if moments else None


def finished_at(order: Order) -> datetime | None:
    """When the order ended: here (every job delivered or cancelled) or, failing that, on Etsy.

    An order Etsy finished while a job is still open here counts from its last activity when that is
    later: the owner working on it (a job reopened, a new save) postpones the purge.
    """
    if order.finished_at is not None:
        return order.finished_at
    if not order.finished_on_etsy:
        return None
    ends = [e.at for e in order.history if _ends_on_etsy(e.event, e.details)]
    ended = max(ends) if ends else order.etsy_updated_at
    active = last_activity(order)
    return max(m for m in (ended, active) if m) if (ended or active) else None


def _ends_on_etsy(event: str, details: dict[str, object]) -> bool:
    if event in _ETSY_ENDS:
        return True
    if event == "etsy_status":
        return str(details.get("to", "")).strip().lower() in ETSY_FINISHED
    return event == "flagged" and details.get("code") == "completed_without_approval"


def due(order: Order, settings: Settings, now: datetime) -> Due | None:
    """The order's retention dates, or None when it has no date to count from at all."""
    r = settings.retention
    ended = finished_at(order)
    if ended is not None:
        files_at = ended + timedelta(days=min(r.files_days, r.anonymise_days))
        anonymise_at, basis = ended + timedelta(days=r.anonymise_days), "finished"
    else:
        active = last_activity(order)
        if active is None:
            return None
        files_at = anonymise_at = active + timedelta(days=r.abandoned_days)
        basis = "no activity"
    if order.keep_until and now < order.keep_until:
        return Due(False, False, max(files_at, order.keep_until), max(anonymise_at, order.keep_until), basis, True)
    return Due(now >= files_at, now >= anonymise_at, files_at, anonymise_at, basis)
