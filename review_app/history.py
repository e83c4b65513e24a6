"""An order's history in the words a shop owner uses ("Buyer's photos arrived (4)", "Approved v2").

The manifest keeps the technical record (event names, states, hashes); the page shows a sentence per event
and keeps the technical details in the line's ``title`` (shown on hover). Runs of the same event — a
buyer's four photos arriving in one sync — become one line with a count.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kaalwatch.model import ERROR_SOURCES, Event

Words = Callable[[dict[str, Any]], str]


def _v(details: dict[str, Any], key: str = "version") -> str:
    return f"v{details.get(key)}" if details.get(key) is not None else "a version"


def _source(details: dict[str, Any]) -> str:
    return ERROR_SOURCES.get(str(details.get("source")), str(details.get("source") or "unknown"))


def _changes(details: dict[str, Any]) -> str:
    text = f"Buyer asked for changes to {_v(details)}"
    if details.get("revision"):
        of = f" of {details['included']} included" if details.get("included") is not None else ""
        text += f" (round {details['revision']}{of})"
    return text + (" — beyond the included rounds" if details.get("beyond_included") else "")


def _undone(details: dict[str, Any]) -> str:
    what = str(details.get("what"))
    words = WORDS.get(what)
    return f"Undone: {(words({}) if words is not None else what).lower()}"


_REFERENCE_FROM = {"buyer": "Buyer's photos arrived", "listing": "Listing's style sample saved",
                   "artist": "Reference added to the folder"}

WORDS: dict[str, Words] = {
    "order_created": lambda d: "Order arrived from Etsy",
    "awaiting_references": lambda d: "Waiting for the buyer's photos",
    "references_arrived": lambda d: "Ready to start: the buyer's photos are here",
    "reference_added": lambda d: _REFERENCE_FROM.get(str(d.get("source")), "Reference added"),
    "version_added": lambda d: f"{_v(d)} saved" + (f" from {d['source']}" if d.get("source") else ""),
    "work_started": lambda d: "Work started",
    "approval_cleared": lambda d: f"Approval of {_v(d, 'approved_version')} cleared: {_v(d, 'by_version')} was "
                                  "saved after it",
    "version_error": lambda d: f"{_v(d)} could not be previewed",
    "version_error_cleared": lambda d: f"{_v(d)} previewed after all",
    "sync_conflict": lambda d: "A sync client's conflict copy appeared",
    "proof_sent": lambda d: f"Proof of {_v(d)} sent to the buyer",
    "buyer_approved": lambda d: f"Buyer approved {_v(d)}",
    "changes_requested": lambda d: _changes(d),
    "approved": lambda d: f"Approved {_v(d)}",
    "approval_changed": lambda d: f"Approved {_v(d)} instead of {_v(d, 'previous')}",
    "put_on_hold": lambda d: "Put on hold" + (f": {d['reason']}" if d.get("reason") else ""),
    "reopened": lambda d: "Resumed work" if d.get("from") == "on_hold" else "Reopened for more work",
    "ready_to_deliver": lambda d: f"Files for Etsy built from {_v(d)} ({len(d.get('files') or [])})",
    "deliverables_fitted": lambda d: "Files adjusted to Etsy's limits",
    "deliverables_removed": lambda d: "Old files taken out of the deliver folder",
    "upload_claimed": lambda d: "You uploaded the files on Etsy",
    "delivered": lambda d: "Delivered" + (" (Etsy shows the order completed)" if d.get("confirmed_by") == "etsy"
                                          else " (confirmed by you)"),
    "cancelled": lambda d: "Cancelled on Etsy",
    "etsy_status": lambda d: f"Etsy status: {d.get('to')}",
    "error": lambda d: f"Warning ({_source(d)}): {d.get('message')}",
    "error_cleared": lambda d: f"Warning cleared ({_source(d)})",
    "note_added": lambda d: "Note added",
    "undone": _undone,
    "anonymised": lambda d: "Buyer's details removed (retention)",
    "files_purged": lambda d: "Old files deleted (retention)",
    "file_names_redacted": lambda d: "File names made anonymous (retention)",
    "shipment_created": lambda d: "Marked shipped on Etsy",
    "shipment_failed": lambda d: "Marking shipped on Etsy failed; retried later",
    "shipment_refused": lambda d: "Etsy refused to mark the order shipped",
    "shipment_gave_up": lambda d: "Gave up marking the order shipped on Etsy",
    "addon": lambda d: f"Add-on: {d.get('title')}" + (f" ({d['effect']})" if d.get("effect") else "")
                       + (f", paid in order #{d['receipt']}" if d.get("receipt") else ""),
    "addons_applied": lambda d: f"Its add-ons apply to the buyer's order #{d.get('to')}",
}
# Technical events that add nothing a person needs in the list (they stay in the manifest).
HIDDEN = frozenset({"preview_ready"})
_TECHNICAL_SKIP = frozenset({"undo", "sha256"})


@dataclass(frozen=True)
class Line:
    at: datetime
    text: str
    detail: str  # the technical record, for the title attribute
    actor: str
    job_id: str | None


def technical(event: Event) -> str:
    details = " ".join(f"{k}={v}" for k, v in sorted(event.details.items())
                       if k not in _TECHNICAL_SKIP and v not in (None, False, [], ""))
    return f"{event.event} by {event.actor}" + (f": {details}" if details else "")


def sentence(event: Event) -> str:
    words = WORDS.get(event.event)
    if words is not None:
        # A hand-edited manifest (a detail missing or of the wrong type): still say something true.
        with contextlib.suppress(KeyError, TypeError, ValueError):
            return words(event.details)
    return event.event.replace("_", " ").capitalize()


def lines(history: list[Event], job_id: str | None = None) -> list[Line]:
    """The history of an order (or of one job and the order-wide events), newest first, in words."""
    out: list[Line] = []
    run: list[Event] = []

    def flush() -> None:
        if not run:
            return
        first, count = run[0], len(run)
        text = sentence(first) + (f" ({count})" if count > 1 else "")
        out.append(Line(at=run[-1].at, text=text, detail="\n".join(technical(e) for e in run),
                        actor=first.actor, job_id=first.job_id))
        run.clear()

    for event in history:
        if event.event in HIDDEN or (job_id is not None and event.job_id not in (None, job_id)):
            continue
        if run and not (event.event == run[0].event == "reference_added" and event.job_id == run[0].job_id
                        and event.details.get("source") == run[0].details.get("source")):
            flush()
        run.append(event)
    flush()
    return list(reversed(out))
