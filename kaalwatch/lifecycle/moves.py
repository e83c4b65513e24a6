"""The legal moves of a job, the one way history grows, and warnings by source."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kaalwatch.errors import NotFoundError, TransitionError
from kaalwatch.model import Event, Job, JobState, Order, Version, utcnow

S = JobState


# The legal moves of one job. ON_HOLD returns to where it came from (``held_from``) via reopen.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    S.AWAITING_REFERENCES: frozenset({S.NEW, S.IN_PROGRESS, S.ON_HOLD, S.CANCELLED}),
    S.NEW: frozenset({S.AWAITING_REFERENCES, S.IN_PROGRESS, S.ON_HOLD, S.CANCELLED}),
    S.IN_PROGRESS: frozenset({S.PROOF_SENT, S.APPROVED, S.ON_HOLD, S.CANCELLED}),
    S.PROOF_SENT: frozenset({S.CHANGES_REQUESTED, S.APPROVED, S.IN_PROGRESS, S.ON_HOLD, S.CANCELLED}),
    S.CHANGES_REQUESTED: frozenset({S.IN_PROGRESS, S.PROOF_SENT, S.APPROVED, S.ON_HOLD, S.CANCELLED}),
    S.APPROVED: frozenset({S.READY_TO_DELIVER, S.IN_PROGRESS, S.PROOF_SENT, S.ON_HOLD, S.CANCELLED, S.DELIVERED}),
    S.READY_TO_DELIVER: frozenset({S.DELIVERED, S.APPROVED, S.IN_PROGRESS, S.ON_HOLD, S.CANCELLED}),
    S.DELIVERED: frozenset({S.IN_PROGRESS, S.CANCELLED}),
    S.ON_HOLD: frozenset({s for s in JobState if s is not S.ON_HOLD}),
    S.CANCELLED: frozenset({S.NEW, S.IN_PROGRESS}),
}


def can_move(current: JobState, target: JobState) -> bool:
    return target in TRANSITIONS[current]


def record(order: Order, actor: str, event: str, job_id: str | None = None, *, at: datetime | None = None,
           **details: Any) -> Event:
    """Append one history event (the only way history grows)."""
    entry = Event(at=at or utcnow(), actor=actor, event=event, job_id=job_id, details=details)
    order.history.append(entry)
    return entry


def refusal(job: Job, what: str) -> TransitionError:
    """A refused move, said as the owner would say it (the page shows it as it is; no internal ids)."""
    return TransitionError(f"Nothing was done: this item is {job.state.words}, so it {what}.")


# Warnings whose cause is gone once a job reaches a state: a build problem once the approval is gone or
# the job is finished, "completed without approval" once it is delivered or cancelled.
_CLEARED_BY_STATE: dict[str, frozenset[JobState]] = {
    "delivery": frozenset(JobState) - {S.APPROVED, S.READY_TO_DELIVER, S.ON_HOLD},
    "etsy": frozenset({S.DELIVERED, S.CANCELLED}),
}


def _move(order: Order, job: Job, target: JobState, actor: str, event: str, **details: Any) -> None:
    if job.state is target:
        return
    if not can_move(job.state, target):
        raise refusal(job, f"cannot become “{target.label}”")
    before = job.state
    job.state = target
    record(order, actor, event, job.job_id, **{"from": before.value, "to": target.value, **details})
    for source, states in _CLEARED_BY_STATE.items():
        if target in states and source in job.errors:
            set_error(order, job.job_id, None, actor, source=source)


def _version(order: Order, job: Job, number: int) -> Version:
    version = job.version(number)
    if version is None:
        raise NotFoundError(f"order {order.receipt_id} job {job.job_id} has no version {number}")
    return version


def set_error(order: Order, job_id: str | None, message: str | None, actor: str, *, source: str | None = None) -> None:
    """Record (or clear, with ``None``) the warning of one ``source`` (default: the actor) on an order or job.

    Each source clears its own warning when its cause is gone (the next successful save, rescan, sync or
    build), so a warning on the page is always a current one. Logged in history once per change.
    """
    source = source or actor
    target = order.job(job_id) if job_id else order
    if target.errors.get(source) == message:
        return
    if message:
        target.errors[source] = message
        record(order, actor, "error", job_id, source=source, message=message)
    else:
        del target.errors[source]
        record(order, actor, "error_cleared", job_id, source=source)

