"""Undo: the owner's last action on a job, for a short while, as a recorded event of its own."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kaalwatch.errors import TransitionError
from kaalwatch.lifecycle.moves import record
from kaalwatch.model import Event, Job, JobState, Order, iso, parse_time, utcnow

UNDO_SECONDS = 60


def _snapshot(order: Order, job: Job) -> dict[str, Any]:
    """What an owner's action may change on a job, kept in its history event so it can be undone."""
    last = job.proofs[-1] if job.proofs else None
    return {
        "state": job.state.value, "approved_version": job.approved_version, "revisions_used": job.revisions_used,
        "changes_note": job.changes_note, "held_from": job.held_from.value if job.held_from else None,
        "hold_reason": job.hold_reason, "proofs": len(job.proofs), "notes": len(order.notes),
        "last_proof": None if last is None else {"answer": last.answer, "answered_at": iso(last.answered_at),
                                                 "note": last.note},
    }


def undoable(order: Order, job_id: str, *, now: datetime | None = None) -> Event | None:
    """The job's last event when it is an owner's action still within the undo window (else None)."""
    last = next((e for e in reversed(order.history) if e.job_id == job_id), None)
    if last is None or not isinstance(last.details.get("undo"), dict):
        return None
    if ((now or utcnow()) - last.at).total_seconds() > UNDO_SECONDS:
        return None
    return last


def undo_seconds_left(event: Event, *, now: datetime | None = None) -> int:
    """How long the undo of ``event`` is still accepted (whole seconds, at least 0)."""
    return max(0, int(UNDO_SECONDS - ((now or utcnow()) - event.at).total_seconds()))


def undo(order: Order, job_id: str, actor: str = "review", *, now: datetime | None = None) -> Event:
    """Put the job back as it was before its last action (see :func:`undoable`)."""
    job = order.job(job_id)
    event = undoable(order, job.job_id, now=now)
    if event is None:
        raise TransitionError("Nothing was undone: the last action on this item is too old or cannot be undone.")
    before: dict[str, Any] = event.details["undo"]
    job.state = JobState(before["state"])
    job.approved_version = before["approved_version"]
    job.revisions_used = before["revisions_used"]
    job.changes_note = before["changes_note"]
    job.held_from = JobState(before["held_from"]) if before["held_from"] else None
    job.hold_reason = before["hold_reason"]
    del job.proofs[before["proofs"]:]
    if job.proofs and before["last_proof"] is not None:
        job.proofs[-1].answer = before["last_proof"]["answer"]
        job.proofs[-1].answered_at = parse_time(before["last_proof"]["answered_at"])
        job.proofs[-1].note = before["last_proof"]["note"]
    if event.event == "note_added":  # the job's own last note, not one added since to another job
        mine = [n for n, note in enumerate(order.notes) if n >= before["notes"] and note.job_id == job.job_id]
        if mine:
            del order.notes[mine[-1]]
    return record(order, actor, "undone", job.job_id, what=event.event, state=job.state.value)

